"""The shape of the code a maintainer relies on: tiers whose imports only point down, a layer in one file
that reaches other layers only through typed offers, no name comparisons, and files a person can read."""

from __future__ import annotations

import ast
import inspect
import re
from pathlib import Path

import pytest

from addons.base import Layer
from engine.registry import LAYERS
from modules.shared import parts
from modules.shared.config import LayerOptions
from modules.shared.offers import OFFERS
from modules.shared.versions import ROOT, VERSIONS

# Tier of each package, bottom up. An import may only point to the same tier or one below it.
TIERS = {"modules.shared": 1, "modules.clusters": 2, "addons": 3, "engine": 4}
PROGRAM = ["modules", "addons", "engine"]


def tier(module: str) -> int | None:
    return next((t for prefix, t in TIERS.items() if module == prefix or module.startswith(prefix + ".")), None)


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts_ = list(rel.parts[:-1]) if rel.name == "__init__" else list(rel.parts)
    return ".".join(parts_)


def imports(path: Path) -> set[str]:
    """Modules a file imports (absolute), including names imported from packages (`from addons import x`)."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
            out.update(f"{node.module}.{a.name}" for a in node.names)
    return out


def program_files() -> list[Path]:
    return sorted(p for d in PROGRAM for p in (ROOT / d).rglob("*.py") if "assets" not in p.parts)


def test_every_import_points_down():
    bad = []
    for path in program_files():
        own = tier(module_name(path))
        for target in imports(path):
            t = tier(target)
            if own is not None and t is not None and t > own:
                bad.append(f"{module_name(path)} (tier {own}) imports {target} (tier {t})")
    assert not bad, "imports that point up: " + "; ".join(bad)


def test_cluster_modules_do_not_import_each_other_or_read_layer_config():
    envs = {"kind", "existing", "eks", "gke"}
    for path in (ROOT / "modules" / "clusters").rglob("*.py"):
        env = path.relative_to(ROOT / "modules" / "clusters").parts[0]
        others = {f"modules.clusters.{e}" for e in envs - {env}}
        assert not {i for i in imports(path) if any(i == o or i.startswith(o + ".") for o in others)}, path
        assert "spec.layer(" not in path.read_text(), f"{path.relative_to(ROOT)} reads a layer's config"


def test_no_layer_file_imports_another_layer_file():
    for path in sorted((ROOT / "addons").glob("*.py")):
        if path.name in ("__init__.py", "base.py"):
            continue
        own = {i for i in imports(path) if i.startswith("addons.")}
        assert own <= {"addons.base", "addons.base.Layer", "addons.base.Peers"}, \
            f"addons/{path.name} imports {sorted(own - {'addons.base', 'addons.base.Layer'})}"


def test_the_program_has_no_import_cycle():
    graph: dict[str, set[str]] = {}
    names = {module_name(p) for p in program_files()}
    for path in program_files():
        graph[module_name(path)] = {i for i in imports(path) if i in names and i != module_name(path)}
    state: dict[str, int] = {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                cycle = stack[stack.index(nxt):] + [nxt] if nxt in stack else [node, nxt]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])


def test_no_python_file_over_300_lines_without_saying_why():
    skip = {".venv", ".git", ".cache", "node_modules"}
    long = []
    for path in sorted(ROOT.rglob("*.py")):
        if skip & set(path.relative_to(ROOT).parts):
            continue
        if len(path.read_text().splitlines()) > 300:
            doc = ast.get_docstring(ast.parse(path.read_text())) or ""
            if "over 300 lines" not in doc.lower():
                long.append(str(path.relative_to(ROOT)))
    assert not long, f"over 300 lines, with no 'over 300 lines: why' in the module docstring: {long}"


def test_no_layer_or_cluster_module_compares_a_profile_or_environment_name():
    pattern = re.compile(r"profile\.name|spec\.profile\s*[=!]=|environment\s*[=!]=|\"(laptop|production)\"\s*[:)]")
    for path in program_files():
        if tier(module_name(path)) in (2, 3):
            hits = [line.strip() for line in path.read_text().splitlines() if pattern.search(line)]
            assert not hits, f"{path.relative_to(ROOT)} compares names: {hits}"


def test_layers_find_peers_by_offer_not_by_name():
    for path in sorted((ROOT / "addons").glob("*.py")):
        if path.name == "base.py":  # the contract reads each layer's own options
            continue
        text = path.read_text()
        by_name = re.search(r"[\"'][\w-]+[\"'] in self\.peers|self\.peers\[|\.peer\(|spec\.layer\(", text)
        assert not by_name, f"addons/{path.name} looks a peer up by name: {by_name.group(0)}"


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_layer_declares_the_contract(name):
    cls = LAYERS[name]
    assert cls.name == name and cls.component and cls.description
    assert issubclass(cls.Options, LayerOptions)
    assert cls.Options is LayerOptions or "enabled" not in cls.Options.__dict__.get("__annotations__", {}), \
        f"{name}: `core` decides whether a layer is on by default, not its Options"
    for dep in (*cls.requires, *cls.after):
        assert dep in LAYERS, f"{name} orders after unknown layer {dep}"
    assert set(cls.after.values()) <= {"objects", "install"}, f"{name}: after scopes {set(cls.after.values())}"
    for key in cls.chart_keys():
        assert key in VERSIONS.charts, f"{name}: chart {key} is not pinned in versions.yaml"
    for key in cls.manifests:
        assert key in VERSIONS.manifests, f"{name}: manifest {key} is not pinned in versions.yaml"
    for offer in cls.offers:
        assert offer in OFFERS, f"{name} offers {offer.__name__}, which modules/shared/offers.py does not define"
        members = [m for m, v in vars(offer).items()
                   if not m.startswith("_") and (callable(v) or isinstance(v, property))]
        missing = [m for m in members if not hasattr(cls, m)]
        assert not missing, f"{name} offers {offer.__name__} but lacks {missing}"


def test_every_offer_has_one_provider():
    for offer in OFFERS:
        providers = [n for n, c in LAYERS.items() if offer in c.offers]
        assert len(providers) == 1, f"{offer.__name__} is offered by {providers}"


def test_an_object_in_an_unknown_phase_is_refused():
    with pytest.raises(ValueError, match="phase 'after-chart' is not one of"):
        parts.KubeObject({"kind": "ConfigMap", "metadata": {"name": "x"}}, phase="after-chart")


def test_layers_are_plain_subclasses_of_the_contract():
    for name, cls in LAYERS.items():
        assert cls.__mro__[1] is Layer, f"{name} must subclass Layer directly (one file, one layer)"
        assert inspect.getsourcefile(cls) == str(ROOT / "addons" / f"{name.replace('-', '_')}.py"), \
            f"layer {name} must live in addons/{name.replace('-', '_')}.py"
