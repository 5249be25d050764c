"""Cluster tier (tier 2): the cluster contract (`contract.py`) and one package per environment.

Imports only `modules.shared`; the engine picks the environment's module (`engine/registry.py`).
"""
