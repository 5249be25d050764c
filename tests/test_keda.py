"""KEDA (keda layer, opt-in): the pinned chart with explicit requests, replicas by profile, ServiceMonitors only
with the observability layer, the EventAutoscaling offer, and the order KServe needs (its controller watches
ScaledObjects only if KEDA's CRDs exist when it starts)."""

from __future__ import annotations

import pytest
import yaml

from modules.shared import upstream
from modules.shared.config import ConfigError, quantity
from modules.shared.offers import EventAutoscaling
from modules.shared.upstream import unknown_keys
from tests.conftest import evaluate, needs_upstream, values_of
from tools.harness import ROOT, normalize, run

RELEASE = "kubernetes:helm.sh/v3:Release"
STACKS = ("kind", "kind-gpu", "eks", "gke")
PARTS = ("operator", "metricServer", "webhooks")


def layers(stack: str, **keda) -> dict:
    """The stack's own `cnai:layers` with keda on (an override replaces the whole key)."""
    config = yaml.safe_load((ROOT / "stacks" / f"Pulumi.{stack}.yaml").read_text())["config"]
    return {**(config.get("cnai:layers") or {}), "keda": {"enabled": True, **keda}}


def with_keda(stack: str, extra: dict | None = None, **keda):
    return evaluate(stack, {"cnai:layers": {**layers(stack, **keda), **(extra or {})}})


def deps(rec, reg) -> set[str]:
    return {rec.label(d) for d in reg.depends_on}


@pytest.mark.parametrize("stack", STACKS)
def test_the_layer_plans_on_every_stack(stack):
    rec = with_keda(stack)
    keda = rec.platform.enabled_layer("keda")
    release = rec.get(RELEASE, "keda")
    assert release.inputs["namespace"] == "keda"
    ns = next(o for o in rec.objects() if o["kind"] == "Namespace" and o["metadata"]["name"] == "keda")
    assert ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    assert keda.peers.get(EventAutoscaling) is keda and keda.keda_namespace == "keda"
    out = normalize(rec.outputs["layer:keda"], reveal=True)
    assert out["namespace"] == "keda" and out["scaledObjects"] == "kubectl get scaledobjects -A"
    assert out["externalMetricsApi"] == "v1beta1.external.metrics.k8s.io"


@needs_upstream
@pytest.mark.parametrize("stack", STACKS)
def test_every_values_key_exists_in_the_pinned_chart(stack):
    keys = upstream.chart_facts("keda")["keys"]
    for rec in (with_keda(stack), with_keda(stack, {"observability": {"enabled": False}})):
        assert unknown_keys(values_of(rec, "keda"), keys) == []


@pytest.mark.parametrize("stack", STACKS)
def test_every_pod_requests_what_the_footprint_says(stack):
    rec = with_keda(stack)
    keda, v = rec.platform.enabled_layer("keda"), values_of(rec, "keda")
    planned = {w.name: w for w in keda.workloads()}
    names = {"operator": "keda-operator", "metricServer": "keda-operator-metrics-apiserver",
             "webhooks": "keda-admission-webhooks"}
    assert set(planned) == set(names.values())
    for part in PARTS:
        res = v["resources"][part]
        w = planned[names[part]]
        assert res["requests"] == {"cpu": w.cpu, "memory": w.memory}
        # A CPU limit above the request (the chart's would survive Helm's merge anyway) and a memory limit.
        assert quantity(res["limits"]["cpu"]) >= quantity(res["requests"]["cpu"])
        assert quantity(res["limits"]["memory"]) >= quantity(res["requests"]["memory"])
    assert v["image"] == {"pullPolicy": "IfNotPresent"}  # the chart's default is Always


def test_laptop_is_smaller_than_the_chart_defaults():
    v = values_of(with_keda("kind"), "keda")
    for part in PARTS:
        req = v["resources"][part]["requests"]
        assert quantity(req["cpu"]) <= quantity("20m") and quantity(req["memory"]) <= quantity("64Mi"), part


def test_replicas_and_disruption_budgets_follow_the_profile():
    laptop, production = values_of(with_keda("kind"), "keda"), values_of(with_keda("eks"), "keda")
    for v, replicas in ((laptop, 1), (production, 2)):
        assert v["operator"]["replicaCount"] == v["webhooks"]["replicaCount"] == replicas
        assert v["metricsServer"]["replicaCount"] == 1  # one active external metrics adapter
    assert laptop["podDisruptionBudget"] == {"operator": {}, "metricServer": {}, "webhooks": {}}
    assert production["podDisruptionBudget"] == {"operator": {"minAvailable": 1}, "metricServer": {},
                                                 "webhooks": {"minAvailable": 1}}
    planned = {w.name: w.count for w in with_keda("eks").platform.enabled_layer("keda").workloads()}
    assert planned == {"keda-operator": 2, "keda-operator-metrics-apiserver": 1, "keda-admission-webhooks": 2}


def test_service_monitors_only_with_observability():
    on = with_keda("kind")
    off = with_keda("kind", {"observability": {"enabled": False}})
    for rec, monitored in ((on, True), (off, False)):
        prom = values_of(rec, "keda")["prometheus"]
        for part in ("operator", "metricServer"):  # the chart renders a ServiceMonitor only with both flags
            assert prom[part] == {"enabled": monitored, "serviceMonitor": {"enabled": monitored}}
        assert "webhooks" not in prom
        out = normalize(rec.outputs["layer:keda"], reveal=True)
        assert ("prometheusServerAddress" in out) is monitored
    # The ServiceMonitors need the Prometheus Operator CRDs: the release waits for the observability release.
    assert f"{RELEASE}::observability" in deps(on, on.get(RELEASE, "keda"))
    assert not [d for d in deps(off, off.get(RELEASE, "keda")) if d.startswith(RELEASE)]


def test_kserve_starts_after_keda():
    rec = with_keda("kind")
    waits = {d for r in rec.by_type(RELEASE) if rec.layer_of(r) == "kserve" for d in deps(rec, r)}
    assert f"{RELEASE}::keda" in waits


def test_options_reach_the_chart():
    v = values_of(with_keda("kind", logLevel="debug", scalerTimeout=10000), "keda")
    assert v["logging"] == {"operator": {"level": "debug"}, "metricServer": {"zapLevel": "debug"},
                            "webhooks": {"level": "debug"}}
    assert v["http"] == {"timeout": 10000}
    assert values_of(with_keda("kind"), "keda")["http"] == {"timeout": 3000}  # the chart's default


@pytest.mark.parametrize("keda,key", [({"logLevel": "verbose"}, "logLevel"), ({"scalerTimeout": 10}, "scalerTimeout"),
                                      ({"scalerTimeout": "3000"}, "scalerTimeout"), ({"replicas": 2}, "replicas")])
def test_bad_options_are_one_line_naming_the_key(keda, key):
    with pytest.raises(ConfigError) as err:
        run("kind", {"cnai:layers": layers("kind", **keda)})
    message = str(err.value)
    assert "\n" not in message and message.startswith(f"cnai:layers.keda.{key}"), message


def test_the_namespace_moves():
    rec = with_keda("kind", namespace="autoscaling")
    keda = rec.platform.enabled_layer("keda")
    assert keda.keda_namespace == "autoscaling" and rec.get(RELEASE, "keda").inputs["namespace"] == "autoscaling"
