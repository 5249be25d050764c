"""Smoke: the cluster and every enabled layer are up.

Nodes are Ready; for each enabled layer, its namespace carries the platform labels, every pod in it
is Ready (or finished), its Helm release is deployed at the pinned chart version, and every object
the layer declares (`Layer.objects()`) exists in the cluster.
"""

from __future__ import annotations

import base64
import gzip
import json

import pytest

pytestmark = pytest.mark.smoke

try:  # per-layer test ids; conftest.py puts the project root on sys.path
    from engine.registry import LAYERS

    LAYER_NAMES = sorted(LAYERS)
except Exception:  # noqa: BLE001 - collection must never error; the offline suite reports import problems
    LAYER_NAMES = []


def _condition(obj, kind: str):
    return next((c for c in (obj.status.conditions or []) if c.type == kind), None)


# ---------------------------------------------------------------------------------------------
# Nodes


def test_nodes_ready(platform):
    def check():
        nodes = platform.core.list_node(_request_timeout=30).items
        if not nodes:
            return False, "no nodes"
        bad = []
        for n in nodes:
            ready = _condition(n, "Ready")
            if not ready or ready.status != "True":
                bad.append(f"{n.metadata.name} ({ready.reason if ready else 'no Ready condition'})")
        return not bad, f"{len(nodes)} nodes, not Ready: {', '.join(bad) or 'none'}"

    platform.wait_until(check, "all nodes Ready", timeout=min(platform.timeout, 300))


def test_kind_topology(platform):
    """kind: one control plane, the profile's CPU workers and the GPU worker, at the stack's Kubernetes minor."""
    spec = platform.spec
    if spec.environment != "kind":
        pytest.skip(f"node layout is only known for kind clusters (environment: {spec.environment})")
    from modules.clusters.kind import cpu_workers

    nodes = platform.core.list_node(_request_timeout=30).items
    control = [n for n in nodes if "node-role.kubernetes.io/control-plane" in (n.metadata.labels or {})]
    workers = [n for n in nodes if n not in control]
    expected = cpu_workers(spec) + (1 if spec.gpu.enabled else 0)
    assert len(control) == 1, f"expected 1 control-plane node, found {[n.metadata.name for n in control]}"
    assert len(workers) == expected, (
        f"expected {expected} workers ({cpu_workers(spec)} CPU + {int(spec.gpu.enabled)} GPU), "
        f"found {[n.metadata.name for n in workers]}")
    pools = sorted((n.metadata.labels or {}).get("platform.cnai.dev/pool", "<none>") for n in workers)
    assert pools == sorted(["cpu"] * cpu_workers(spec) + (["gpu"] if spec.gpu.enabled else [])), (
        f"worker pool labels (platform.cnai.dev/pool): {pools}")
    for n in nodes:
        version = n.status.node_info.kubelet_version  # v1.36.1
        minor = ".".join(version.lstrip("v").split(".")[:2])
        assert minor == spec.kubernetesVersion, (
            f"node {n.metadata.name} runs kubelet {version}, "
            f"stack pins cnai:kubernetesVersion {spec.kubernetesVersion}")


# ---------------------------------------------------------------------------------------------
# Layers


def _with_namespace(platform, name: str):
    layer = platform.enabled_layer(name)
    if not layer.namespace:
        pytest.skip(f"layer {name} has no namespace of its own")
    return layer


def _pod_state(platform, pod) -> str | None:
    """None if the pod is fine (Ready, Succeeded, or a failed attempt of a Job that completed), else why not."""
    status = pod.status
    if pod.metadata.deletion_timestamp is not None:
        return None  # on its way out (a rollout or a finished hook)
    if status.phase == "Succeeded":
        return None
    if status.phase == "Running":
        ready = next((c for c in (status.conditions or []) if c.type == "Ready"), None)
        if ready and ready.status == "True":
            return None
    if status.phase == "Failed":
        owner = next((o for o in (pod.metadata.owner_references or []) if o.kind == "Job"), None)
        if owner is not None:
            try:
                job = platform.batch.read_namespaced_job(owner.name, pod.metadata.namespace, _request_timeout=20)
                if any(c.type == "Complete" and c.status == "True" for c in (job.status.conditions or [])):
                    return None  # a retried attempt; the Job itself completed
            except Exception:  # noqa: BLE001 - the Job is gone: judge the pod alone
                pass
    waiting = [f"{cs.name}: {cs.state.waiting.reason}" for cs in (status.container_statuses or [])
               if cs.state and cs.state.waiting]
    return f"{status.phase}{' (' + ', '.join(waiting) + ')' if waiting else ''}"


