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
    assert set(maps) == {"cnai-gpu", "cnai-kueue", "cnai-llm", "cnai-platform"}
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


def test_otel_collector_sends_metrics_to_prometheus_over_otlp():
    rec = evaluate("existing")
    prom = values_of(rec, "observability")["prometheus"]["prometheusSpec"]
    assert prom["enableOTLPReceiver"] is True
    v = values_of(rec, "otel-collector")
    assert v["mode"] == "deployment" and v["image"]["repository"] == "otel/opentelemetry-collector-k8s"
    assert v["command"]["name"] == "otelcol-k8s"
    exporter = v["config"]["exporters"]["otlp_http/prometheus"]
    assert exporter["metrics_endpoint"] == \
        "http://observability-kube-prometh-prometheus.monitoring.svc.cluster.local:9090/api/v1/otlp/v1/metrics"
    pipes = v["config"]["service"]["pipelines"]
    assert pipes["metrics"]["exporters"] == ["otlp_http/prometheus"]
    assert all(p["receivers"] == ["otlp"] for p in pipes.values())
    assert v["serviceMonitor"]["enabled"] and v["ports"]["metrics"]["enabled"]  # the monitor needs the port
    assert not any(v["ports"][p]["enabled"] for p in ("jaeger-compact", "jaeger-thrift", "jaeger-grpc", "zipkin"))
    sc, psc = v["securityContext"], v["podSecurityContext"]
    assert sc["allowPrivilegeEscalation"] is False and sc["capabilities"] == {"drop": ["ALL"]}
    assert psc["runAsNonRoot"] is True and psc["seccompProfile"] == {"type": "RuntimeDefault"}
    assert rec.outputs["layer:observability"]["otlpEndpoint"] == \
        "http://otel-collector.monitoring.svc.cluster.local:4317"
    kind = evaluate("kind")
    assert "otel-collector" not in {r.name for r in kind.by_type("kubernetes:helm.sh/v3:Release")}
    assert values_of(kind, "observability")["prometheus"]["prometheusSpec"]["enableOTLPReceiver"] is False


def test_notebooks_and_model_servers_send_traces_to_the_collector():
    """With the collector on, notebooks' OpenTelemetry SDKs and MLflow tracing, and the example model server,
    export to it; every span shows in the collector's log (its traces exporter is `detailed` debug)."""
    rec = evaluate("kind", {"cnai:layers": {"observability": {"otelCollector": True}}})
    endpoint = "http://otel-collector.monitoring.svc.cluster.local:4317"
    env = values_of(rec, "jupyterhub")["singleuser"]["extraEnv"]
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == endpoint and env["OTEL_EXPORTER_OTLP_PROTOCOL"] == "grpc"
    assert env["MLFLOW_TRACE_ENABLE_OTLP_DUAL_EXPORT"] == "true"  # MLflow's own trace view keeps its traces
    isvc = next(o for o in rec.objects() if o["kind"] == "InferenceService")
    assert isvc["spec"]["predictor"]["model"]["env"] == [{"name": "MLSERVER_TRACING_SERVER", "value": endpoint}]
    collector = values_of(rec, "otel-collector")["config"]
    assert collector["service"]["pipelines"]["traces"]["exporters"] == ["debug/traces"]
    assert collector["exporters"]["debug/traces"] == {"verbosity": "detailed"}
    # Without the collector, nothing points at an endpoint that does not exist.
    off = evaluate("kind")
    off_env = values_of(off, "jupyterhub")["singleuser"]["extraEnv"]
    assert not any(k.startswith(("OTEL_", "MLFLOW_TRACE")) for k in off_env)
    assert "env" not in next(o for o in off.objects() if o["kind"] == "InferenceService")["spec"]["predictor"]["model"]
    no_mlflow = evaluate("kind", {"cnai:layers": {"observability": {"otelCollector": True},
                                                  "mlflow": {"enabled": False}, "kserve": {"enabled": False}}})
    env = values_of(no_mlflow, "jupyterhub")["singleuser"]["extraEnv"]
    assert "OTEL_EXPORTER_OTLP_ENDPOINT" in env and "MLFLOW_TRACE_ENABLE_OTLP_DUAL_EXPORT" not in env


