"""The whole program per stack through the offline plan: documented JSON, determinism, waves, footprint."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from engine.graph import waves
from engine.program import load_spec
from engine.registry import LAYERS
from tools.harness import ROOT, stack_config, stacks
from tools.plan import plan, text


@pytest.mark.parametrize("stack", stacks())
def test_plan_json_has_the_documented_shape(stack):
    doc = plan(stack)
    assert doc["stack"] == stack
    names = [layer["name"] for layer in doc["layers"]]
    assert names.index("teams") < names.index("kueue") and names.index("postgres") < names.index("mlflow")
    assert all({"name", "requires"} <= set(layer) for layer in doc["layers"])
    for r in doc["resources"]:
        assert set(r) == {"type", "name", "parent", "depends_on", "inputs"}
    assert {"cert-manager", "gpu-operator", "kueue", "mlflow"} <= {h["name"] for h in doc["helm_releases"]}
    for h in doc["helm_releases"]:
        assert {"name", "namespace", "chart", "repo", "version", "values"} <= set(h)
    assert all({"apiVersion", "kind", "metadata"} <= set(o) for o in doc["objects"])
    json.dumps(doc)  # one JSON document


def test_plan_is_deterministic_across_processes():
    outs = [subprocess.run([sys.executable, "-m", "tools.plan", "kind-gpu", "--json"], cwd=ROOT, check=True,
                           capture_output=True, text=True).stdout for _ in range(2)]
    assert outs[0] == outs[1]


def test_secrets_are_masked_in_the_plan():
    doc = json.dumps(plan("kind"))
    assert "[secret]" in doc
    assert "apiVersion: v1\\nkind: Config" not in doc  # the kubeconfig never appears


def test_waves_are_minimal():
    # Charts start together unless they need another layer: cert-manager (backup plugin TLS) -> postgres
    # -> mlflow -> the KServe example (it logs to MLflow). Per-team objects wait for team namespaces:
    # teams -> jupyterhub (its spawner Role in each team namespace) -> kueue (the hub's LocalQueue)
    # -> trainer -> katib is the longest chain. Only the per-team objects wait for teams, never a
    # chart, so the first link costs seconds.
    assert plan("kind")["waves"] == 5
    off = {"enabled": False}

    def waves_without(*layers):
        return waves(load_spec(stack_config("kind", {"cnai:layers": {n: off for n in layers}})[0], "kind"), LAYERS)

    # teams -> jupyterhub -> kueue -> trainer -> katib (Katib starts after Trainer's CRDs)
    assert waves_without("kserve", "katib") == 4
    assert waves_without("kserve", "jupyterhub") == 4
    assert waves_without("kserve", "mlflow", "feast", "postgres", "trainer", "katib") == 3  # teams, jupyterhub, kueue
    assert waves_without("kserve", "mlflow", "feast", "postgres", "trainer", "katib", "jupyterhub") == 2


def test_laptop_footprint_is_explicit_and_small():
    doc = plan("kind-gpu")
    total = doc["requests"]["total"]
    # The laptop budget (tools/bench.py, docs/adding-a-layer.md): every layer on kind within its requests.
    from tools.bench import LAPTOP_BUDGET

    assert 0 < total["cpu_millicores"] <= LAPTOP_BUDGET["cpu_millicores"]
    assert 0 < total["memory_mib"] <= LAPTOP_BUDGET["memory_mib"]
    for layer in ("cert-manager", "gpu-operator", "kueue", "object-store", "postgres", "mlflow", "kserve"):
        assert doc["requests"]["layers"][layer]["pods"], layer


def test_text_plan_lists_layers_sources_and_objects():
    out = text(plan("kind"))
    assert "gpu-operator   https://helm.ngc.nvidia.com/nvidia/gpu-operator v26.7.0" in out
    assert "kueue.x-k8s.io/v1beta2         ClusterQueue           team-research" in out
    assert "Requested by the profile:" in out and "deploy waves: 5" in out
