"""The upstream copy the tests and the program read in place (modules/shared/upstream.py): check it, or
fill it from the pinned sources for a fork that has no shared copy.

    python -m tools.upstream check                      every pin has its chart and CRDs in the copy
    python -m tools.upstream fetch [--charts DIR] [--only KEY ...]
                                                        `make upstream`: .cache/upstream from the pins

`fetch` pulls each pinned chart with helm (or takes it from DIR, as `tools.render` does), keeps its
Chart.yaml, values.yaml, values.schema.json and bundled subcharts' values.yaml, and the CRDs it ships
(`helm template --include-crds` with its defaults); install manifests (`versions.yaml` manifests:) are
downloaded (kustomizations built with kubectl) for their CRDs. The cache is git-ignored; nothing of it is
committed. Then `make test` reads it like the shared copy (CNAI_UPSTREAM unset and no ../shared/upstream).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from modules.shared.upstream import CACHE, check, reason, root
from modules.shared.versions import ROOT, VERSIONS


def _chart_dir(archive: Path, work: Path) -> Path:
    """A chart directory from a pulled .tgz (or the directory itself)."""
    if archive.is_dir():
        return archive
    with tarfile.open(archive) as tgz:
        tgz.extractall(work, filter="data")
    return next(p.parent for p in work.glob("*/Chart.yaml"))


def _crds(objects: list[dict[str, Any]], repo: str, tag: str, path: str) -> dict[str, dict[str, Any]]:
    """index.json entries (group -> Kind -> entry) and schema files for the CRDs among `objects`."""
    out: dict[str, dict[str, Any]] = {}
    for crd in objects:
        if crd.get("kind") != "CustomResourceDefinition":
            continue
        spec = crd["spec"]
        group, kind = spec["group"], spec["names"]["kind"]
        versions = {}
        for v in spec.get("versions") or []:
            schema = (v.get("schema") or {}).get("openAPIV3Schema") or {}
            versions[v["name"]] = {"file": f"{group}/{kind}.{v['name']}.json", "served": bool(v.get("served", True)),
                                   "storage": bool(v.get("storage")), "deprecated": bool(v.get("deprecated")),
                                   "_schema": schema}
        out.setdefault(group, {})[kind] = {"repo": repo, "tag": tag, "path": path, "scope": spec.get("scope"),
                                           "plural": spec["names"].get("plural"), "versions": versions}
    return out


def _manifest_objects(url: str, kustomize: bool, kubectl: str) -> list[dict[str, Any]]:
    from tools.render import _Loader

    if kustomize:
        target = str(ROOT / url) if not url.startswith(("http", "git")) else url
        text = subprocess.run([kubectl, "kustomize", target], capture_output=True, text=True, check=True).stdout
    else:
        with urllib.request.urlopen(url, timeout=120) as resp:  # noqa: S310 - a pinned https URL
            text = resp.read().decode()
    return [d for d in yaml.load_all(text, Loader=_Loader) if isinstance(d, dict)]


def _platform_values() -> dict[str, dict[str, Any]]:
    """Each pinned chart's values as some example stack's plan sets them (the first stack that installs it)."""
    from tools.harness import normalize, run, stacks
    from tools.render import chart_source

    out: dict[str, dict[str, Any]] = {}
    for stack in stacks():
        for r in run(stack).by_type("kubernetes:helm.sh/v3:Release"):
            out.setdefault(chart_source(r.inputs["chart"]).key, normalize(r.inputs.get("values") or {}, reveal=True))
    return out


def fetch(into: Path = CACHE, charts: Path | None = None, only: list[str] | None = None) -> list[str]:
    """Fill `into` with the pinned charts' values and CRDs; returns the pins it could not fetch."""
    from tools import helm_bin
    from tools.render import locate, template

    helm = str(helm_bin.fetch())
    kubectl = str(Path(helm).parent / "kubectl")
    values = _platform_values()
    groups: dict[str, dict[str, Any]] = {}
    failed = []
    for key, src in sorted(VERSIONS.charts.items()):
        if only and key not in only:
            continue
        with tempfile.TemporaryDirectory() as work:
            try:
                chart = _chart_dir(locate(src, charts, helm), Path(work))
            except (RuntimeError, StopIteration, OSError) as exc:
                failed.append(f"chart {key} {src.version}: {exc}")
                continue
            target = into / "charts" / key / src.version
            shutil.rmtree(target, ignore_errors=True)
            target.mkdir(parents=True)
            for name in ("Chart.yaml", "values.yaml", "values.schema.json"):
                if (chart / name).exists():
                    shutil.copy(chart / name, target / name)
            for sub in sorted((chart / "charts").glob("*/values.yaml")):
                (target / "charts" / sub.parent.name).mkdir(parents=True, exist_ok=True)
                shutil.copy(sub, target / "charts" / sub.parent.name / "values.yaml")
            # Rendered as the platform installs it, so CRDs behind a values switch (crds.enabled) are there.
            objects = template(helm, chart, key, "default", values.get(key, {}), VERSIONS.kubernetes_default, [])
            for group, kinds in _crds(objects, src.source.split("@")[0], src.version, src.source).items():
                groups.setdefault(group, {}).update(kinds)
    for key, man in sorted(VERSIONS.manifests.items()):
        if only and key not in only or not man.crd_groups:
            continue
        try:
            objects = _manifest_objects(man.url, man.kustomize, kubectl)
        except (OSError, subprocess.CalledProcessError) as exc:
            failed.append(f"manifest {key} {man.version}: {exc}")
            continue
        for group, kinds in _crds(objects, man.source.split("@")[0], man.version, man.source).items():
            groups.setdefault(group, {}).update(kinds)
    for group, kinds in groups.items():
        for kind in kinds.values():
            for meta in kind["versions"].values():
                path = into / "crds" / meta["file"]
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(json.dumps(meta.pop("_schema"), indent=1, sort_keys=True))
    index = into / "crds" / "index.json"
    index.parent.mkdir(parents=True, exist_ok=True)
    old = json.loads(index.read_text())["groups"] if index.exists() else {}
    for group, kinds in groups.items():
        old.setdefault(group, {}).update(kinds)
    index.write_text(json.dumps({"_about": "filled by `python -m tools.upstream fetch` from the pins in versions.yaml",
                                 "groups": old}, indent=1, sort_keys=True))
    return failed


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tools.upstream", description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("check", help="every pin has its chart and CRDs in the upstream copy")
    f = sub.add_parser("fetch", help="fill .cache/upstream from the pinned charts and manifests")
    f.add_argument("--charts", type=Path, help="charts as <key>/<version>/ directories or <chart>-<version>.tgz")
    f.add_argument("--only", nargs="*", help="only these versions.yaml keys")
    f.add_argument("--into", type=Path, default=CACHE)
    args = ap.parse_args(argv)
    if args.cmd == "fetch":
        failed = fetch(args.into, args.charts, args.only)
        for line in failed:
            print(f"not fetched: {line}", file=sys.stderr)
        print(f"upstream copy written to {args.into}")
        return 1 if failed else 0
    if root() is None:
        print(reason(), file=sys.stderr)
        return 2
    problems = check()
    for p in problems:
        print(p, file=sys.stderr)
    if not problems:
        print(f"every pin is in the upstream copy at {root()}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
