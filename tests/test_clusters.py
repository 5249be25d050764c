"""Cluster modules on the mock graph: kind (CLI through pulumi-command) and existing (kubeconfig)."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest
import yaml

from modules.clusters.kind import HERE as KIND_DIR
from modules.shared.config import ConfigError
from tests.conftest import evaluate
from tools.harness import normalize

CMD = "command:local:Command"


def kind_config(rec):
    return yaml.safe_load(rec.get(CMD, "kind-cluster").inputs["stdin"])


def test_kind_config_pins_the_node_image_by_digest_and_sizes_from_profile():
    cfg = kind_config(evaluate("kind"))
    assert cfg["apiVersion"] == "kind.x-k8s.io/v1alpha4" and cfg["name"] == "cnai"
    roles = [n["role"] for n in cfg["nodes"]]
    assert roles == ["control-plane", "worker"]  # laptop profile: one CPU worker
    for node in cfg["nodes"]:
        assert re.fullmatch(r"kindest/node:v1\.36\.\d+@sha256:[0-9a-f]{64}", node["image"])
        assert "extraMounts" not in node


def test_kind_version_and_workers_follow_config():
    cfg = kind_config(evaluate("kind", {"cnai:kubernetesVersion": "1.34", "cnai:kind": {"workers": 3}}))
    assert [n["role"] for n in cfg["nodes"]].count("worker") == 3
    assert all(n["image"].startswith("kindest/node:v1.34.") for n in cfg["nodes"])


def test_kind_gpu_worker_gets_passthrough_mounts_labels_and_taint():
    cfg = kind_config(evaluate("kind-gpu"))
    gpu = cfg["nodes"][-1]
    assert gpu["labels"]["nvidia.com/gpu.present"] == "true"
    assert gpu["extraMounts"] == [{"hostPath": "/dev/null", "containerPath": "/var/run/nvidia-container-devices/0"}]
    join = yaml.safe_load(gpu["kubeadmConfigPatches"][0])
    assert join["nodeRegistration"]["taints"] == [{"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}]
    two = kind_config(evaluate("kind-gpu", {"cnai:gpu": {"enabled": True, "count": 2}}))["nodes"][-1]
    assert [m["containerPath"] for m in two["extraMounts"]] == [
        "/var/run/nvidia-container-devices/0", "/var/run/nvidia-container-devices/1"]


def test_kind_gpu_setup_runs_on_the_gpu_worker_before_any_layer():
    rec = evaluate("kind-gpu")
    setup = rec.get(CMD, "gpu-setup-cnai-gpu-worker2")
    assert setup.inputs["environment"]["NODE"] == "cnai-gpu-worker2"
    assert setup.inputs["environment"]["TOOLKIT_VERSION"] == "1.20.0-1"
    for reg in rec.by_type("kubernetes:core/v1:Namespace"):
        assert f"{CMD}::gpu-setup-cnai-gpu-worker2" in {rec.label(d) for d in reg.depends_on}


def test_kind_lifecycle_commands_and_secret_kubeconfig():
    rec = evaluate("kind")
    create = rec.get(CMD, "kind-cluster").inputs
    assert "kind create cluster --name cnai --config - --wait 300s" in create["create"]
    assert create["delete"] == "kind delete cluster --name cnai"
    assert "cnai kind preflight" in create["create"]  # host checks run first
    assert create["environment"]["KIND_VERSION"] == "v0.32.0"
    kubeconfig = rec.get(CMD, "kind-kubeconfig").inputs
    assert kubeconfig["create"] == "kind get kubeconfig --name cnai" and kubeconfig["logging"] == "stderr"
    assert normalize(rec.get("pulumi:providers:kubernetes", "kind").inputs)["kubeconfig"] == "[secret]"


def test_kind_scripts_are_valid_bash():
    for script in ("preflight.sh", "gpu-node.sh"):
        subprocess.run(["bash", "-n", str(KIND_DIR / script)], check=True)


def test_preflight_fails_with_a_clear_message_without_docker(tmp_path):
    proc = subprocess.run([shutil.which("bash"), str(KIND_DIR / "preflight.sh")], capture_output=True, text=True,
                          env={"PATH": str(tmp_path), "KIND_VERSION": "v0.32.0", "GPU": "false", "GPU_COUNT": "1"})
    assert proc.returncode == 1
    assert proc.stderr.strip() == "cnai kind preflight: docker is not installed (https://docs.docker.com/engine/install/)"


def test_existing_cluster_adopts_a_kubeconfig_context():
    rec = evaluate("existing")
    assert not rec.by_type(CMD)
    provider = normalize(rec.get("pulumi:providers:kubernetes", "existing").inputs, reveal=True)
    assert provider["context"] == "ml-prod"
    assert provider["kubeconfig"].endswith("/.kube/config")
    assert normalize(rec.get("pulumi:providers:kubernetes", "existing").inputs)["kubeconfig"] == "[secret]"
    for reg in rec.registrations:
        if reg.type.startswith("kubernetes:") and reg.custom:
            assert reg.type == "pulumi:providers:kubernetes" or rec.layer_of(reg)


def test_kind_load_images_reach_the_nodes_before_any_layer():
    """A host-built image (CI's images/feast) is loaded into the cluster before layers install."""
    image = "localhost/cnai/feast-feature-server:0.66.0-fsspec"
    rec = evaluate("kind", {"cnai:kind": {"loadImages": [image]}})
    load = rec.get(CMD, "kind-load-images")
    assert load.inputs["create"] == f"kind load docker-image --name cnai {image}"
    assert f"{CMD}::kind-cluster" in {rec.label(d) for d in load.depends_on}
    for reg in rec.by_type("kubernetes:core/v1:Namespace"):
        assert f"{CMD}::kind-load-images" in {rec.label(d) for d in reg.depends_on}
    assert not [r for r in evaluate("kind").by_type(CMD) if r.name == "kind-load-images"]


def test_kind_load_images_rejects_a_bad_reference():
    with pytest.raises(ConfigError, match=r"^cnai:kind.loadImages\[0\]: must be an image reference"):
        evaluate("kind", {"cnai:kind": {"loadImages": ["not an image"]}})
