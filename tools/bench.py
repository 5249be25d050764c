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
    return 0


if __name__ == "__main__":
    sys.exit(main())
