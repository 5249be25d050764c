"""Offline plan: evaluate the real program for a stack under Pulumi's mock engine and show what it creates.

    python -m tools.plan STACK [--json]

No Pulumi CLI, cluster or credentials are needed. Prints the enabled layers in dependency order with
their pinned sources, the Kubernetes objects created directly, resource counts, the CPU/memory the
profile requests and the number of deploy waves. `--json` prints one document (secrets as "[secret]").
Bad config: exit code 2 and one line on stderr.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections import Counter
from decimal import Decimal
from typing import Any

from modules.shared.config import ConfigError


def footprint(layers) -> dict[str, Any]:
    per_layer = {}
    total_cpu, total_mem = Decimal(0), Decimal(0)
    for layer in layers:
        ws = layer.workloads()
        cpu = sum((w.cpu_cores for w in ws), Decimal(0))
        mem = sum((w.memory_mib for w in ws), Decimal(0))
        total_cpu, total_mem = total_cpu + cpu, total_mem + mem
        per_layer[layer.name] = {
            "cpu_millicores": int(cpu * 1000), "memory_mib": int(mem),
            "pods": [{"name": w.name, "count": w.count, "cpu": w.cpu, "memory": w.memory} for w in ws],
        }
    return {"layers": per_layer, "total": {"cpu_millicores": int(total_cpu * 1000), "memory_mib": int(total_mem)}}


def plan(stack: str) -> dict[str, Any]:
    from engine.graph import waves
    from engine.registry import LAYERS
    from modules.shared.versions import VERSIONS
    from tools.harness import normalize, run

    rec = run(stack)
    spec = rec.spec
    caps, layers = rec.platform.caps, rec.platform.layers
    urn_label = rec.label
    resources = [{
        "type": r.type, "name": r.name,
        "parent": urn_label(r.parent) if r.parent in {x.urn for x in rec.registrations} else None,
        "depends_on": [urn_label(d) for d in r.depends_on],
        "inputs": normalize(r.inputs),
    } for r in rec.registrations]
    releases = [{
        "name": i.get("name"), "namespace": i.get("namespace"), "chart": i.get("chart"),
        "repo": (i.get("repositoryOpts") or {}).get("repo") or i.get("chart", "").rsplit("/", 1)[0],
        "version": i.get("version"), "values": normalize(i.get("values", {})), "layer": rec.layer_of(r),
    } for r in rec.by_type("kubernetes:helm.sh/v3:Release") for i in [r.inputs]]
    return {
        "stack": stack,
        "environment": spec.environment,
        "kubernetesVersion": spec.kubernetesVersion,
        "profile": spec.profile,
        "capabilities": normalize(dataclasses.asdict(caps)),
        "layers": [{
            "name": layer.name, "requires": list(layer.requires),
            "after": [a for a in layer.after if a in spec.enabled_layers()],
            "namespace": layer.namespace,
            "sources": [{"release": r.name, "repo": r.source.repo, "chart": r.source.chart,
                         "version": r.source.version} for r in layer.releases()]
            + [{"manifest": key, "url": VERSIONS.manifest(key).url, "version": VERSIONS.manifest(key).version}
               for key in layer.install_manifests()],
        } for layer in layers],
        "waves": waves(spec, LAYERS),
        "requests": footprint(layers),
        "resource_counts": dict(sorted(Counter(r.type for r in rec.registrations).items())),
        "resources": resources,
        "helm_releases": releases,
        "objects": [normalize(o) for o in rec.objects()],
        "outputs": sorted(rec.outputs),
        "warnings": list(rec.platform.warnings),
    }


def text(doc: dict[str, Any]) -> str:
    lines = [f"stack {doc['stack']}: {doc['environment']} cluster, Kubernetes {doc['kubernetesVersion']}, "
             f"profile {doc['profile']}", "", "Layers (dependency order):"]
    req = doc["requests"]["layers"]
    for layer in doc["layers"]:
        source = ", ".join(f"{s['repo']}/{s['chart']} {s['version']}" if "chart" in s else f"{s['url']}"
                           for s in layer["sources"]) or "platform objects (no chart)"
        deps = ", ".join(layer["requires"] + layer["after"]) or "-"
        r = req[layer["name"]]
        lines.append(f"  {layer['name']:<14} {source:<58} after: {deps:<12} "
                     f"requests {r['cpu_millicores']}m CPU / {r['memory_mib']}Mi")
    total = doc["requests"]["total"]
    lines += ["", f"Requested by the profile: {total['cpu_millicores']}m CPU, {total['memory_mib']}Mi memory; "
              f"deploy waves: {doc['waves']}", "", "Kubernetes objects created directly:"]
    for o in doc["objects"]:
        meta = o["metadata"]
        where = f"{meta['namespace']}/" if meta.get("namespace") else ""
        lines.append(f"  {o['apiVersion']:<30} {o['kind']:<22} {where}{meta['name']}")
    lines += ["", "Resource counts:"]
    lines += [f"  {n:>3}  {t}" for t, n in doc["resource_counts"].items()]
    lines.append(f"  {sum(doc['resource_counts'].values()):>3}  total")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tools.plan", description="Offline plan of a stack.")
    ap.add_argument("stack", help="stack name (stacks/Pulumi.<stack>.yaml) or a path to a stack file")
    ap.add_argument("--json", action="store_true", help="print one JSON document")
    args = ap.parse_args(argv)
    try:
        doc = plan(args.stack)
    except ConfigError as exc:
        print(f"invalid stack config: {exc}", file=sys.stderr)
        return 2
    except FileNotFoundError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    for warning in doc.pop("warnings", []):
        print(f"warning: {warning}", file=sys.stderr)
    print(json.dumps(doc, indent=1, sort_keys=True) if args.json else text(doc))
    return 0


if __name__ == "__main__":
    sys.exit(main())
