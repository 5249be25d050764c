"""KEDA: event-driven autoscaling. ScaledObjects scale Deployments (and anything with a scale subresource) on
external metrics such as a Prometheus query, from zero where the workload allows it.

The layer installs the pinned chart (operator, metrics API server, admission webhooks, the `keda.sh` CRDs).
KServe uses it for InferenceServices annotated `serving.kserve.io/autoscalerClass: keda` in Standard mode: its
controller creates a ScaledObject `<isvc>-predictor` per InferenceService, so it must start after these CRDs
exist (the kserve layer is ordered after this one). KEDA's metrics server serves the cluster's one external
metrics API (`v1beta1.external.metrics.k8s.io`).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from addons.base import Layer
from modules.shared.config import LayerOptions
from modules.shared.offers import EventAutoscaling, Metrics
from modules.shared.parts import Workload

API = "keda.sh/v1alpha1"  # ScaledObject, ScaledJob, TriggerAuthentication (KEDA 2.20's storage version)
EXTERNAL_METRICS_API = "v1beta1.external.metrics.k8s.io"  # the APIService the metrics server registers

# The chart's Deployment names (its defaults: `operator.name`, `<operator.name>-metrics-apiserver`,
# `webhooks.name`), by the part's key under the chart's `resources`.
OPERATOR = "keda-operator"
METRICS_SERVER = f"{OPERATOR}-metrics-apiserver"
WEBHOOKS = "keda-admission-webhooks"
DEPLOYMENTS = {"operator": OPERATOR, "metricServer": METRICS_SERVER, "webhooks": WEBHOOKS}

# requests per pod: (cpu, memory, memory limit). The chart asks 100m/100Mi for each of the three pods.
_SIZES = {
    "small": {"operator": ("20m", "64Mi", "256Mi"), "metricServer": ("20m", "64Mi", "256Mi"),
              "webhooks": ("10m", "32Mi", "128Mi")},
    "large": {"operator": ("100m", "128Mi", "1000Mi"), "metricServer": ("100m", "128Mi", "1000Mi"),
              "webhooks": ("50m", "64Mi", "256Mi")},
}
# Helm merges maps, so the chart's default CPU limit (1) would survive a memory-only limit: the layer states
# it, above every request above.
_CPU_LIMIT = "1"


class KedaOptions(LayerOptions):
    logLevel: Literal["debug", "info", "error"] = Field(
        "info", description="log level of the operator, the metrics server and the admission webhooks")
    scalerTimeout: int = Field(
        3000, ge=500, le=60000,
        description="milliseconds KEDA waits for a scaler's HTTP request (a Prometheus query) before it fails")


class Keda(Layer):
    name = "keda"
    component = "Keda"
    description = "Event-driven autoscaling: ScaledObjects scale workloads (KServe LLMs) on Prometheus queries."
    # With observability on, the chart renders ServiceMonitors: the release waits for the Prometheus CRDs.
    after = {"observability": "install"}
    chart = "keda"
    offers = (EventAutoscaling,)
    Options = KedaOptions
    default_namespace = "keda"

    # -- what it offers ----------------------------------------------------------------------------
    @property
    def keda_namespace(self) -> str:
        return self.namespace  # type: ignore[return-value]  # the layer always has one

    # -- the chart ----------------------------------------------------------------------------------
    def replicas(self, part: str) -> int:
        """Replicas of a part: the profile's for the operator (leader election: standbys shorten a failover)
        and the webhooks; one metrics server, the one active adapter KEDA supports."""
        return 1 if part == "metricServer" else self.profile.replicas

    def _resources(self, part: str) -> dict[str, Any]:
        cpu, memory, memory_limit = _SIZES[self.profile.size][part]
        return {"requests": {"cpu": cpu, "memory": memory}, "limits": {"cpu": _CPU_LIMIT, "memory": memory_limit}}

    def _pdb(self, part: str) -> dict[str, Any]:
        # The chart renders a PodDisruptionBudget for a part only when its map is not empty.
        return {"minAvailable": 1} if self.replicas(part) > 1 else {}

    def values(self) -> dict[str, Any]:
        monitored = self.peers.get(Metrics) is not None
        level = self.options.logLevel
        return {
            # The chart's default is Always: every restart would pull from ghcr.io; the tags are pinned.
            "image": {"pullPolicy": "IfNotPresent"},
            "operator": {"replicaCount": self.replicas("operator")},
            "metricsServer": {"replicaCount": self.replicas("metricServer")},
            "webhooks": {"replicaCount": self.replicas("webhooks")},
            "podDisruptionBudget": {part: self._pdb(part) for part in DEPLOYMENTS},
            "resources": {part: self._resources(part) for part in DEPLOYMENTS},
            "logging": {"operator": {"level": level}, "metricServer": {"zapLevel": level},
                        "webhooks": {"level": level}},
            "http": {"timeout": self.options.scalerTimeout},
            # Operator and metrics-server metrics for Prometheus: a ServiceMonitor needs both flags.
            "prometheus": {
                "operator": {"enabled": monitored, "serviceMonitor": {"enabled": monitored}},
                "metricServer": {"enabled": monitored, "serviceMonitor": {"enabled": monitored}},
            },
        }

    def workloads(self) -> list[Workload]:
        sizes = _SIZES[self.profile.size]
        return [Workload(name, sizes[part][0], sizes[part][1], self.replicas(part))
                for part, name in DEPLOYMENTS.items()]

    def outputs(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "externalMetricsApi": EXTERNAL_METRICS_API,
            "scaledObjects": "kubectl get scaledobjects -A",
        }
        metrics = self.peers.get(Metrics)
        if metrics is not None:  # what a ScaledObject's prometheus trigger names as serverAddress
            out["prometheusServerAddress"] = metrics.prometheus_url
        return out
