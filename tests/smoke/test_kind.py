"""Smoke: kind node containers, seen from the Docker host (testinfra's local backend).

Only for `environment: kind` with a reachable Docker daemon: every node container runs the node
image pinned (by digest) in versions.yaml, and with GPUs the GPU worker sees the passed-through GPU
and has the NVIDIA runtime as containerd's default (what `gpu-node.sh` sets up).
"""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.smoke

testinfra_hosts = ["local://"]  # the machine running kind; `host.run` executes `docker ...` here


@pytest.fixture(scope="module")
def docker(platform, host):
    if platform.spec.environment != "kind":
        pytest.skip(f"environment {platform.spec.environment}: no kind node containers to inspect")
    if not host.exists("docker"):
        pytest.skip("docker CLI not found on this machine: cannot inspect kind node containers")
    info = host.run("docker info --format '{{.ServerVersion}}'")
    if info.rc != 0:
        pytest.skip(f"docker daemon not reachable ({info.stderr.strip()[:200]})")
    return host


def test_node_image_pinned(platform, docker):
    from modules.clusters.kind import node_image

    pinned = node_image(platform.spec)  # kindest/node:vX.Y.Z@sha256:...
    digest = pinned.split("@", 1)[1]
    nodes = [n.metadata.name for n in platform.core.list_node(_request_timeout=30).items]
    wrong = {}
    for name in nodes:
        out = docker.run("docker inspect --format '{{json .Config.Image}} {{json .Image}}' %s", name)
        assert out.rc == 0, f"docker inspect {name} failed: {out.stderr.strip()}"
        ref, image_id = (json.loads(part) for part in out.stdout.split())
        if digest in ref:
            continue
        repo_digests = docker.run("docker image inspect --format '{{json .RepoDigests}}' %s", image_id)
        if repo_digests.rc == 0 and digest in repo_digests.stdout:
            continue
        wrong[name] = ref
    assert not wrong, f"node containers not running the pinned image {pinned}: {wrong}"


def test_gpu_worker_passthrough(platform, docker):
    spec = platform.spec
    if not spec.gpu.enabled:
        pytest.skip(f"stack {platform.stack} has cnai:gpu.enabled: false (no GPU worker)")
    from modules.clusters.kind import cpu_workers, worker_name

    node = worker_name(spec.kind.clusterName, cpu_workers(spec) + 1)
    smi = docker.run("docker exec %s nvidia-smi -L", node)
    assert smi.rc == 0, f"nvidia-smi -L in kind node {node} failed (rc {smi.rc}): {smi.stderr.strip()}"
    gpus = [line for line in smi.stdout.splitlines() if line.startswith("GPU ")]
    assert len(gpus) == spec.gpu.count, (
        f"kind node {node} sees {len(gpus)} GPU(s), cnai:gpu.count is {spec.gpu.count}:\n{smi.stdout}")
    dump = docker.run("docker exec %s containerd config dump", node)
    assert dump.rc == 0, f"containerd config dump in {node} failed: {dump.stderr.strip()}"
    assert 'default_runtime_name = "nvidia"' in dump.stdout, (
        f"containerd in {node} does not default to the nvidia runtime (gpu-node.sh sets it)")
