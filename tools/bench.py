"""Benchmark: requested CPU/memory per layer, deploy waves and the cost of the offline plan.

    python -m tools.bench      (or `make bench`)

Prints, per stack, what the profile requests per layer and in total (against the laptop budget
of 4 CPU / 8 GiB for the complete platform on kind), the number of deploy waves, and the wall time
of `python -m tools.plan STACK --json` as a multiple of `python -c "import pulumi"` in the same run
(target: at most 10x). A benchmark, not a test: it reports figures and never fails on them.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time

from tools.harness import stacks

LAPTOP_BUDGET = {"cpu_millicores": 4000, "memory_mib": 8192}
RUNS = 3


def _time(cmd: list[str]) -> tuple[float, str]:
    samples, out = [], ""
    for _ in range(RUNS):
        start = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
        samples.append(time.perf_counter() - start)
        out = proc.stdout
    return statistics.median(samples), out


def main() -> int:
    base, _ = _time([sys.executable, "-c", "import pulumi"])
    print(f"baseline: python -c 'import pulumi' = {base:.2f}s (median of {RUNS})\n")
    for stack in stacks():
        if stack.startswith("ci-"):
            continue
        secs, out = _time([sys.executable, "-m", "tools.plan", stack, "--json"])
        doc = json.loads(out)
        req = doc["requests"]
        print(f"stack {stack} ({doc['environment']}, profile {doc['profile']}): "
              f"plan {secs:.2f}s = {secs / base:.1f}x import pulumi (target <= 10x); waves {doc['waves']}")
        for name, r in req["layers"].items():
            print(f"  {name:<14} {r['cpu_millicores']:>6}m CPU {r['memory_mib']:>7}Mi")
        total = req["total"]
        line = f"  {'total':<14} {total['cpu_millicores']:>6}m CPU {total['memory_mib']:>7}Mi"
        if doc["profile"] == "laptop":
            line += (f"   (laptop budget {LAPTOP_BUDGET['cpu_millicores']}m / {LAPTOP_BUDGET['memory_mib']}Mi: "
                     f"{100 * total['cpu_millicores'] // LAPTOP_BUDGET['cpu_millicores']}% CPU, "
                     f"{100 * total['memory_mib'] // LAPTOP_BUDGET['memory_mib']}% memory)")
        print(line + "\n")
    every_layer()
    return 0


def every_layer() -> None:
    """The kind stack with every layer that can run on kind turned on, against the laptop budget."""
    import yaml

    from engine.registry import LAYERS
    from modules.shared.config import ConfigError
    from modules.shared.versions import ROOT
    from tools.harness import run

    base = yaml.safe_load((ROOT / "stacks" / "Pulumi.kind.yaml").read_text())["config"]
    layers = {name: {"enabled": True} for name in LAYERS}
    left_out = []
    while True:
        try:
            rec = run("kind", {"cnai:layers": {**(base.get("cnai:layers") or {}), **layers}})
            break
        except ConfigError as exc:  # a layer that cannot run on kind says so; leave it out and say why
            name = next((n for n in layers if f"cnai:layers.{n}" in str(exc) or f" {n} " in str(exc)), None)
            if name is None or not layers[name]["enabled"]:
                print(f"every layer on kind: cannot plan ({exc})")
                return
            layers[name] = {"enabled": False}
            left_out.append(f"{name} ({exc})")
    from tools.plan import footprint

    req = footprint(rec.platform.layers)
    print("every layer on kind (profile laptop):")
    for name, r in req["layers"].items():
        print(f"  {name:<18} {r['cpu_millicores']:>6}m CPU {r['memory_mib']:>7}Mi")
    totals = {"cpu": req["total"]["cpu_millicores"], "memory": req["total"]["memory_mib"]}
    fits = totals["cpu"] <= LAPTOP_BUDGET["cpu_millicores"] and totals["memory"] <= LAPTOP_BUDGET["memory_mib"]
    print(f"  {'total':<18} {totals['cpu']:>6}m CPU {totals['memory']:>7}Mi   (laptop budget "
          f"{LAPTOP_BUDGET['cpu_millicores']}m / {LAPTOP_BUDGET['memory_mib']}Mi: "
          f"{'fits' if fits else 'does not fit'}; the kind-data and kind-genai stacks each turn on one stage "
          "and drop Pipelines and Katib)")
    for reason in left_out:
        print(f"  left out: {reason}")


if __name__ == "__main__":
    sys.exit(main())
