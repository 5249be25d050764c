"""observability: Prometheus, Grafana and the platform's dashboards (kube-prometheus-stack).

- Prometheus picks up every ServiceMonitor/PodMonitor/PrometheusRule in the cluster, not only the
  chart's own: the GPU operator's DCGM exporter, Kueue's metrics (the kueue layer turns them on and
  installs after this layer, whose CRDs its chart needs) and anything teams add.
- Grafana's admin password is generated (Secret `grafana-admin`); dashboards are ConfigMaps the
  Grafana sidecar loads: GPU utilisation and memory (DCGM), Kueue queues (pending/admitted
  workloads) and platform health (available replicas per platform namespace).
- Managed control planes (EKS, GKE) and kind do not expose etcd, scheduler, controller-manager or
  kube-proxy metrics to workloads, so those scrape targets are off everywhere.
- The laptop profile keeps 1 day of metrics on a 5 GiB volume and no Alertmanager.
- `otelCollector: true` adds an OpenTelemetry Collector (k8s distribution) as the cluster's OTLP
  endpoint: metrics go to Prometheus's OTLP receiver (switched on with it); traces and logs reach
  the collector's debug exporter only, as the platform runs no trace or log store.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import Field

from addons.base import Layer
from modules.shared.config import LayerOptions
from modules.shared.k8s import resources, secret
from modules.shared.labels import MANAGED_BY
from modules.shared.markers import Generated
from modules.shared.offers import Metrics
from modules.shared.parts import KubeObject, Release, Workload

RELEASE = "observability"
OTEL_RELEASE = "otel-collector"  # also the collector's Service name (fullnameOverride)
OTLP_GRPC, OTLP_HTTP = 4317, 4318
ADMIN_SECRET = "grafana-admin"
DASHBOARD_LABEL = "grafana_dashboard"

# (cpu, memory, memory limit) per container. Every container the releases run sets requests: the charts
# leave Grafana, its sidecars, kube-state-metrics, node-exporter and Prometheus' config reloader without.
_SIZES = {
    "small": {"prometheus": ("100m", "256Mi", "2Gi"), "operator": ("20m", "64Mi", "256Mi"),
              "retention": "1d", "storage": "5Gi", "collector": ("50m", "128Mi", "256Mi"),
              "grafana": ("50m", "128Mi", "512Mi"), "grafana-sidecar": ("10m", "64Mi", "128Mi"),
              "kube-state-metrics": ("10m", "64Mi", "256Mi"), "node-exporter": ("10m", "32Mi", "128Mi"),
              "config-reloader": ("10m", "32Mi", "64Mi"), "alertmanager": ("20m", "64Mi", "256Mi"),
              "webhook-patch": ("10m", "32Mi", "64Mi")},
    "large": {"prometheus": ("500m", "2Gi", "8Gi"), "operator": ("100m", "128Mi", "512Mi"),
              "retention": "15d", "storage": "100Gi", "collector": ("200m", "512Mi", "1Gi"),
              "grafana": ("100m", "256Mi", "1Gi"), "grafana-sidecar": ("20m", "96Mi", "256Mi"),
              "kube-state-metrics": ("50m", "128Mi", "512Mi"), "node-exporter": ("20m", "48Mi", "256Mi"),
              "config-reloader": ("10m", "50Mi", "128Mi"), "alertmanager": ("50m", "128Mi", "512Mi"),
              "webhook-patch": ("10m", "32Mi", "64Mi")},
}
GRAFANA_SIDECARS = 2  # dashboards and datasources (the parent chart turns both on)


def _panel(title: str, expr: str, legend: str, unit: str, x: int, y: int) -> dict[str, Any]:
    return {"type": "timeseries", "title": title, "gridPos": {"x": x, "y": y, "w": 12, "h": 8},
            "datasource": {"type": "prometheus", "uid": "prometheus"},
            "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
            "targets": [{"expr": expr, "legendFormat": legend, "refId": "A"}]}


def _dashboard(uid: str, title: str, panels: list[dict[str, Any]]) -> str:
    return json.dumps({"uid": uid, "title": title, "tags": ["cnai"], "schemaVersion": 39, "time": {"from": "now-6h"},
                       "refresh": "30s", "panels": panels}, indent=1, sort_keys=True)


DASHBOARDS = {
    "cnai-gpu": _dashboard("cnai-gpu", "CNAI / GPUs", [
        _panel("GPU utilisation", "avg by (Hostname, gpu) (DCGM_FI_DEV_GPU_UTIL)", "{{Hostname}} GPU {{gpu}}",
               "percent", 0, 0),
        _panel("GPU memory used", "sum by (Hostname, gpu) (DCGM_FI_DEV_FB_USED) * 1024 * 1024",
               "{{Hostname}} GPU {{gpu}}", "bytes", 12, 0),
        _panel("GPU power", "sum by (Hostname, gpu) (DCGM_FI_DEV_POWER_USAGE)", "{{Hostname}} GPU {{gpu}}",
               "watt", 0, 8),
        _panel("GPUs in use by namespace", 'sum by (namespace) (DCGM_FI_DEV_GPU_UTIL{namespace!=""} > bool 0)',
               "{{namespace}}", "short", 12, 8),
    ]),
    "cnai-kueue": _dashboard("cnai-kueue", "CNAI / Kueue queues", [
        _panel("Pending workloads", "sum by (cluster_queue) (kueue_pending_workloads)", "{{cluster_queue}}",
               "short", 0, 0),
        _panel("Admitted active workloads", "sum by (cluster_queue) (kueue_admitted_active_workloads)",
               "{{cluster_queue}}", "short", 12, 0),
        # Quota metrics need the kueue layer's metrics.enableClusterQueueResources (it sets it).
        _panel("GPUs used (above the guarantee: borrowed)",
               'sum by (cluster_queue, resource) (kueue_cluster_queue_resource_usage{resource=~"nvidia.com/.*"})',
               "{{cluster_queue}} {{resource}}", "short", 0, 8),
        _panel("Admission wait (p90)",
               "histogram_quantile(0.9, sum by (le, cluster_queue) "
               "(rate(kueue_admission_wait_time_seconds_bucket[10m])))",
               "{{cluster_queue}}", "s", 12, 8),
        _panel("GPUs guaranteed (nominal quota)",
               'sum by (cluster_queue, resource) (kueue_cluster_queue_nominal_quota{resource=~"nvidia.com/.*"})',
               "{{cluster_queue}} {{resource}}", "short", 0, 16),
        # Fair sharing: 0 at or below the guarantee; the queue with the lowest share gets idle capacity next.
        _panel("Weighted share (fair sharing)", "max by (cluster_queue) (kueue_cluster_queue_weighted_share)",
               "{{cluster_queue}}", "short", 12, 16),
        _panel("Workloads preempted, by the queue that preempted (1h)", "sum by (preempting_cluster_queue, reason) "
               "(increase(kueue_preempted_workloads_total[1h]))", "{{preempting_cluster_queue}} {{reason}}", "short",
               0, 24),
        _panel("Evicted workloads (1h)", "sum by (cluster_queue, reason) (increase(kueue_evicted_workloads_total[1h]))",
               "{{cluster_queue}} {{reason}}", "short", 12, 24),
    ]),
    # vLLM's metrics (the llm layer's GPU models; labels model_name = the InferenceService, namespace).
    "cnai-llm": _dashboard("cnai-llm", "CNAI / LLM serving", [
        _panel("Generated tokens/s", "sum by (namespace, model_name) (rate(vllm:generation_tokens_total[1m]))",
               "{{namespace}}/{{model_name}}", "short", 0, 0),
        _panel("Time to first token (p95)", "histogram_quantile(0.95, sum by (le, namespace, model_name) "
               "(rate(vllm:time_to_first_token_seconds_bucket[5m])))", "{{namespace}}/{{model_name}}", "s", 12, 0),
        _panel("Requests waiting (queue depth)", "sum by (namespace, model_name) (vllm:num_requests_waiting)",
               "{{namespace}}/{{model_name}} waiting", "short", 0, 8),
        _panel("Requests running", "sum by (namespace, model_name) (vllm:num_requests_running)",
               "{{namespace}}/{{model_name}} running", "short", 12, 8),
        _panel("GPU KV cache usage", "max by (namespace, model_name) (vllm:kv_cache_usage_perc)",
               "{{namespace}}/{{model_name}}", "percentunit", 0, 16),
        _panel("Prompt tokens/s", "sum by (namespace, model_name) (rate(vllm:prompt_tokens_total[1m]))",
               "{{namespace}}/{{model_name}}", "short", 12, 16),
    ]),
    "cnai-platform": _dashboard("cnai-platform", "CNAI / Platform layers", [
        _panel("Available replicas by namespace", "sum by (namespace) (kube_deployment_status_replicas_available)",
               "{{namespace}}", "short", 0, 0),
        _panel("Unavailable replicas by namespace", "sum by (namespace) (kube_deployment_status_replicas_unavailable)",
               "{{namespace}}", "short", 12, 0),
        _panel("Pod restarts (1h)", "sum by (namespace) (increase(kube_pod_container_status_restarts_total[1h]))",
               "{{namespace}}", "short", 0, 8),
        _panel("PVC usage", "max by (namespace, persistentvolumeclaim) (kubelet_volume_stats_used_bytes / "
               "kubelet_volume_stats_capacity_bytes)", "{{namespace}}/{{persistentvolumeclaim}}", "percentunit", 12, 8),
    ]),
}


class ObservabilityOptions(LayerOptions):
    retention: str = Field("", pattern=r"^([0-9]+[hdwy])?$",
                           description="Prometheus retention `<n>h/d/w/y` (empty: 1d laptop, 15d production)")
    storageSize: str = Field("", description="Prometheus volume (empty: 5Gi laptop, 100Gi production)")
    alertmanager: bool | None = Field(None, description="run Alertmanager (null: on HA profiles such as production)")
    otelCollector: bool = Field(
        False,
        description="OpenTelemetry Collector (k8s distribution) as the OTLP endpoint; metrics to Prometheus over "
                    "OTLP, traces and logs to its debug exporter")


def chart_fullname(release: str, chart: str) -> str:
    """kube-prometheus-stack's fullname helper: release-chart (or the release when it contains the
    chart name), truncated to 26 characters; its Prometheus Service is `<fullname>-prometheus`."""
    name = release if chart in release else f"{release}-{chart}"
    return name[:26].rstrip("-")


class Observability(Layer):
    name = "observability"
    component = "Observability"
    description = "Prometheus and Grafana with GPU, Kueue and platform dashboards; scrapes every ServiceMonitor."
    core = True
    chart = "kube-prometheus-stack"
    extra_charts = ("opentelemetry-collector",)
    offers = (Metrics,)
    Options = ObservabilityOptions
    default_namespace = "monitoring"
    pod_security = "privileged"
    pod_security_reason = "node-exporter reads host metrics with hostNetwork, hostPID and host paths"

    def credentials(self) -> list[str]:
        return ["grafana-admin-password"]

    @property
    def prometheus_url(self) -> str:
        return f"http://{chart_fullname(RELEASE, self.chart)}-prometheus.{self.namespace}.svc.cluster.local:9090"

    @property
    def otlp_endpoint(self) -> str | None:
        """Where workloads send OTLP (gRPC), when the collector runs."""
        if not self.options.otelCollector:
            return None
        return f"http://{OTEL_RELEASE}.{self.namespace}.svc.cluster.local:{OTLP_GRPC}"

    def releases(self) -> list[Release]:
        out = [Release(self.chart, RELEASE, self.values())]
        if self.options.otelCollector:
            out.append(Release("opentelemetry-collector", OTEL_RELEASE, self._collector_values()))
        return out

    def _collector_values(self) -> dict[str, Any]:
        size = _SIZES[self.profile.size]["collector"]
        pipeline = lambda exporters: {"receivers": ["otlp"], "processors": ["memory_limiter", "batch"],  # noqa: E731
                                      "exporters": exporters}
        return {
            "mode": "deployment",
            "fullnameOverride": OTEL_RELEASE,
            "replicaCount": self.profile.replicas,
            # The k8s distribution: the receivers, processors and exporters meant for Kubernetes.
            "image": {"repository": "otel/opentelemetry-collector-k8s"},
            "command": {"name": "otelcol-k8s"},
            "resources": resources(*size),
            "podSecurityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
            "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]},
                                "readOnlyRootFilesystem": True},
            # Only OTLP in: no Jaeger/Zipkin listeners; the collector's own metrics via a ServiceMonitor.
            "ports": {**{p: {"enabled": False} for p in ("jaeger-compact", "jaeger-thrift", "jaeger-grpc", "zipkin")},
                      "metrics": {"enabled": True}},
            "serviceMonitor": {"enabled": True},
            "config": {
                "exporters": {
                    "otlp_http/prometheus": {
                        "metrics_endpoint": f"{self.prometheus_url}/api/v1/otlp/v1/metrics", "tls": {"insecure": True}},
                    # Every span in the collector's log (kubectl logs): where a user sees traces without a backend.
                    "debug/traces": {"verbosity": "detailed"}},
                "service": {"pipelines": {
                    "metrics": pipeline(["otlp_http/prometheus"]),
                    "traces": pipeline(["debug/traces"]),
                    "logs": pipeline(["debug"]),
                }},
            },
        }

    def values(self) -> dict[str, Any]:
        size = _SIZES[self.profile.size]
        alertmanager = self._alertmanager()
        volume = {"volumeClaimTemplate": {"spec": {
            "accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": self.options.storageSize or size["storage"]}}}}}
        return {
            "crds": {"enabled": True},
            "alertmanager": {"enabled": alertmanager,
                             **({"alertmanagerSpec": {"resources": resources(*size["alertmanager"])}}
                                if alertmanager else {})},
            "grafana": {
                "admin": {"existingSecret": ADMIN_SECRET, "userKey": "admin-user", "passwordKey": "admin-password"},
                "resources": resources(*size["grafana"]),
                "sidecar": {"dashboards": {"enabled": True, "label": DASHBOARD_LABEL, "labelValue": "1",
                                           "searchNamespace": "ALL"},
                            "resources": resources(*size["grafana-sidecar"])},
                # grafana.resources belongs to the grafana subchart, whose values are not among the
                # pinned facts; Grafana keeps the subchart's default (no requests).
            },
            "prometheusOperator": {
                "resources": resources(*size["operator"]),
                # Passed to the operator as flags for the config-reloader it adds to Prometheus and
                # Alertmanager pods; left empty, the chart passes 0 and the reloader requests nothing.
                "prometheusConfigReloader": {"resources": resources(*size["config-reloader"])},
                "admissionWebhooks": {"patch": {"resources": resources(*size["webhook-patch"])}},
            },
            "kube-state-metrics": {"resources": resources(*size["kube-state-metrics"])},
            "prometheus-node-exporter": {"resources": resources(*size["node-exporter"])},
            "prometheus": {"prometheusSpec": {
                "retention": self.options.retention or size["retention"],
                "resources": resources(*size["prometheus"]),
                "storageSpec": volume,
                # Scrape every monitor in the cluster, not only those labelled for this release.
                "serviceMonitorSelectorNilUsesHelmValues": False,
                "podMonitorSelectorNilUsesHelmValues": False,
                "ruleSelectorNilUsesHelmValues": False,
                # The collector writes metrics over OTLP (Prometheus 3's /api/v1/otlp).
                "enableOTLPReceiver": self.options.otelCollector,
            }},
            "kubeControllerManager": {"enabled": False},
            "kubeScheduler": {"enabled": False},
            "kubeEtcd": {"enabled": False},
            "kubeProxy": {"enabled": False},
        }

    def _alertmanager(self) -> bool:
        return self.options.alertmanager if self.options.alertmanager is not None else self.profile.ha

    def objects(self) -> list[KubeObject]:
        ns, labels = self.namespace, dict(MANAGED_BY)
        admin = {"admin-user": "admin", "admin-password": Generated(self.name, "grafana-admin-password")}
        out = [KubeObject(secret(ADMIN_SECRET, ns, admin), phase="before-install")]
        for name, dashboard in DASHBOARDS.items():
            out.append(KubeObject({"apiVersion": "v1", "kind": "ConfigMap",
                                   "metadata": {"name": name, "namespace": ns,
                                                "labels": {**labels, DASHBOARD_LABEL: "1"}},
                                   "data": {f"{name}.json": dashboard}}, phase="before-install"))
        return out

    def workloads(self) -> list[Workload]:
        size = _SIZES[self.profile.size]
        out = [Workload("prometheus-operator", *size["operator"][:2]),
               Workload("grafana", *size["grafana"][:2]),
               Workload("grafana sidecars", *size["grafana-sidecar"][:2], GRAFANA_SIDECARS),
               Workload("kube-state-metrics", *size["kube-state-metrics"][:2]),
               Workload("node-exporter", *size["node-exporter"][:2], max(self.caps.nodes, 1)),
               # The Prometheus Operator creates these from the custom resources the chart renders.
               Workload("prometheus", *size["prometheus"][:2], rendered=False),
               Workload("prometheus config-reloader", *size["config-reloader"][:2], rendered=False)]
        if self._alertmanager():
            out += [Workload("alertmanager", *size["alertmanager"][:2], rendered=False),
                    Workload("alertmanager config-reloader", *size["config-reloader"][:2], rendered=False)]
        if self.options.otelCollector:
            out.append(Workload("otel-collector", *size["collector"][:2], self.profile.replicas))
        return out

    def outputs(self) -> dict[str, Any]:
        out = {"grafana": f"kubectl -n {self.namespace} port-forward svc/{RELEASE}-grafana 3000:80, then "
                          f"http://localhost:3000 (user admin, password in Secret {ADMIN_SECRET})",
               "prometheus": self.prometheus_url}
        if self.otlp_endpoint:
            out["otlpEndpoint"] = self.otlp_endpoint
        return out