@pytest.mark.parametrize("name", LAYER_NAMES)
def test_layer_namespace(platform, name):
    layer = _with_namespace(platform, name)
    ns = platform.core.read_namespace(layer.namespace, _request_timeout=30)
    expected = layer.namespace_manifest()["metadata"]["labels"]
    labels = ns.metadata.labels or {}
    wrong = {k: (v, labels.get(k)) for k, v in expected.items() if labels.get(k) != v}
    assert not wrong, f"namespace {layer.namespace} labels differ (expected, actual): {wrong}"


@pytest.mark.parametrize("name", LAYER_NAMES)
def test_layer_pods_ready(platform, name):
    layer = _with_namespace(platform, name)
    ns = layer.namespace

    def check():
        pods = platform.core.list_namespaced_pod(ns, _request_timeout=30).items
        if not pods and (layer.releases() or layer.install_manifests()):
            return False, "no pods yet"
        bad = {p.metadata.name: s for p in pods if (s := _pod_state(platform, p))}
        return not bad, f"{len(pods)} pods; not ready: {bad or 'none'}"

    platform.wait_until(check, f"every pod in namespace {ns} (layer {name}) Ready or Succeeded",
                        diagnose=lambda: f"recent events in {ns}:\n{platform.events(ns)}")


def _release_payload(secret) -> dict:
    """Helm 3 stores the release as base64(gzip(JSON)) inside the secret's (base64) data."""
    raw = base64.b64decode(base64.b64decode(secret.data["release"]))
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    return json.loads(raw)


@pytest.mark.parametrize("name", LAYER_NAMES)
def test_layer_release_deployed(platform, name):
    """Each Helm release of the layer is deployed, from the chart and version versions.yaml pins."""
    layer = platform.enabled_layer(name)
    if not layer.releases():
        pytest.skip(f"layer {name} deploys no Helm chart")
    ns = layer.namespace
    for rel in layer.releases():
        def check(rel=rel):
            secrets = platform.core.list_namespaced_secret(
                ns, label_selector=f"owner=helm,name={rel.name}", _request_timeout=30).items
            if not secrets:
                return False, f"no Helm release secret (owner=helm, name={rel.name}) in {ns}"
            latest = max(secrets, key=lambda s: int((s.metadata.labels or {}).get("version", "0")))
            status = (latest.metadata.labels or {}).get("status")
            revision = latest.metadata.labels.get("version")
            return status == "deployed", f"release {rel.name} revision {revision}: {status}"

        platform.wait_until(check, f"Helm release {rel.name} in {ns} deployed", timeout=min(platform.timeout, 300))
        secrets = platform.core.list_namespaced_secret(
            ns, label_selector=f"owner=helm,name={rel.name},status=deployed", _request_timeout=30).items
        try:
            release = _release_payload(secrets[0])
        except Exception as exc:  # noqa: BLE001 - an unreadable payload is not this test's concern
            pytest.skip(f"release {rel.name} is deployed; its payload could not be decoded ({exc})")
        meta = release.get("chart", {}).get("metadata", {})
        assert meta.get("name") == rel.source.chart, f"release {rel.name} deploys chart {meta.get('name')}"
        assert str(meta.get("version", "")).lstrip("v") == rel.source.version.lstrip("v"), (
            f"release {rel.name} runs chart version {meta.get('version')}, versions.yaml pins {rel.source.version}")


@pytest.mark.parametrize("name", LAYER_NAMES)
def test_layer_objects_exist(platform, name):
    """Every object the layer creates directly (namespaces, quotas, queues, ...) is in the cluster."""
    from kubernetes.dynamic.exceptions import NotFoundError, ResourceNotFoundError

    layer = platform.enabled_layer(name)
    manifests = [o.manifest for o in layer.all_objects()]
    if not manifests:
        pytest.skip(f"layer {name} creates no objects directly")
    missing = []
    for m in manifests:
        meta = m["metadata"]
        ident = f"{m['kind']} {meta.get('namespace', '') + '/' if meta.get('namespace') else ''}{meta['name']}"
        try:
            resource = platform.dynamic.resources.get(api_version=m["apiVersion"], kind=m["kind"])
            resource.get(name=meta["name"], namespace=meta.get("namespace"))
        except ResourceNotFoundError:
            missing.append(f"{ident} (API {m['apiVersion']} not served)")
        except NotFoundError:
            missing.append(ident)
    assert not missing, f"layer {name}: {len(missing)} of {len(manifests)} declared objects missing: {missing}"
