"""Generated parts of the docs: tables rendered from versions.yaml, requirements and the layer registry.

Each generated block sits between `<!-- generated:NAME -->` and `<!-- /generated:NAME -->` markers.
`python -m tools.docs` rewrites the blocks; `--check` fails when a committed block is stale (the
offline tests run it, so the docs cannot drift from the code).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import types
import typing
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from modules.shared.versions import ROOT, VERSIONS


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def charts() -> str:
    rows = [[f"`{k}`", f"`{c.chart}`", f"`{c.version}`", f"`{c.repo}`", f"`{c.source}`",
             ", ".join(f"`{g}`" for g in c.crd_groups) or "-"]
            for k, c in sorted(VERSIONS.charts.items())]
    return _table(["Key", "Chart", "Version", "Repository", "Source (repo@tag:path)", "CRD groups checked"], rows)


def manifests() -> str:
    rows = [[f"`{k}`", f"`{m.version}`", m.url, f"`{m.source}`", ", ".join(f"`{g}`" for g in m.crd_groups) or "-"]
            for k, m in sorted(VERSIONS.manifests.items())]
    return _table(["Key", "Version", "URL", "Source", "CRD groups checked"], rows)


def images() -> str:
    rows = [[f"`{k}`", f"`{v}`"] for k, v in sorted(VERSIONS.images.items())]
    rows += [[f"`{k}` (component)", f"`{v}`"] for k, v in sorted(VERSIONS.components.items())]
    rows += [[f"`{k}` (model)", f"`{v}`"] for k, v in sorted(VERSIONS.models.items())]
    return _table(["Key", "Image / version"], rows)


def packages() -> str:
    rows = []
    for name in ("requirements.txt", "requirements-dev.txt"):
        for line in (ROOT / name).read_text().splitlines():
            m = re.match(r"^([A-Za-z0-9_.-]+)==(\S+)", line.strip())
            if m:
                rows.append([m.group(1), m.group(2), name])
    return _table(["Package", "Version", "File"], rows)


def layers() -> str:
    from engine.registry import LAYERS

    rows = []
    for name, cls in LAYERS.items():
        sources = [f"{VERSIONS.chart(k).chart} {VERSIONS.chart(k).version}" for k in cls.chart_keys()]
        sources += [f"{k} {VERSIONS.manifest(k).version}" for k in cls.manifests]
        rows.append([f"[`{name}`](docs/layers/{name}.md)", cls.description, ", ".join(cls.requires) or "-",
                     ", ".join(sources) or "platform objects", "on (core)" if cls.core else "off (opt-in)"])
    return _table(["Layer", "What it does", "Requires", "Upstream", "Default"], rows)


def _type(annotation: Any, metadata: list[Any]) -> str:
    """A config value's type in the words the configuration reference uses."""
    if any(getattr(getattr(m, "func", None), "__name__", "") == "_check_quantity" for m in metadata):
        return "quantity"
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Annotated:
        return _type(args[0], list(args[1:]))
    if origin in (types.UnionType, typing.Union):
        rest = [a for a in args if a is not type(None)]
        return " or ".join(_type(a, metadata) for a in rest) + (" or null" if len(rest) < len(args) else "")
    if origin is typing.Literal:
        return " or ".join(f"`{a}`" for a in args)
    if origin in (tuple, list):
        return f"list of {_type(args[0], [])}" if args else "list"
    if origin is dict or annotation is dict:
        return "map"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "object"
    names = {bool: "bool", int: "int", float: "number", str: "string"}
    return names.get(annotation, getattr(annotation, "__name__", "?"))


def _default(field: Any) -> str:
    value = field.get_default(call_default_factory=True)
    if value is PydanticUndefined:
        return "**required**"
    if isinstance(value, BaseModel) or (isinstance(value, tuple) and value and isinstance(value[0], BaseModel)):
        return "see meaning"
    if isinstance(value, tuple):
        value = list(value)
    return f"`{json.dumps(value)}`"


def layer_options() -> str:
    """Every layer's own options (`cnai:layers.<name>.<key>`) from its Options model."""
    from engine.registry import LAYERS

    rows = []
    for name, cls in sorted(LAYERS.items()):
        for key, field in cls.Options.model_fields.items():
            if key in ("enabled", "namespace", "values"):
                continue
            meaning = (field.description or "").replace("|", "\\|")
            rows.append([f"`{name}`", f"`{key}`", _type(field.annotation, field.metadata), _default(field), meaning])
    return _table(["Layer", "Key", "Type", "Default", "Meaning"], rows)


