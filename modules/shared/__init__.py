"""Shared building blocks (tier 1): nothing here imports a cluster module, a layer or the engine."""
