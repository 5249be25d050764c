"""Kueue: job queueing with quotas, fair sharing and priorities.

Besides the chart, the layer creates the platform's queueing objects (Kueue's storage API version
of the pinned release): a CPU ResourceFlavor, a GPU ResourceFlavor bound to the GPU nodes' labels
and taint, one ClusterQueue in a cohort with cpu/memory/GPU quotas, WorkloadPriorityClasses and a
LocalQueue named `default` in every team namespace (Kueue's default queue name).
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from addons.base import Layer
from modules.shared.config import ConfigError, DnsLabel, LayerOptions, Quantity, Strict, Team, quantity
from modules.shared.k8s import resources
from modules.shared.labels import LOCAL_QUEUE, MANAGED_BY, QUEUE_LABEL, QUEUE_NS_LABEL
from modules.shared.offers import Metrics, Queueing
from modules.shared.parts import KubeObject, Workload
from modules.shared.versions import VERSIONS

API = "kueue.x-k8s.io/v1beta2"  # the storage version in Kueue 0.19
CPU_FLAVOR = "cpu"
GPU_FLAVOR = "gpu"

_SIZES = {"small": ("100m", "192Mi", "512Mi"), "large": ("500m", "512Mi", "2Gi")}


class PriorityClass(Strict):
    name: DnsLabel
    value: int = Field(ge=-1_000_000_000, le=1_000_000_000)
    description: str = ""


class KueueOptions(LayerOptions):
    clusterQueue: DnsLabel = Field("platform", description="ClusterQueue name (DNS label)")
    cohort: DnsLabel = Field("cnai", description="cohort of the ClusterQueue (DNS label)")
    cpu: Quantity | None = Field(
        None,
        description="ClusterQueue CPU quota, > 0 (null: the profile's, 4 laptop, 64 production)")
    memory: Quantity | None = Field(
        None,
        description="ClusterQueue memory quota, > 0 (null: the profile's, 8Gi laptop, 256Gi production)")
    priorityClasses: tuple[PriorityClass, ...] = Field((
        PriorityClass(name="low", value=100, description="Best-effort experiments; first to be preempted."),
        PriorityClass(name="normal", value=1000, description="Default for team training and tuning jobs."),
        PriorityClass(name="high", value=10000, description="Deadline work; preempts lower priorities."),
    ), strict=False,
        description=("WorkloadPriorityClasses `{name, value, description}`: `name` a unique DNS label, `value` "
                     "-1e9…1e9 (default: `low` 100, `normal` 1000, `high` 10000)"))


def _meta(name: str, namespace: str | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "labels": dict(MANAGED_BY)}
    if namespace:
        meta["namespace"] = namespace
    return meta


class Kueue(Layer):
    name = "kueue"
    component = "Kueue"
    description = "Queues batch and training workloads under quotas, with fair sharing and priorities."
    core = True
    chart = "kueue"
    # LocalQueues go into team namespaces and the notebooks namespace; with observability on, the
    # chart's ServiceMonitor needs the Prometheus Operator CRDs, so the release waits for that layer too.
    after = {"teams": "objects", "observability": "install", "jupyterhub": "objects"}
    offers = (Queueing,)
    Options = KueueOptions
    default_namespace = "kueue-system"

    # -- what it offers ----------------------------------------------------------------------------
    def workload_labels(self) -> dict[str, str]:
        return {QUEUE_LABEL: LOCAL_QUEUE}

    def queue_namespace_labels(self) -> dict[str, str]:
        return {QUEUE_NS_LABEL: LOCAL_QUEUE}  # may submit to the platform ClusterQueue

    def team_namespace(self, team: Team) -> tuple[dict[str, str], dict[str, str]]:
        return self.queue_namespace_labels(), {}

    def validate(self) -> None:
        opts = self.options
        names = [p.name for p in opts.priorityClasses]
        dup = next((n for n in names if names.count(n) > 1), None)
        if dup:
            raise ConfigError(f"cnai:layers.kueue.priorityClasses: name {dup!r} appears twice; names must be unique")
        for key in ("cpu", "memory"):
            value = getattr(opts, key)
            if value is not None and quantity(value) <= 0:
                raise ConfigError(f"cnai:layers.kueue.{key}: must be a positive quantity (got {value!r})")

    def values(self) -> dict[str, Any]:
        repo, tag = VERSIONS.images["kueue-controller"].rsplit(":", 1)
        replicas = self.profile.replicas
        return {
            "controllerManager": {
                "replicas": replicas,
                "manager": {"image": {"repository": repo, "tag": tag, "pullPolicy": "IfNotPresent"},
                            "resources": resources(*_SIZES[self.profile.size])},
                "podDisruptionBudget": {"enabled": replicas > 1, "minAvailable": 1},
            },
            # Queue metrics (pending/admitted workloads) for the observability layer's dashboard.
            "enablePrometheus": self.peers.get(Metrics) is not None,
        }

    def workloads(self) -> list[Workload]:
        cpu, mem, _ = _SIZES[self.profile.size]
        return [Workload("kueue-controller-manager", cpu, mem, self.profile.replicas)]

    def _flavors(self) -> list[dict[str, Any]]:
        cpu = {"apiVersion": API, "kind": "ResourceFlavor", "metadata": _meta(CPU_FLAVOR), "spec": {}}
        if not self.caps.gpu_resources():
            return [cpu]
        labels = dict(self.caps.gpu_node_selector)
        if self.spec.gpu.model:  # the stack names the model: select what discovery labels the nodes with
            labels.update(self.caps.gpu_product_selector())
        gpu_spec: dict[str, Any] = {"nodeLabels": labels}
        if self.caps.gpu_tolerations:
            gpu_spec["tolerations"] = [dict(t) for t in self.caps.gpu_tolerations]
        return [cpu, {"apiVersion": API, "kind": "ResourceFlavor", "metadata": _meta(GPU_FLAVOR), "spec": gpu_spec}]

    def _cluster_queue(self) -> dict[str, Any]:
        o = self.options
        cpu_quota = o.cpu or self.profile.queue_cpu
        mem_quota = o.memory or self.profile.queue_memory
        groups: list[dict[str, Any]] = [{
            "coveredResources": ["cpu", "memory"],
            "flavors": [{"name": CPU_FLAVOR, "resources": [
                {"name": "cpu", "nominalQuota": cpu_quota}, {"name": "memory", "nominalQuota": mem_quota}]}],
        }]
        gpus = self.caps.gpu_resources()
        if gpus:
            groups.append({
                "coveredResources": sorted(gpus),
                "flavors": [{"name": GPU_FLAVOR, "resources": [
                    {"name": r, "nominalQuota": str(n)} for r, n in sorted(gpus.items())]}],
            })
        return {
            "apiVersion": API, "kind": "ClusterQueue", "metadata": _meta(o.clusterQueue),
            "spec": {
                "cohortName": o.cohort,
                # Only labelled namespaces (teams, notebooks) submit here, each through its LocalQueue.
                "namespaceSelector": {"matchExpressions": [{"key": QUEUE_NS_LABEL, "operator": "Exists"}]},
                "queueingStrategy": "BestEffortFIFO",
                "preemption": {"withinClusterQueue": "LowerPriority", "reclaimWithinCohort": "Any",
                               "borrowWithinCohort": {"policy": "LowerPriority"}},
                "resourceGroups": groups,
            },
        }

    def objects(self) -> list[KubeObject]:
        out = [KubeObject(m, phase="after-install") for m in self._flavors()]
        out.append(KubeObject(self._cluster_queue(), phase="after-install"))
        for pc in self.options.priorityClasses:
            out.append(KubeObject({"apiVersion": API, "kind": "WorkloadPriorityClass", "metadata": _meta(pc.name),
                                   "value": pc.value, "description": pc.description}, phase="after-install"))
        for ns in self.queue_namespaces():
            lq = {"apiVersion": API, "kind": "LocalQueue", "metadata": _meta(LOCAL_QUEUE, ns),
                  "spec": {"clusterQueue": self.options.clusterQueue}}
            out.append(KubeObject(lq, phase="after-all"))
        return out

    def queue_namespaces(self) -> list[str]:
        """Team namespaces, plus the namespaces of layers whose pods queue (`Layer.uses_queue`)."""
        return [t.namespace for t in self.teams()] + [
            layer.namespace for layer in self.peers if layer.uses_queue and layer.namespace]
