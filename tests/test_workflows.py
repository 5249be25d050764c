"""The GitHub workflows are valid (official workflow schema) and wired: callers pass only inputs the
reusable kind-stack workflow declares, and the per-layer matrix comes from tools.ci; the render workflow renders
every stack and scans every image it lists with the pinned Trivy."""

from __future__ import annotations

import json
import subprocess
import sys

import yaml

from modules.shared.versions import ROOT, VERSIONS

WORKFLOWS = ROOT / ".github" / "workflows"
VERSIONS_TRIVY = VERSIONS.tools["trivy"].lstrip("v")


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


def test_every_stack_is_rendered_and_every_image_scanned():
    from tools.harness import stacks

    doc = yaml.safe_load((WORKFLOWS / "render.yaml").read_text())
    jobs = doc["jobs"]
    assert "tools.ci stacks" in jobs["stacks"]["steps"][-1]["run"]
    assert jobs["render"]["strategy"]["matrix"]["stack"] == "${{ fromJSON(needs.stacks.outputs.stacks) }}"
    assert any("make render STACK=${{ matrix.stack }}" in s.get("run", "") for s in jobs["render"]["steps"])
    assert "tools.ci scan-matrix" in jobs["images"]["steps"][-1]["run"]
    scan = jobs["scan"]
    runs = " ".join(s.get("run", "") for s in scan["steps"])
    assert "--severity CRITICAL --ignore-unfixed --exit-code 1" in runs and "--format cyclonedx" in runs
    assert any(s.get("uses", "").startswith("actions/upload-artifact") and s["with"]["path"] == "sbom.cdx.json"
               for s in scan["steps"])
    assert "schedule" in doc[True]  # new vulnerabilities appear without a change here
    # The Trivy version is the one pin in versions.yaml, installed from its release with the checksum checked.
    text = (WORKFLOWS / "render.yaml").read_text()
    assert VERSIONS_TRIVY not in text
    script = (ROOT / ".github" / "scripts" / "install-trivy").read_text()
    assert "sha256sum --check" in script and "checksums.txt" in script
    # The stacks the matrix renders are the stack files; an image listed by two stacks is scanned once.
    assert json.loads(subprocess.run([sys.executable, "-m", "tools.ci", "stacks"], capture_output=True, text=True,
                                     cwd=ROOT, check=True).stdout) == [s for s in stacks() if not s.startswith("ci-")]


def test_the_scan_matrix_lists_each_image_once(tmp_path):
    from tools import ci

    (tmp_path / "a.txt").write_text("quay.io/a/b:1\nghcr.io/x/y@sha256:" + "0" * 64 + "\n")
    (tmp_path / "b.txt").write_text("quay.io/a/b:1\n\n")
    matrix = ci.scan_matrix([str(tmp_path / "a.txt"), str(tmp_path / "b.txt")])
    assert matrix == [{"image": "ghcr.io/x/y@sha256:" + "0" * 64, "slug": "ghcr.io_x_y"},
                      {"image": "quay.io/a/b:1", "slug": "quay.io_a_b_1"}]
