"""Layers (tier 3): one file per layer, each declaring one `Layer` (contract in `addons/base.py`).

The engine finds them (`engine/registry.py`); no file here imports another layer's file. Layers reach
each other through the typed offers in `modules/shared/offers.py`.
"""
