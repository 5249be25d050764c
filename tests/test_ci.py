"""The per-layer kind CI: every layer that can run on kind gets a job whose stack is valid and small."""

from __future__ import annotations

import subprocess
import sys

import pytest

from engine.registry import LAYERS
from modules.shared.versions import ROOT
from tools import ci
from tools.harness import run


def test_every_layer_but_the_cloud_only_ones_has_a_job():
    assert set(ci.layers()) == set(LAYERS) - {"cluster-autoscaler"}


@pytest.mark.parametrize("layer", ci.layers())
def test_layer_stack_is_valid_and_holds_only_what_the_layer_needs(layer):
    config = ci.stack_config(layer)
    overrides = {k: v for k, v in config.items() if k.startswith("cnai:")}
    rec = run("kind", overrides)
    enabled = set(rec.spec.enabled_layers())
    chain = {r for n in (layer, *ci.DATA_CHAIN.get(layer, ())) for r in ci.requirements(n)}
    assert layer in enabled and enabled <= chain | {"teams"}
    if layer in ci.GPU_SCHEDULING:  # GPU scheduling is tested on simulated GPUs
        assert rec.spec.kind.simulateGpus and rec.spec.gpu.enabled and "gpu-operator" not in enabled
        assert rec.get("command:local:Command", f"simulate-gpus-ci-{layer}-worker2")


def test_the_kueue_job_shares_simulated_gpus_between_two_teams():
    """The smoke scenario (borrow, reclaim, priorities, a queued GPU pod) needs two teams that guarantee
    all GPUs between them and lend to each other."""
    config = ci.stack_config("kueue")
    rec = run("kind", {k: v for k, v in config.items() if k.startswith("cnai:")})
    assert rec.platform.caps.gpu_resources() == {"nvidia.com/gpu": 4}
    queues = {o["metadata"]["name"]: o for o in rec.objects() if o["kind"] == "ClusterQueue"}
    for team in ("team-alpha", "team-beta"):
        gpu = queues[team]["spec"]["resourceGroups"][1]["flavors"][0]["resources"][0]
        assert gpu["nominalQuota"] == "2" and int(gpu["lendingLimit"]) >= 1 and int(gpu["borrowingLimit"]) >= 1
    cohort = next(o for o in rec.objects() if o["kind"] == "Cohort")
    assert cohort["spec"]["resourceGroups"][1]["flavors"][0]["resources"][0]["nominalQuota"] == "0"


def test_the_lakehouse_job_runs_the_whole_data_example():
    """Raw data, Ray, Iceberg, Trino, training into MLflow, serving: one kind job, queued by Kueue; the team may
    reach PyPI (the RayJob's runtime environment installs PyIceberg)."""
    config = ci.stack_config("lakehouse")
    rec = run("kind", {k: v for k, v in config.items() if k.startswith("cnai:")})
    assert {"lakehouse", "ray", "kueue", "mlflow", "kserve"} <= set(rec.spec.enabled_layers())
    assert all(t.allowInternetEgress for t in rec.spec.teams)
    kinds = {(o["kind"], o["metadata"]["name"].rsplit("-", 1)[0]) for o in rec.objects()}
    assert {("RayJob", "lakehouse-example-ingest"), ("Job", "lakehouse-example-train"),
            ("InferenceService", "iris")} <= kinds


def test_kind_ci_builds_the_spark_image_with_iceberg():
    name = ci.stack("spark")
    try:
        image = ci.spark_image(name)
        assert image == "localhost/cnai/spark:4.0.4-iceberg1.10.1"
        dry = subprocess.run(["make", "-n", "image-spark", "REGISTRY=localhost/cnai", f"PY={sys.executable}"],
                             capture_output=True, text=True, cwd=ROOT, check=True).stdout
        assert f"-t {image}" in dry
    finally:
        (ROOT / "stacks" / f"Pulumi.{name}.yaml").unlink()


def test_kind_ci_builds_the_feast_image_that_make_builds_and_loads_it():
    """The workflow builds images/feast with `make image-feast`, loads it into kind and points Feast
    at it, so the bucket smoke test runs in CI instead of skipping."""
    image = ci.feast_image("kind")
    assert image == "localhost/cnai/feast-feature-server:0.66.0-fsspec"
    # With this interpreter, not .venv's: pytest may run without `make test` having made .venv.
    dry = subprocess.run(["make", "-n", "image-feast", f"REGISTRY={ci.CI_REGISTRY}", f"PY={sys.executable}"],
                         cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert f"-t {image}" in dry
    rec = run("kind", {"cnai:kind": {"loadImages": [image]}, "cnai:layers": {"feast": {"image": image}}})
    assert rec.get("command:local:Command", "kind-load-images")
    assert ci.feast_image("eks") == ""  # cloud stacks pull from a registry
    workflow = (ROOT / ".github" / "workflows" / "kind-stack.yaml").read_text()
    assert "tools.ci feast-image" in workflow and "cnai:kind.loadImages[0]" in workflow
