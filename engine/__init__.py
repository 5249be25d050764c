"""The engine (top tier): turns a validated spec into a cluster plus layers.

- `registry.py`: the layers found in addons/ and the cluster modules, and the spec model built from them;
- `program.py`: read and check the config, resolve the layers and capabilities once, build everything;
- `graph.py`: ordering of layers (requirements, dependency order, deploy waves, shared namespaces);
- `deploy.py`: `LayerComponent`, one layer's resources in their phases.
Nothing in modules/ or addons/ imports it.
"""
