"""Cluster modules and the shared building blocks of the CNAI platform program."""