def core_layers() -> str:
    from engine.registry import LAYERS

    core = [f"`{n}`" for n, c in sorted(LAYERS.items()) if c.core]
    opt_in = [f"`{n}`" for n, c in sorted(LAYERS.items()) if not c.core]
    return (f"Core (on unless a stack sets `enabled: false`): {', '.join(core)}.\n\n"
            f"Opt-in (off unless a stack sets `enabled: true`): {', '.join(opt_in)}.")


_PROFILE_ROWS = {
    "size": "request table the layers use", "kind_workers": "kind CPU workers",
    "replicas": "controller replicas (cert-manager, Kueue, MLflow...; PDBs when > 1)",
    "ha": "HA topologies (distributed object store, Alertmanager, JupyterHub user scheduler and image puller, "
          "standby database by default)",
    "protect_state": "stateful resources protected (`pulumi destroy` refuses), cloud deletion protection",
    "queue_cpu": "Kueue ClusterQueue default CPU quota", "queue_memory": "Kueue ClusterQueue default memory quota",
    "container_request": "team LimitRange `defaultRequest`", "container_limit": "team LimitRange `default` (limit)",
    "helm_timeout": "Helm release timeout (s)", "notebook_cpu_guarantee": "notebook CPU guarantee at most",
}


def profiles() -> str:
    """The profile settings layers and cluster modules read (modules/shared/profiles.py)."""
    import dataclasses

    from modules.shared.profiles import PROFILES

    def show(v: Any) -> str:
        if isinstance(v, dict):
            return " / ".join(str(x) for x in v.values())
        return "-" if v is None else str(v).lower() if isinstance(v, bool) else str(v)

    names = list(PROFILES)
    rows = [[f"`{f.name}`: {_PROFILE_ROWS[f.name]}", *(show(getattr(PROFILES[n], f.name)) for n in names)]
            for f in dataclasses.fields(next(iter(PROFILES.values()))) if f.name != "name"]
    return _table(["Setting", *(f"`{n}`" for n in names)], rows)


def graph() -> str:
    """Mermaid graph of the layers: solid = requires, dotted = ordered after when enabled."""
    from engine.registry import LAYERS

    ids = {name: name.replace("-", "_") for name in LAYERS}
    lines = ["```mermaid", "graph LR"]
    lines += [f"  {ids[n]}[{n}]" for n in LAYERS]
    for name, cls in LAYERS.items():
        lines += [f"  {ids[r]} --> {ids[name]}" for r in cls.requires]
        lines += [f"  {ids[a]} -.-> {ids[name]}" for a in cls.after if a not in cls.requires]
    return "\n".join(lines + ["```"])


def policies() -> str:
    sys.path.insert(0, str(ROOT / "policies"))
    from rules import RULES

    return _table(["Rule", "Checks"], [[f"`{r.name}`", r.description] for r in RULES])


BLOCKS = {
    "docs/versions.md": {"charts": charts, "manifests": manifests, "images": images, "packages": packages},
    "README.md": {"layers": layers, "graph": graph},
    "docs/architecture.md": {"graph": graph},
    "docs/policies.md": {"policies": policies},
    "docs/configuration.md": {"core-layers": core_layers, "layer-options": layer_options, "profiles": profiles},
}


def render(path: Path, blocks: dict) -> str:
    text = path.read_text()
    for name, fn in blocks.items():
        pattern = re.compile(rf"(<!-- generated:{name} -->\n)(?:.*?\n)?(<!-- /generated:{name} -->)", re.S)
        if not pattern.search(text):
            raise SystemExit(f"{path.relative_to(ROOT)}: no <!-- generated:{name} --> block")
        text = pattern.sub(lambda m: m.group(1) + fn() + "\n" + m.group(2), text)
    return text


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--check", action="store_true", help="fail if a generated block is stale")
    args = ap.parse_args(argv)
    stale = []
    for rel, blocks in BLOCKS.items():
        path = ROOT / rel
        text = render(path, blocks)
        if text != path.read_text():
            if args.check:
                stale.append(rel)
            else:
                path.write_text(text)
    if stale:
        print(f"generated docs are stale: {', '.join(stale)}; run `python -m tools.docs`", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
