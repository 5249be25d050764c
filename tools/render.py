"""Render every Helm release of a stack with the plan's exact values, and check what would deploy.

    python -m tools.render STACK [--charts DIR] [--only RELEASE ...] [--images FILE] [--json]
    make render STACK=kind

For each release of the offline plan: the pinned chart (from DIR, laid out as `<key>/<version>/` chart
directories or `<chart>-<version>.tgz` files, else pulled with helm into .cache/charts), rendered with
`helm template` with the plan's values, the release namespace, the stack's Kubernetes version
(`--kube-version`) and the API versions the charts' CRDs provide (`--api-versions`). Then:

- every rendered object is validated: built-in kinds against the Kubernetes OpenAPI schema of the stack's
  version (kubernetes-validate, strict), custom resources against the CRDs the charts render (unknown
  fields rejected);
- every container of a long-running pod (Deployment, StatefulSet, DaemonSet, ReplicaSet, Pod) requests
  CPU and memory;
- per layer, what the releases render requests exactly what the plan's footprint says the layer's
  releases request (`Workload.rendered`), so `make bench` figures are what deploys;
- every image is pinned (a tag other than `latest`, or a digest) and listed (`--images FILE`, one per line,
  for the image scan): pod templates and the images custom resources name, of the releases and of the
  objects the program creates directly. Serving-runtime images (a catalog: they run only when a model
  selects the runtime) are listed apart.

Exit code 1 on any problem, 2 on bad input. Helm comes from $HELM or `make helm` (tools/helm_bin.py).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml

from modules.shared.config import ConfigError
from modules.shared.versions import ROOT, VERSIONS, ChartSource
from policies.framework import image_refs
from tools.rendered import (
    LONG_RUNNING,
    REFERENCE,
    crd_versions,
    missing_requests,
    pod_requests,
    pod_template,
    stack_images,
    unpinned,
    validate,
)

CACHE = ROOT / ".cache" / "charts"


class _Loader(yaml.SafeLoader):
    """Safe YAML, plus the `=` scalar some CRDs list (YAML 1.1's value type), read as a string."""


_Loader.add_constructor("tag:yaml.org,2002:value", lambda loader, node: loader.construct_scalar(node))


@dataclass
class Rendered:
    release: str
    layer: str
    chart: str
    objects: list[dict[str, Any]] = field(default_factory=list)


# -- charts ------------------------------------------------------------------------------------------

def chart_source(ref: str) -> ChartSource:
    found = [c for c in VERSIONS.charts.values() if c.ref == ref]
    if len(found) != 1:
        raise ConfigError(f"chart {ref}: not pinned in versions.yaml")
    return found[0]


def locate(src: ChartSource, charts: Path | None, helm: str) -> Path:
    """The pinned chart: a directory or .tgz under `charts`, or pulled with helm into .cache/charts."""
    bare = src.version.lstrip("v")
    if charts:
        for candidate in (charts / src.key / src.version, charts / src.key / bare,
                          charts / f"{src.chart}-{src.version}.tgz", charts / f"{src.chart}-{bare}.tgz"):
            if candidate.exists():
                return candidate
    for candidate in (CACHE / f"{src.chart}-{src.version}.tgz", CACHE / f"{src.chart}-{bare}.tgz"):
        if candidate.exists():
            return candidate
    CACHE.mkdir(parents=True, exist_ok=True)
    cmd = ([helm, "pull", src.ref, "--version", src.version] if src.oci
           else [helm, "pull", src.chart, "--repo", src.repo, "--version", src.version])
    proc = subprocess.run(cmd + ["--destination", str(CACHE)], capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"helm pull {src.key} {src.version}: {proc.stderr.strip()}")
    return next(CACHE.glob(f"{src.chart}-*{bare}.tgz"))


def template(helm: str, chart: Path, release: str, namespace: str, values: dict[str, Any], kube_version: str,
             api_versions: list[str]) -> list[dict[str, Any]]:
    """`helm template` of one release: its rendered objects (CRDs included, helm test hooks skipped)."""
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
        yaml.safe_dump(values, f)
    cmd = [helm, "template", release, str(chart), "--namespace", namespace, "--values", f.name,
           "--kube-version", f"v{kube_version}.0", "--include-crds", "--skip-tests"]
    for api in api_versions:
        cmd += ["--api-versions", api]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True)
    finally:
        Path(f.name).unlink()
    if proc.returncode != 0:
        raise RuntimeError(f"helm template {release}: {proc.stderr.strip()[-2000:]}")
    return [d for d in yaml.load_all(proc.stdout, Loader=_Loader) if isinstance(d, dict) and d.get("kind")]


# -- a stack -----------------------------------------------------------------------------------------

