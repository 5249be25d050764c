"""The two lower tiers of the platform program.

- `modules.shared`: building blocks every other tier uses (config model, versions, profiles,
  Kubernetes helpers, shared labels, the parts a layer is made of, the typed offers between layers).
- `modules.clusters`: the cluster contract (capabilities, requests) and the environments (kind,
  existing, eks, gke).
Layers (`addons/`) sit above them and the engine (`engine/`) on top. Imports only point down.
"""
