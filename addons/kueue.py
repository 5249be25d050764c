"""Kueue: GPUs and other quota shared fairly by many teams.

Besides the chart, the layer creates the platform's queueing objects (Kueue's storage API version of the
pinned release), all in one cohort:
- a CPU ResourceFlavor and one ResourceFlavor per GPU kind the nodes advertise (whole GPUs, time-sliced
  or MPS shares, each MIG profile), bound to the GPU nodes' labels and taint;
- a ClusterQueue per team (nominal quota from the team's quota, explicit borrowing and lending limits, a
  fair-sharing weight), one per platform layer whose pods queue (`Layer.queue`: the notebooks), and a
  Cohort holding the shared pool: capacity no queue is guaranteed, which every queue may borrow;
- WorkloadPriorityClasses and a LocalQueue named `default` in every queueing namespace (Kueue's default
  queue name).
The manager configuration (one YAML string in the chart's values) turns on fair sharing, sets
waitForPodsReady's timeout and requeuing, exports quota metrics, and maps DRA device classes to quota.

Over 300 lines: the queue graph, its defaults and its checks are one unit; they are read together.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import yaml
from pydantic import Field

from addons.base import Layer
from modules.clusters.contract import GPU_RESOURCE
from modules.shared.config import ConfigError, DnsLabel, LayerOptions, Quantity, Strict, Team, quantity
from modules.shared.gpus import DRA_GPU_CLASS
from modules.shared.k8s import resources
from modules.shared.labels import LOCAL_QUEUE, MANAGED_BY, QUEUE_LABEL, QUEUE_NS_LABEL, TEAM_LABEL
from modules.shared.offers import Metrics, Queueing
from modules.shared.parts import KubeObject, Workload
from modules.shared.versions import VERSIONS

API = "kueue.x-k8s.io/v1beta2"  # the storage version in Kueue 0.19
CONFIG_API = "config.kueue.x-k8s.io/v1beta2"
CPU_FLAVOR = "cpu"
DURATION = r"^[0-9]+(s|m|h)$"

_SIZES = {"small": ("100m", "192Mi", "512Mi"), "large": ("500m", "512Mi", "2Gi")}

# The chart's manager configuration is one string that Helm replaces whole: these restate the active
# settings of kueue 0.19.2's default (charts/kueue/values.yaml, managerConfig) that the platform keeps;
# tests/test_kueue.py compares them with the pinned chart's.
_CHART_DEFAULTS: dict[str, Any] = {
    "health": {"healthProbeBindAddress": ":8081"},
    "webhook": {"port": 9443},
    "leaderElection": {"leaderElect": True, "resourceName": "c1f6bfd2.kueue.x-k8s.io"},
    "controller": {"groupKindConcurrency": {
        "Job.batch": 5, "Pod": 5, "Workload.kueue.x-k8s.io": 10, "LocalQueue.kueue.x-k8s.io": 5,
        "ClusterQueue.kueue.x-k8s.io": 5, "ResourceFlavor.kueue.x-k8s.io": 1}},
    "clientConnection": {"qps": 300, "burst": 500},
    "integrations": {"frameworks": [
        "batch/job", "kubeflow.org/mpijob", "ray.io/rayjob", "ray.io/rayservice", "ray.io/raycluster",
        "jobset.x-k8s.io/jobset", "workload.codeflare.dev/appwrapper", "trainer.kubeflow.org/trainjob", "pod",
        "deployment", "statefulset", "leaderworkerset.x-k8s.io/leaderworkerset"]},
}
METRICS_ADDRESS = ":8443"
# Fair sharing preempts a workload only while its queue's share stays above the preemptor's (Kueue's
# documented pair of strategies).
FAIR_SHARING_STRATEGIES = ["LessThanOrEqualToFinalShare", "LessThanInitialShare"]


class PriorityClass(Strict):
    name: DnsLabel
    value: int = Field(ge=-1_000_000_000, le=1_000_000_000)
    description: str = ""


class QueueQuota(Strict):
    """Nominal quota and fair-sharing weight of a platform layer's ClusterQueue (the notebooks')."""

    cpu: Quantity = "4"
    memory: Quantity = "16Gi"
    gpu: int = Field(0, ge=0, le=4096, description="GPUs guaranteed (0: GPU notebooks borrow idle GPUs)")
    weight: float = Field(1.0, gt=0, le=1000)


class KueueOptions(LayerOptions):
    cohort: DnsLabel = Field("cnai", description="the cohort every ClusterQueue joins, and its Cohort object")
    cpu: Quantity | None = Field(
        None, description="the cohort's shared CPU pool, > 0 (null: the profile's, 4 laptop, 64 production)")
    memory: Quantity | None = Field(
        None, description="the cohort's shared memory pool, > 0 (null: the profile's, 8Gi laptop, 256Gi production)")
    gpu: int | None = Field(
        None, ge=0, le=100_000,
        description="the cohort's shared GPUs (null: every GPU no ClusterQueue is guaranteed)")
    queues: dict[DnsLabel, QueueQuota] = Field(
        default_factory=dict,
        description="quota of the ClusterQueues of platform layers whose pods queue, by queue name "
                    "(`notebooks`: default 4 CPUs, 16Gi, 0 GPUs, weight 1)")
    reservedGpuShare: float = Field(
        0.25, ge=0, le=1,
        description="share of each team's GPUs it never lends (rounded down; a team's queue.reservedGpus overrides)")
    overcommit: bool = Field(
        False, description="allow guaranteed GPUs (teams, queues, pool) to add up to more than the cluster has")
    fairSharing: bool = Field(
        True, description="fair sharing: idle capacity goes to the queue with the lowest weighted share, and "
                          "preemption restores shares (false: classic borrowing by priority)")
    podsReadyTimeout: str = Field(
        "10m", pattern=DURATION,
        description="waitForPodsReady: a workload whose pods are not all ready this long after admission is "
                    "evicted and requeued (all-or-nothing)")
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


def team_queue(team: Team) -> str:
    """The team's ClusterQueue."""
    return team.namespace