def render_stack(stack: str, charts: Path | None = None, only: list[str] | None = None,
                 helm: str | None = None) -> dict[str, Any]:
    from tools import helm_bin
    from tools.harness import normalize, run

    helm = helm or str(helm_bin.fetch())
    rec = run(stack)
    caps, version = rec.platform.caps, rec.spec.kubernetesVersion
    every = rec.by_type("kubernetes:helm.sh/v3:Release")
    releases = [r for r in every if not only or r.name in only]
    # A layer with a release left out (--only) renders part of its footprint: no comparison.
    partial = {rec.layer_of(r) for r in every if r not in releases}
    located = {r.name: locate(chart_source(r.inputs["chart"]), charts, helm) for r in releases}

    def render_all(api_versions: list[str]) -> list[Rendered]:
        out = []
        for r in releases:
            i = r.inputs
            values = normalize(i.get("values") or {}, reveal=True)
            out.append(Rendered(r.name, rec.layer_of(r), i["chart"],
                                template(helm, located[r.name], i["name"], i["namespace"], values, version,
                                         api_versions)))
        return out

    crds = crd_versions([o for rel in render_all([]) for o in rel.objects])
    api_versions = sorted({f"{g}/{v}" for g, v, _ in crds} | {f"{g}/{v}/{k}" for g, v, k in crds})
    rendered = render_all(api_versions)
    problems: list[str] = []
    per_layer: dict[str, dict[str, Decimal]] = {}
    gpu_selector = set(caps.gpu_node_selector.items())
    for rel in rendered:
        totals = per_layer.setdefault(rel.layer, {"cpu": Decimal(0), "memory": Decimal(0)})
        for obj in rel.objects:
            problem = validate(obj, version, crds)
            if problem:
                problems.append(f"{rel.release}: {problem}")
            problems += [f"{rel.release}: {m}" for m in missing_requests(obj)]
            if obj["kind"] in LONG_RUNNING:
                pod, count = pod_template(obj)
                if count < 0:  # a DaemonSet: on GPU nodes where it selects them, else on every node
                    selector = set((pod.get("nodeSelector") or {}).items())
                    count = caps.gpu_nodes if selector and selector <= gpu_selector else caps.nodes
                cpu, mem = pod_requests(pod)
                totals["cpu"] += cpu * count
                totals["memory"] += mem * count
    planned = {layer.name: layer for layer in rec.platform.layers}
    requests = {}
    for name, totals in sorted(per_layer.items()):
        ws = [w for w in planned[name].workloads() if w.rendered]
        plan_cpu = sum((w.cpu_cores for w in ws), Decimal(0))
        plan_mem = sum((w.memory_mib for w in ws), Decimal(0))
        requests[name] = {
            "rendered": {"cpu_millicores": int(totals["cpu"] * 1000), "memory_mib": int(totals["memory"])},
            "plan": {"cpu_millicores": int(plan_cpu * 1000), "memory_mib": int(plan_mem)}}
        if name not in partial and requests[name]["rendered"] != requests[name]["plan"]:
            problems.append(f"{name}: the releases render {requests[name]['rendered']} but the plan's footprint "
                            f"says {requests[name]['plan']}")
    runs, catalog = stack_images([o for r in rendered for o in r.objects] + rec.objects())
    # Images that values name but no rendered object holds: notebook images JupyterHub spawns.
    named = {ref for r in releases for _, ref in image_refs(normalize(r.inputs.get("values") or {}))
             if REFERENCE.match(ref)}
    runs = sorted(set(runs) | (named - set(catalog)))
    problems += unpinned(runs + catalog)
    return {"stack": stack, "kubernetesVersion": version, "problems": problems, "requests": requests,
            "releases": [{"release": r.release, "layer": r.layer, "chart": r.chart, "objects": len(r.objects)}
                         for r in rendered],
            "images": runs, "catalog_images": catalog}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tools.render", description=__doc__.split("\n")[0])
    ap.add_argument("stack", help="stack name (stacks/Pulumi.<stack>.yaml) or a path to a stack file")
    ap.add_argument("--charts", type=Path, help="charts as <key>/<version>/ directories or <chart>-<version>.tgz")
    ap.add_argument("--only", nargs="*", help="render only these releases")
    ap.add_argument("--images", type=Path, help="write every container image here, one per line")
    ap.add_argument("--json", action="store_true", help="print one JSON document")
    args = ap.parse_args(argv)
    try:
        doc = render_stack(args.stack, args.charts, args.only)
    except ConfigError as exc:
        print(f"invalid stack config: {exc}", file=sys.stderr)
        return 2
    except (RuntimeError, FileNotFoundError, StopIteration) as exc:
        print(f"render: {exc}", file=sys.stderr)
        return 2
    if args.images:
        args.images.write_text("".join(f"{i}\n" for i in doc["images"]))
    if args.json:
        print(json.dumps(doc, indent=1, sort_keys=True))
    else:
        for r in doc["releases"]:
            print(f"{r['layer']:<18} {r['release']:<24} {r['objects']:>4} objects  {r['chart']}")
        for layer, r in doc["requests"].items():
            print(f"{layer:<18} renders {r['rendered']['cpu_millicores']}m / {r['rendered']['memory_mib']}Mi, "
                  f"plan {r['plan']['cpu_millicores']}m / {r['plan']['memory_mib']}Mi")
        print(f"{len(doc['images'])} images run, {len(doc['catalog_images'])} more in serving runtimes")
        for p in doc["problems"]:
            print(f"problem: {p}")
    return 1 if doc["problems"] else 0


if __name__ == "__main__":
    sys.exit(main())
