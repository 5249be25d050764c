"""The GitHub workflows are valid (official workflow schema) and wired: callers pass only inputs the
reusable kind-stack workflow declares, and the per-layer matrix comes from tools.ci."""

from __future__ import annotations

import subprocess
import sys

import yaml

from modules.shared.versions import ROOT

WORKFLOWS = ROOT / ".github" / "workflows"


def test_workflows_match_the_github_schema():
    files = sorted(str(p) for p in WORKFLOWS.glob("*.yaml"))
    result = subprocess.run([sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.github-workflows",
                             *files], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_callers_use_the_reusable_workflow_inputs():
    reusable = yaml.safe_load((WORKFLOWS / "kind-stack.yaml").read_text())
    declared = set(reusable[True]["workflow_call"]["inputs"])  # YAML reads the `on:` key as True
    for name in ("kind-smoke.yaml", "kind-layers.yaml"):
        doc = yaml.safe_load((WORKFLOWS / name).read_text())
        for job in doc["jobs"].values():
            if job.get("uses", "").endswith("kind-stack.yaml"):
                assert set(job.get("with", {})) <= declared, f"{name} passes undeclared inputs"
    layers = yaml.safe_load((WORKFLOWS / "kind-layers.yaml").read_text())
    assert "tools.ci layers" in layers["jobs"]["layers"]["steps"][-1]["run"]
    assert "schedule" in yaml.safe_load((WORKFLOWS / "kind-smoke.yaml").read_text())[True]  # nightly full stack