def _weight(w: float) -> str:
    return f"{w:g}"  # a Kubernetes quantity


class Kueue(Layer):
    name = "kueue"
    component = "Kueue"
    description = "Shares GPUs fairly between teams: a queue per team in one cohort, borrowing, preemption, priorities."
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

    def queue_namespace_labels(self, queue: str) -> dict[str, str]:
        return {QUEUE_NS_LABEL: queue}  # the ClusterQueue that admits from the namespace

    def team_namespace(self, team: Team) -> tuple[dict[str, str], dict[str, str]]:
        return self.queue_namespace_labels(team_queue(team)), {}

    def team_ceiling(self, team: Team) -> dict[str, str]:
        """The most a team's queue can hold (nominal quota plus borrowing limit), by resource: the team
        namespace's ResourceQuota must allow it, or borrowed capacity could never be used."""
        quotas, borrow = self._team_quota(team), self._team_borrowing(team)
        return {r: _add(quotas[r], borrow[r]) for r in quotas}

    # -- the queue graph ---------------------------------------------------------------------------
    def _gpu_kinds(self) -> list[tuple[str, str]]:
        """(flavor, resource) for every GPU resource the nodes advertise, named by what it is."""
        c = self.caps
        out = []
        for resource in sorted(c.gpu_resources()):
            if resource != GPU_RESOURCE:  # MIG mixed: nvidia.com/mig-<profile>
                out.append((resource.removeprefix("nvidia.com/"), resource))
            elif c.gpu_sharing == "mig":  # single strategy: every GPU is sliced into one profile
                out.append((f"mig-{c.mig_profile.removeprefix('all-')}", resource))
            elif c.gpu_sharing in ("time-slicing", "mps"):
                out.append((f"gpu-{c.gpu_sharing}", resource))
            else:
                out.append(("gpu", resource))
        return out

    def _queue_names(self) -> list[str]:
        """ClusterQueues of platform layers whose pods queue (`Layer.queue`), besides the teams'."""
        return sorted({layer.queue for layer in self.peers if layer.queue and layer.namespace})

    def _queue_quota(self, name: str) -> QueueQuota:
        return self.options.queues.get(name, QueueQuota())

    def _team_quota(self, team: Team) -> dict[str, str]:
        gpus = self.caps.gpu_quota(team.quota)
        return {"cpu": team.quota.cpu, "memory": team.quota.memory, **{r: str(n) for r, n in gpus.items()}}

    def _reserved(self, team: Team, resource: str) -> int:
        gpus = self.caps.gpu_quota(team.quota).get(resource, 0)
        if team.queue.reservedGpus is not None:
            return min(team.queue.reservedGpus, gpus)
        return int(gpus * self.options.reservedGpuShare)

    def _lendable(self, resource: str) -> dict[str, int]:
        """GPUs of `resource` each team lends (its quota less what it reserves)."""
        return {t.name: self.caps.gpu_quota(t.quota).get(resource, 0) - self._reserved(t, resource)
                for t in self.teams()}

    def _pool(self) -> dict[str, int]:
        """The cohort's shared GPUs per resource: the stack's, or what no queue is guaranteed."""
        out = {}
        for resource, capacity in self.caps.gpu_resources().items():
            if self.options.gpu is not None:
                out[resource] = self.options.gpu if resource == self.caps.gpu_resource else 0
            else:
                out[resource] = max(capacity - self._guaranteed(resource), 0)
        return out

    def _guaranteed(self, resource: str) -> int:
        teams = sum(self.caps.gpu_quota(t.quota).get(resource, 0) for t in self.teams())
        queues = sum(self._queue_quota(q).gpu for q in self._queue_names()) if resource == self.caps.gpu_resource else 0
        return teams + queues

    def _team_borrowing(self, team: Team) -> dict[str, str]:
        b = team.queue.borrowingLimit
        out = {"cpu": b.cpu or team.quota.cpu, "memory": b.memory or team.quota.memory}
        pool = self._pool()
        for resource in self.caps.gpu_resources():
            if b.gpu is not None:
                out[resource] = str(b.gpu)
            else:  # everything the rest of the cohort can lend
                others = sum(n for name, n in self._lendable(resource).items() if name != team.name)
                queues = (sum(self._queue_quota(q).gpu for q in self._queue_names())
                          if resource == self.caps.gpu_resource else 0)
                out[resource] = str(others + queues + pool[resource])
        return out

    def _flavors(self) -> list[dict[str, Any]]:
        out = [{"apiVersion": API, "kind": "ResourceFlavor", "metadata": _meta(CPU_FLAVOR), "spec": {}}]
        labels = dict(self.caps.gpu_node_selector)
        if self.spec.gpu.model:  # the stack names the model: select what discovery labels the nodes with
            labels.update(self.caps.gpu_product_selector())
        spec: dict[str, Any] = {"nodeLabels": labels}
        if self.caps.gpu_tolerations:
            spec["tolerations"] = [dict(t) for t in self.caps.gpu_tolerations]
        for flavor, _ in self._gpu_kinds():
            out.append({"apiVersion": API, "kind": "ResourceFlavor", "metadata": _meta(flavor), "spec": spec})
        return out

    def _groups(self, cpu: str, memory: str, gpus: dict[str, Any],
                limits: dict[str, dict[str, str]] | None = None) -> list[dict[str, Any]]:
        """Resource groups: CPU and memory in one, each GPU kind in its own (one flavor per resource)."""
        limits = limits or {}

        def res(name: str, nominal: Any) -> dict[str, Any]:
            return {"name": name, "nominalQuota": str(nominal), **limits.get(name, {})}

        groups = [{"coveredResources": ["cpu", "memory"],
                   "flavors": [{"name": CPU_FLAVOR, "resources": [res("cpu", cpu), res("memory", memory)]}]}]
        for flavor, resource in self._gpu_kinds():
            groups.append({"coveredResources": [resource],
                           "flavors": [{"name": flavor, "resources": [res(resource, gpus.get(resource, 0))]}]})
        return groups

    def _preemption(self) -> dict[str, Any]:
        # A queue takes back its nominal quota from borrowers (reclaim), higher priorities go first inside a
        # queue; under fair sharing the cohort's preemption follows weighted shares, otherwise a borrower may
        # preempt only the lowest priority class in other queues.
        out: dict[str, Any] = {"reclaimWithinCohort": "Any", "withinClusterQueue": "LowerPriority"}
        if not self.options.fairSharing:
            lowest = min((p.value for p in self.options.priorityClasses), default=0)
            out["borrowWithinCohort"] = {"policy": "LowerPriority", "maxPriorityThreshold": lowest}
        return out

    def _cluster_queue(self, name: str, groups: list[dict[str, Any]], weight: float,
                       labels: dict[str, str] | None = None) -> dict[str, Any]:
        meta = _meta(name)
        meta["labels"].update(labels or {})
        spec: dict[str, Any] = {
            "cohortName": self.options.cohort,
            # Only namespaces labelled for this queue submit here, each through its LocalQueue.
            "namespaceSelector": {"matchLabels": {QUEUE_NS_LABEL: name}},
            "queueingStrategy": "BestEffortFIFO",
            "preemption": self._preemption(),
            "resourceGroups": groups,
        }
        if self.options.fairSharing:
            spec["fairSharing"] = {"weight": _weight(weight)}
        return {"apiVersion": API, "kind": "ClusterQueue", "metadata": meta, "spec": spec}

    def _team_queue(self, team: Team) -> dict[str, Any]:
        quota, borrow = self._team_quota(team), self._team_borrowing(team)
        limits: dict[str, dict[str, str]] = {r: {"borrowingLimit": borrow[r]} for r in quota}
        for resource in self.caps.gpu_resources():
            limits[resource]["lendingLimit"] = str(self.caps.gpu_quota(team.quota).get(resource, 0)
                                                   - self._reserved(team, resource))
        groups = self._groups(quota["cpu"], quota["memory"], self.caps.gpu_quota(team.quota), limits)
        return self._cluster_queue(team_queue(team), groups, team.queue.weight, {TEAM_LABEL: team.name})

    def _layer_queue(self, name: str) -> dict[str, Any]:
        q = self._queue_quota(name)
        gpus = {self.caps.gpu_resource: q.gpu} if self.caps.gpus else {}
        return self._cluster_queue(name, self._groups(q.cpu, q.memory, gpus), q.weight)

    def _cohort(self) -> dict[str, Any]:
        o = self.options
        spec = {"resourceGroups": self._groups(o.cpu or self.profile.queue_cpu, o.memory or self.profile.queue_memory,
                                               self._pool())}
        return {"apiVersion": API, "kind": "Cohort", "metadata": _meta(o.cohort), "spec": spec}

    def queues(self) -> list[dict[str, Any]]:
        """Every ClusterQueue: one per team, one per queueing platform layer."""
        return [self._team_queue(t) for t in self.teams()] + [self._layer_queue(q) for q in self._queue_names()]

    def objects(self) -> list[KubeObject]:
        out = [KubeObject(m, phase="after-install") for m in self._flavors()]
        out.append(KubeObject(self._cohort(), phase="after-install"))
        out += [KubeObject(q, phase="after-install") for q in self.queues()]
        for pc in self.options.priorityClasses:
            out.append(KubeObject({"apiVersion": API, "kind": "WorkloadPriorityClass", "metadata": _meta(pc.name),
                                   "value": pc.value, "description": pc.description}, phase="after-install"))
        for ns, queue in self.queue_namespaces():
            lq = {"apiVersion": API, "kind": "LocalQueue", "metadata": _meta(LOCAL_QUEUE, ns),
                  "spec": {"clusterQueue": queue}}
            out.append(KubeObject(lq, phase="after-all"))
        return out

    def queue_namespaces(self) -> list[tuple[str, str]]:
        """(namespace, ClusterQueue): team namespaces, and the namespaces of layers whose pods queue."""
        return [(t.namespace, team_queue(t)) for t in self.teams()] + [
            (layer.namespace, layer.queue) for layer in self.peers if layer.queue and layer.namespace]

    # -- checks --------------------------------------------------------------------------------------
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
        queues = self._queue_names()
        unknown = sorted(set(opts.queues) - set(queues))
        if unknown:
            raise ConfigError(f"cnai:layers.kueue.queues: no enabled layer queues in {', '.join(unknown)}; "
                              f"queues: {', '.join(queues) or 'none'}")
        if any(q.gpu for q in opts.queues.values()) and not self.caps.gpus:
            raise ConfigError("cnai:layers.kueue.queues: GPUs guaranteed but the cluster has none")
        for i, team in enumerate(self.teams()):
            reserved = team.queue.reservedGpus
            if reserved is not None and reserved > sum(self.caps.gpu_quota(team.quota).values()):
                raise ConfigError(f"cnai:teams[{i}].queue.reservedGpus: {reserved} is more than the team's "
                                  f"{team.quota.gpu} GPU(s)")
        if opts.overcommit:
            return
        for resource, capacity in self.caps.gpu_resources().items():
            guaranteed = self._guaranteed(resource) + (self._pool()[resource] if opts.gpu is not None else 0)
            if guaranteed > capacity:
                raise ConfigError(
                    f"cnai:teams: the queues are guaranteed {guaranteed} {resource} but the cluster offers {capacity} "
                    f"({self._capacity_words()}); lower the quotas or set cnai:layers.kueue.overcommit: true")

    def _capacity_words(self) -> str:
        c = self.caps
        text = f"{c.gpu_nodes} GPU node(s) x {c.gpus_per_node} GPU(s)"
        if c.gpu_sharing in ("time-slicing", "mps"):
            text += f" x {c.gpu_replicas} shares"
        elif c.gpu_sharing == "mig":
            text += f", MIG {c.mig_profile}"
        return text

    # -- the chart ------------------------------------------------------------------------------------
    def manager_config(self) -> dict[str, Any]:
        """Kueue's Configuration (config.kueue.x-k8s.io/v1beta2) as the chart's one string carries it."""
        o = self.options
        cfg: dict[str, Any] = {"apiVersion": CONFIG_API, "kind": "Configuration", **_CHART_DEFAULTS}
        extra = sorted({f for layer in self.peers for f in layer.queue_frameworks}
                       - set(_CHART_DEFAULTS["integrations"]["frameworks"]))
        if extra:  # integrations enabled layers' custom resources need (SparkApplications)
            cfg["integrations"] = {"frameworks": [*_CHART_DEFAULTS["integrations"]["frameworks"], *extra]}
        # Quota, usage and weighted-share metrics per ClusterQueue (the Kueue dashboard).
        cfg["metrics"] = {"bindAddress": METRICS_ADDRESS, "enableClusterQueueResources": True}
        # All-or-nothing: a distributed job whose pods are not all ready in time gives its quota back and is
        # requeued with backoff, so two half-started gangs cannot hold each other's GPUs forever.
        cfg["waitForPodsReady"] = {
            "timeout": o.podsReadyTimeout, "recoveryTimeout": o.podsReadyTimeout, "blockAdmission": False,
            "requeuingStrategy": {"timestamp": "Eviction", "backoffLimitCount": 5, "backoffBaseSeconds": 60,
                                  "backoffMaxSeconds": 3600}}
        if o.fairSharing:
            cfg["fairSharing"] = {"preemptionStrategies": list(FAIR_SHARING_STRATEGIES)}
        if self.caps.gpu_allocation == "dra":
            # Claims from ResourceClaimTemplates on NVIDIA's GPU class count as nvidia.com/gpu quota.
            cfg["resources"] = {"deviceClassMappings": [{"name": GPU_RESOURCE, "deviceClassNames": [DRA_GPU_CLASS]}]}
        return cfg

    def values(self) -> dict[str, Any]:
        repo, tag = VERSIONS.images["kueue-controller"].rsplit(":", 1)
        replicas = self.profile.replicas
        return {
            "controllerManager": {
                "replicas": replicas,
                "manager": {"image": {"repository": repo, "tag": tag, "pullPolicy": "IfNotPresent"},
                            "resources": resources(*_SIZES[self.profile.size])},
                "podDisruptionBudget": {"enabled": replicas > 1, "minAvailable": 1},
                # Gates of integrations enabled layers need (rendered as --feature-gates).
                "featureGates": [{"name": g, "enabled": True}
                                 for g in sorted({g for layer in self.peers for g in layer.queue_feature_gates})],
            },
            "managerConfig": {"controllerManagerConfigYaml": yaml.safe_dump(self.manager_config(), sort_keys=False)},
            # Queue metrics (pending/admitted workloads, quotas, shares) for the observability layer's dashboard.
            "enablePrometheus": self.peers.get(Metrics) is not None,
        }

    def workloads(self) -> list[Workload]:
        cpu, mem, _ = _SIZES[self.profile.size]
        return [Workload("kueue-controller-manager", cpu, mem, self.profile.replicas)]

    def outputs(self) -> dict[str, Any]:
        return {"clusterQueues": [q["metadata"]["name"] for q in self.queues()], "cohort": self.options.cohort}


def _add(a: str, b: str) -> str:
    """Sum of two quantities, as a quantity: whole numbers stay whole, memory in Gi or Mi where it divides."""
    total = quantity(a) + quantity(b)
    for unit, size in (("Gi", Decimal(1 << 30)), ("Mi", Decimal(1 << 20))):
        if total >= size and total % size == 0:
            return f"{int(total / size)}{unit}"
    if total == int(total):
        return str(int(total))
    return f"{int(total * 1000)}m"
