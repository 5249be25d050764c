"""Generated parts of the docs: tables rendered from versions.yaml, requirements and the layer registry.

Each generated block sits between `<!-- generated:NAME -->` and `<!-- /generated:NAME -->` markers.
`python -m tools.docs` rewrites the blocks; `--check` fails when a committed block is stale (the
offline tests run it, so the docs cannot drift from the code).
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

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