def test_mlflow_and_model_servers_are_scraped():
    rec = evaluate("kind")
    v = values_of(rec, "mlflow")
    assert v["serviceMonitor"] == {"enabled": True, "namespace": "mlflow", "useServicePort": True}
    assert {"name": "prometheus-metrics", "mountPath": "/mlflow/metrics"} in v["extraVolumeMounts"]
    assert {"10.*", "10.*:*"} <= set(v["serverAllowedHosts"])  # Prometheus scrapes by pod IP
    mlflow = rec.get("kubernetes:helm.sh/v3:Release", "mlflow")
    assert "kubernetes:helm.sh/v3:Release::observability" in {rec.label(d) for d in mlflow.depends_on}
    monitors = [o for o in rec.objects() if o["kind"] == "PodMonitor"]
    assert {m["metadata"]["namespace"] for m in monitors} == {"kserve-examples", "team-research"}
    assert all(m["spec"]["podMetricsEndpoints"][0]["port"] == "metrics" for m in monitors)
    isvc = next(o for o in rec.objects() if o["kind"] == "InferenceService")
    ports = isvc["spec"]["predictor"]["model"]["ports"]
    assert ports[0]["containerPort"] == 8080 and {"name": "metrics", "containerPort": 8082, "protocol": "TCP"} in ports
    # auth: the chart's ServiceMonitor cannot authenticate, so no scraping; without observability, none either
    assert "serviceMonitor" not in values_of(evaluate("kind", {"cnai:layers": {"mlflow": {"auth": True}}}), "mlflow")
    off = evaluate("kind", {"cnai:layers": {"observability": {"enabled": False}}})
    assert "serviceMonitor" not in values_of(off, "mlflow")
    assert not [o for o in off.objects() if o["kind"] == "PodMonitor"]
    knative = evaluate("kind", {"cnai:layers": {"kserve": {"deploymentMode": "Knative"}}})
    assert "ports" not in next(o for o in knative.objects()
                               if o["kind"] == "InferenceService")["spec"]["predictor"]["model"]


def test_every_container_the_stack_runs_requests_cpu_and_memory():
    """The charts leave these without requests (Grafana, its sidecars, kube-state-metrics, node-exporter,
    the config reloader the operator adds to Prometheus): quotas and the laptop budget would not see them.
    `make render` checks every container against the real charts; this pins the values that fix them."""
    for stack in ("kind", "existing"):
        v = values_of(evaluate(stack), "observability")
        for path in (("grafana",), ("grafana", "sidecar"), ("kube-state-metrics",), ("prometheus-node-exporter",),
                     ("prometheusOperator", "prometheusConfigReloader"),
                     ("prometheusOperator", "admissionWebhooks", "patch")):
            node = v
            for part in path:
                node = node[part]
            assert set(node["resources"]["requests"]) == {"cpu", "memory"}, (stack, path)
    prod = values_of(evaluate("existing"), "observability")
    assert set(prod["alertmanager"]["alertmanagerSpec"]["resources"]["requests"]) == {"cpu", "memory"}


def test_the_footprint_counts_what_the_values_request():
    rec = evaluate("kind")
    v = values_of(rec, "observability")
    layer = next(x for x in rec.platform.layers if x.name == "observability")
    pods = {w.name: w for w in layer.workloads()}
    assert pods["grafana"].cpu == v["grafana"]["resources"]["requests"]["cpu"]
    assert pods["grafana sidecars"].count == 2  # dashboards and datasources
    assert pods["node-exporter"].count == rec.platform.caps.nodes  # a DaemonSet: one per node
    assert pods["kube-state-metrics"].memory == v["kube-state-metrics"]["resources"]["requests"]["memory"]
    assert not pods["prometheus"].rendered  # the operator creates it from the Prometheus resource
