"""Smoke: KEDA scales a workload from zero on an external signal.

The operator, the metrics API server and the admission webhooks are Ready with the replicas the layer plans;
the external metrics APIService (`v1beta1.external.metrics.k8s.io`) is KEDA's and Available. Then, in a
scratch namespace, a ScaledObject on a tiny Deployment at 0 replicas scales it to 1: on a Prometheus query
(`vector(1)`, the trigger KServe creates for LLMs) when the observability layer is on, else on a cron window
around now. The HPA KEDA creates reads the trigger's metric through the external metrics API, which answers.
Everything is deleted afterwards (the scratch namespace goes with it).
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest

from tests.smoke.helpers import SMOKE_LABEL, conditions, unique_suffix

pytestmark = pytest.mark.smoke

GROUP, VERSION = "keda.sh", "v1alpha1"
BUSYBOX = "registry.k8s.io/e2e-test-images/busybox:1.36.1-1"


@pytest.fixture(scope="module")
def keda(platform):
    return platform.enabled_layer("keda")


def _apps(platform):
    from kubernetes import client

    return client.AppsV1Api(platform.api)


def test_keda_components_ready(platform, keda):
    from addons.keda import DEPLOYMENTS

    ns = keda.namespace

    def check():
        state = {}
        for part, name in DEPLOYMENTS.items():
            d = _apps(platform).read_namespaced_deployment(name, ns, _request_timeout=30)
            state[name] = (d.status.ready_replicas or 0, d.spec.replicas, keda.replicas(part))
        bad = {n: s for n, s in state.items() if not (s[0] == s[1] == s[2])}
        return not bad, f"(ready, spec, planned) not all equal: {bad or 'none'}"

    platform.wait_until(check, f"KEDA operator, metrics server and webhooks Ready in {ns}",
                        diagnose=lambda: f"recent events in {ns}:\n{platform.events(ns)}")


def test_external_metrics_api_is_kedas_and_available(platform, keda):
    from kubernetes import client

    from addons.keda import EXTERNAL_METRICS_API, METRICS_SERVER

    api = client.ApiregistrationV1Api(platform.api)

    def check():
        svc = api.read_api_service(EXTERNAL_METRICS_API, _request_timeout=30)
        ref = svc.spec.service
        assert ref is not None and (ref.namespace, ref.name) == (keda.namespace, METRICS_SERVER), (
            f"{EXTERNAL_METRICS_API} points at {ref}: another external metrics adapter owns it (one per cluster)")
        available = next((c for c in svc.status.conditions or [] if c.type == "Available"), None)
        return bool(available and available.status == "True"), \
            f"Available={available.status if available else None} ({available.message if available else ''})"

    platform.wait_until(check, f"APIService {EXTERNAL_METRICS_API} Available", timeout=min(platform.timeout, 300))


def _deployment(name: str) -> dict[str, Any]:
    """A tiny restricted-PSS Deployment at 0 replicas, requests == limits."""
    res = {"cpu": "10m", "memory": "16Mi"}
    labels = {"app": name, **SMOKE_LABEL}
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "labels": dict(labels)},
        "spec": {
            "replicas": 0,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "terminationGracePeriodSeconds": 1,
                    "securityContext": {"runAsNonRoot": True, "runAsUser": 65534, "runAsGroup": 65534,
                                        "seccompProfile": {"type": "RuntimeDefault"}},
                    "containers": [{
                        "name": "main", "image": BUSYBOX, "imagePullPolicy": "IfNotPresent",
                        "command": ["sh", "-c", "sleep 3600"],
                        "resources": {"requests": dict(res), "limits": dict(res)},
                        "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]},
                                            "readOnlyRootFilesystem": True},
                    }],
                },
            },
        },
    }


def _trigger(platform) -> dict[str, Any]:
    """A trigger that is active now: Prometheus `vector(1)` with observability, else a cron window."""
    from modules.shared.offers import Metrics

    metrics = next((layer for layer in platform.layers if Metrics in layer.offers), None)
    if metrics is not None:
        return {"type": "prometheus", "metadata": {"serverAddress": metrics.prometheus_url, "query": "vector(1)",
                                                   "threshold": "1"}}
    now = dt.datetime.now(dt.timezone.utc)
    start, end = now - dt.timedelta(minutes=5), now + dt.timedelta(minutes=55)  # a daily window around now
    return {"type": "cron", "metadata": {"timezone": "Etc/UTC", "start": f"{start.minute} {start.hour} * * *",
                                         "end": f"{end.minute} {end.hour} * * *", "desiredReplicas": "1"}}


def _scaled_object(name: str, trigger: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}", "kind": "ScaledObject",
        "metadata": {"name": name, "labels": dict(SMOKE_LABEL)},
        "spec": {"scaleTargetRef": {"name": name}, "minReplicaCount": 0, "maxReplicaCount": 1,
                 "pollingInterval": 5, "cooldownPeriod": 30, "triggers": [trigger]},
    }


def test_a_scaled_object_scales_from_zero(platform, keda, scratch_namespace):
    ns, name = scratch_namespace, f"smoke-keda-{unique_suffix()}"
    trigger = _trigger(platform)
    _apps(platform).create_namespaced_deployment(ns, _deployment(name), _request_timeout=30)
    platform.custom.create_namespaced_custom_object(GROUP, VERSION, ns, "scaledobjects",
                                                    _scaled_object(name, trigger), _request_timeout=30)
    try:
        def diagnose() -> str:
            so = platform.custom.get_namespaced_custom_object(GROUP, VERSION, ns, "scaledobjects", name,
                                                              _request_timeout=30)
            return (f"ScaledObject status: {json.dumps(so.get('status'))[:1500]}\nevents in {ns}:\n"
                    f"{platform.events(ns)}\nKEDA operator:\n"
                    f"{platform.pods_report(keda.namespace, 'app=keda-operator', tail=30)}")

        def ready():
            so = platform.custom.get_namespaced_custom_object(GROUP, VERSION, ns, "scaledobjects", name,
                                                              _request_timeout=30)
            cond = conditions(so)
            state = {t: (cond.get(t) or {}).get("status") for t in ("Ready", "Active")}
            return state == {"Ready": "True", "Active": "True"}, f"conditions {state}"

        platform.wait_until(ready, f"ScaledObject {ns}/{name} ({trigger['type']}) Ready and Active",
                            timeout=min(platform.timeout, 300), diagnose=diagnose)

        def scaled():
            d = _apps(platform).read_namespaced_deployment(name, ns, _request_timeout=30)
            return (d.status.ready_replicas or 0) == 1, f"spec {d.spec.replicas}, ready {d.status.ready_replicas}"

        platform.wait_until(scaled, f"Deployment {ns}/{name} scaled from 0 to 1 by KEDA",
                            timeout=min(platform.timeout, 300), diagnose=diagnose)

        # The HPA KEDA manages reads the trigger's metric through the external metrics API.
        def metric():
            so = platform.custom.get_namespaced_custom_object(GROUP, VERSION, ns, "scaledobjects", name,
                                                              _request_timeout=30)
            names = (so.get("status") or {}).get("externalMetricNames") or []
            if not names:
                return False, "no externalMetricNames in the ScaledObject's status yet"
            path = f"/apis/external.metrics.k8s.io/v1beta1/namespaces/{ns}/{names[0]}"
            resp = platform.dynamic.request("GET", path, label_selector=f"scaledobject.keda.sh/name={name}",
                                            _request_timeout=30)
            body = json.loads(resp.data)
            return bool(body.get("items")), f"{path}: {json.dumps(body)[:400]}"

        platform.wait_until(metric, f"external metric of ScaledObject {ns}/{name} served by KEDA",
                            timeout=min(platform.timeout, 180), diagnose=diagnose)
        from kubernetes import client

        so = platform.custom.get_namespaced_custom_object(GROUP, VERSION, ns, "scaledobjects", name,
                                                          _request_timeout=30)
        hpa = (so.get("status") or {}).get("hpaName") or f"keda-hpa-{name}"
        assert client.AutoscalingV2Api(platform.api).read_namespaced_horizontal_pod_autoscaler(
            hpa, ns, _request_timeout=30).spec.scale_target_ref.name == name
    finally:
        try:
            platform.custom.delete_namespaced_custom_object(GROUP, VERSION, ns, "scaledobjects", name,
                                                            _request_timeout=30)
            _apps(platform).delete_namespaced_deployment(name, ns, _request_timeout=30)
        except Exception:  # noqa: BLE001 - already gone; the scratch namespace is deleted anyway
            pass
