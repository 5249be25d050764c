"""Smoke: GPUs are schedulable and usable (only for stacks with `cnai:gpu.enabled: true`).

GPU nodes (the stack's GPU node selector, `nvidia.com/gpu.present=true` by default) advertise
allocatable GPUs, the operator's ClusterPolicy is ready, and a pod asking for one GPU runs
`nvidia-smi -L` from a pinned CUDA image and sees `GPU 0`.
"""

from __future__ import annotations

from typing import Any

import pytest

pytestmark = pytest.mark.smoke

CUDA = "nvcr.io/nvidia/cuda:12.9.1-base-ubuntu24.04"


@pytest.fixture(scope="module")
def gpu(platform) -> dict[str, Any]:
    spec, caps = platform.spec, platform.caps
    if not spec.gpu.enabled:
        pytest.skip(f"stack {platform.stack} has cnai:gpu.enabled: false (no GPU nodes to test)")
    if platform.layer("gpu-operator") is None:
        pytest.skip(f"layer gpu-operator is not enabled in stack {platform.stack}: nothing advertises GPUs")
    from modules.clusters.contract import GPU_RESOURCE, GPU_TAINT

    resources = caps.gpu_resources()
    resource = next(iter(sorted(resources)), GPU_RESOURCE)
    return {
        "resource": resource,
        "expected": resources.get(resource) if spec.environment == "kind" else None,  # known exactly on kind
        "selector": dict(caps.gpu_node_selector),
        "tolerations": [dict(t) for t in caps.gpu_tolerations] or [dict(GPU_TAINT)],
    }


def test_gpu_nodes_allocatable(platform, gpu):
    selector = ",".join(f"{k}={v}" for k, v in gpu["selector"].items())
    resource = gpu["resource"]

    def check():
        nodes = platform.core.list_node(label_selector=selector, _request_timeout=30).items
        if not nodes:
            return False, f"no node labelled {selector}"
        counts = {n.metadata.name: int((n.status.allocatable or {}).get(resource, "0")) for n in nodes}
        if any(c < 1 for c in counts.values()):
            return False, f"allocatable {resource} per node: {counts}"
        if gpu["expected"] is not None and sum(counts.values()) != gpu["expected"]:
            return False, f"allocatable {resource} per node: {counts}; expected {gpu['expected']} in total"
        return True, f"allocatable {resource} per node: {counts}"

    ns = platform.layer("gpu-operator").namespace
    platform.wait_until(check, f"GPU nodes ({selector}) advertise allocatable {resource}",
                        diagnose=lambda: f"recent events in {ns}:\n{platform.events(ns)}")


def test_cluster_policy_ready(platform, gpu):
    def check():
        items = platform.custom.list_cluster_custom_object("nvidia.com", "v1", "clusterpolicies",
                                                           _request_timeout=30)["items"]
        if not items:
            return False, "no ClusterPolicy"
        states = {p["metadata"]["name"]: (p.get("status") or {}).get("state") for p in items}
        return all(s == "ready" for s in states.values()), f"ClusterPolicy states: {states}"

    platform.wait_until(check, "GPU operator ClusterPolicy ready")


def test_gpu_pod_runs_nvidia_smi(platform, gpu, scratch_namespace):
    ns = scratch_namespace
    manifest = {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"generateName": "smoke-nvidia-smi-", "labels": {"app.kubernetes.io/part-of": "cnai-smoke"}},
        "spec": {
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": 1,
            "nodeSelector": gpu["selector"],
            "tolerations": gpu["tolerations"],
            "containers": [{
                "name": "main", "image": CUDA, "imagePullPolicy": "IfNotPresent",
                "command": ["nvidia-smi", "-L"],
                "resources": {"limits": {gpu["resource"]: "1"}},
                "securityContext": {"allowPrivilegeEscalation": False},
            }],
        },
    }
    pod = platform.core.create_namespaced_pod(ns, manifest)
    name = pod.metadata.name

    def done():
        p = platform.core.read_namespaced_pod(name, ns, _request_timeout=30)
        waiting = [f"{cs.state.waiting.reason}: {cs.state.waiting.message}" for cs in p.status.container_statuses or []
                   if cs.state and cs.state.waiting]
        return p.status.phase in ("Succeeded", "Failed"), f"phase {p.status.phase} {waiting or ''}"

    platform.wait_until(done, f"GPU pod {ns}/{name} finished",
                        diagnose=lambda: f"events:\n{platform.events(ns, name)}")
    phase = platform.core.read_namespaced_pod(name, ns, _request_timeout=30).status.phase
    logs = platform.pod_logs(ns, name)
    assert phase == "Succeeded", f"nvidia-smi -L pod ended {phase}; logs:\n{logs}\nevents:\n{platform.events(ns, name)}"
    assert "GPU 0" in logs, f"nvidia-smi -L did not list GPU 0; logs:\n{logs}"
