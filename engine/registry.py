"""What the engine knows about: every layer module in addons/ (found, not listed) and the cluster modules.

Adding a layer is adding `addons/<layer>.py`: the registry imports every module of the `addons`
package (but the contract, `addons/base.py`) and takes the one `Layer` subclass each declares.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from types import ModuleType

import addons
from addons.base import Layer
from modules.clusters import eks, existing, gke, kind
from modules.shared.config import PlatformSpec, spec_model

CLUSTERS: dict[str, ModuleType] = {"kind": kind, "existing": existing, "eks": eks, "gke": gke}


def discover(package: ModuleType = addons) -> dict[str, type[Layer]]:
    """Every layer declared in the package's modules, by name, in module-name order."""
    found: dict[str, type[Layer]] = {}
    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
        if info.name == "base" or info.ispkg:
            continue
        module = importlib.import_module(f"{package.__name__}.{info.name}")
        declared = [c for _, c in inspect.getmembers(module, inspect.isclass)
                    if issubclass(c, Layer) and c is not Layer and c.__module__ == module.__name__]
        if len(declared) != 1:
            raise TypeError(f"{module.__name__} must declare exactly one Layer (found {len(declared)})")
        cls = declared[0]
        if cls.name in found:
            raise TypeError(f"layer name {cls.name!r} is declared twice ({module.__name__})")
        found[cls.name] = cls
    return found


LAYERS: dict[str, type[Layer]] = discover()
SpecModel: type[PlatformSpec] = spec_model({name: (cls.Options, cls.core) for name, cls in LAYERS.items()})
