"""Observability: every monitor scraped, Kueue metrics on, dashboards loaded, Grafana password generated."""

from __future__ import annotations

import json

from tests.conftest import evaluate, values_of
from tools.harness import normalize


def test_prometheus_scrapes_every_monitor_and_keeps_laptop_small():
    v = values_of(evaluate("kind"), "observability")
    spec = v["prometheus"]["prometheusSpec"]
    assert spec["serviceMonitorSelectorNilUsesHelmValues"] is False
    assert spec["podMonitorSelectorNilUsesHelmValues"] is False
    assert spec["retention"] == "1d" and v["alertmanager"]["enabled"] is False
    assert values_of(evaluate("existing"), "observability")["alertmanager"]["enabled"] is True


def test_kueue_metrics_on_and_kueue_waits_for_the_crds():
    rec = evaluate("kind")
    assert values_of(rec, "kueue")["enablePrometheus"] is True
    kueue = rec.get("kubernetes:helm.sh/v3:Release", "kueue")
    assert "kubernetes:helm.sh/v3:Release::observability" in {rec.label(d) for d in kueue.depends_on}
    off = evaluate("kind", {"cnai:layers": {"observability": {"enabled": False}}})
    assert values_of(off, "kueue")["enablePrometheus"] is False


def test_dashboards_cover_gpus_queues_and_layers():
    rec = evaluate("kind")
    maps = {o["metadata"]["name"]: o for o in rec.objects() if o["kind"] == "ConfigMap"
            and o["metadata"].get("labels", {}).get("grafana_dashboard") == "1"}
    assert set(maps) == {"cnai-gpu", "cnai-kueue", "cnai-platform"}
    exprs = " ".join(t["expr"] for m in maps.values() for d in m["data"].values()
                     for p in json.loads(d)["panels"] for t in p["targets"])
    for metric in ("DCGM_FI_DEV_GPU_UTIL", "DCGM_FI_DEV_FB_USED", "kueue_pending_workloads",
                   "kueue_admitted_active_workloads", "kube_deployment_status_replicas_available"):
        assert metric in exprs


def test_grafana_admin_password_is_generated_and_secret():
    rec = evaluate("kind")
    v = values_of(rec, "observability")
    assert v["grafana"]["admin"]["existingSecret"] == "grafana-admin" and "adminPassword" not in v["grafana"]
    secret = rec.get("kubernetes:core/v1:Secret", "secret-monitoring-grafana-admin")
    assert normalize(secret.inputs)["stringData"] == "[secret]"
