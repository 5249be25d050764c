"""The cluster description every cluster module returns and every layer reads.

Layers never look at the environment's name: they read `Capabilities` (is the GPU driver already on
the nodes? which labels and taints do GPU nodes carry? which storage class is the default?).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

GPU_RESOURCE = "nvidia.com/gpu"
GPU_TAINT = {"key": GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"}
# MIG slices per GPU by compute-slice count of a profile such as all-1g.10gb (NVIDIA MIG user guide).
_MIG_SLICES = {1: 7, 2: 3, 3: 2, 4: 1, 7: 1}


CLUSTER_VALUES = "cluster"  # the `layer` of Generated markers the cluster module resolves
PG_ADDRESS, PG_ADMIN_PASSWORD = "postgres-address", "postgres-admin-password"
PG_ADMIN_USER = "cnai_admin"  # the managed instance's admin login (RDS master user, Cloud SQL built-in user)


def wants_managed_postgres(spec: Any) -> bool:
    """Whether the cloud module creates the managed PostgreSQL instance for the postgres layer."""
    pg = spec.layer("postgres")
    return bool(pg.enabled and pg.managed)


@dataclass(frozen=True)
class WorkloadIdentity:
    """What one layer's pods need from a cloud: buckets (and how), and the ServiceAccounts they run as.
    Cloud cluster modules turn it into a scoped role (EKS Pod Identity) or a Google service account
    bound through Workload Identity."""

    layer: str
    subjects: tuple[tuple[str, str], ...]  # (namespace, service account)
    buckets: dict[str, str] = field(default_factory=dict)  # platform bucket -> "rw" | "ro"
    permissions: tuple[str, ...] = ()  # named extra grants, e.g. "node-autoscaling"


@dataclass(frozen=True)
class CloudStorage:
    """Buckets a cloud cluster module created, and how workloads reach them without static keys."""

    kind: str  # "s3" | "gcs"
    region: str
    buckets: dict[str, str]  # platform bucket (mlflow, models, feast, ...) -> cloud bucket name
    # layer name -> ServiceAccount annotations binding its workloads to a cloud identity scoped to
    # its buckets (eks.amazonaws.com/role-arn, iam.gke.io/gcp-service-account)
    identities: dict[str, dict[str, str]]


@dataclass(frozen=True)
class Capabilities:
    """What a cluster provides, as far as the layers need to know."""

    nodes: int  # nodes that run workloads (control-plane nodes excluded)
    gpu_nodes: int
    gpus_per_node: int
    gpu_drivers_preinstalled: bool
    gpu_toolkit_preinstalled: bool
    gpu_node_selector: dict[str, str]
    gpu_tolerations: tuple[dict[str, str], ...]
    default_storage_class: str
    load_balancer: bool
    mig_supported: bool
    gpu_nodes_labelled: bool = False  # GPU nodes carry gpu_node_selector before any discovery runs
    gpu_sharing: str = "none"  # none | time-slicing | mig
    gpu_replicas: int = 1  # time-slicing replicas per GPU
    mig_strategy: str = "single"
    mig_profile: str = ""
    # The API server's ExtendedResourceToleration admission plugin adds the GPU taint's toleration to
    # every pod that requests nvidia.com/gpu, so GPU runtimes and notebooks need no explicit toleration.
    gpu_toleration_injected: bool = False
    cloud_storage: CloudStorage | None = None  # None: the object-store layer runs a store in the cluster
    # Who adds nodes: "cluster-autoscaler" (EKS node groups; the layer of that name runs it),
    # "provider" (GKE node auto-scaling), or "none" (kind, existing).
    node_autoscaling: str = "none"
    cluster_name: str = ""  # the cloud's name of the cluster (autoscaler discovery)
    region: str = ""
    # GPU driver installed by the cloud under this host path (GKE's installer); the operator's
    # toolkit and validator look for it there instead of the default /run/nvidia/driver.
    gpu_driver_root: str = ""
    # containerd reads its runtime config from file (GKE >= 1.33 needs RUNTIME_CONFIG_SOURCE=file).
    containerd_config_file: bool = False
    # The cloud admits system-node-critical pods only in namespaces with a quota for them (GKE).
    critical_pods_need_quota: bool = False
    # The cloud's managed PostgreSQL ("rds" | "cloudsql"), created by the cluster module when the
    # postgres layer asks for it (`managed: true`); its address and admin password reach the layer
    # as `Generated(CLUSTER_VALUES, ...)` values (see `Cluster.provided`).
    managed_postgres: str = ""
    # Where nodes keep CNI plugins: GKE mounts /opt/cni/bin read-only and uses /home/kubernetes/bin
    # (the kubeflow-platform layer installs Istio CNI there).
    cni_bin_dir: str = "/opt/cni/bin"

    @property
    def gpus(self) -> int:
        return self.gpu_nodes * self.gpus_per_node

    def gpu_resources(self) -> dict[str, int]:
        """Schedulable GPU resources (name -> count) as the device plugin will advertise them."""
        if not self.gpus:
            return {}
        if self.gpu_sharing == "time-slicing":
            return {GPU_RESOURCE: self.gpus * self.gpu_replicas}
        if self.gpu_sharing == "mig":
            m = re.match(r"^all-(\d+)g\.", self.mig_profile)
            slices = _MIG_SLICES.get(int(m.group(1)), 1) if m else 1
            name = GPU_RESOURCE if self.mig_strategy == "single" else f"nvidia.com/mig-{self.mig_profile[4:]}"
            return {name: self.gpus * slices}
        return {GPU_RESOURCE: self.gpus}


@dataclass
class Cluster:
    """A Kubernetes cluster the layers deploy onto."""

    name: str
    provider: k8s.Provider
    kubeconfig: pulumi.Output[str]  # always a secret
    capabilities: Capabilities
    ready: list[pulumi.Resource] = field(default_factory=list)  # what layers wait for before deploying
    outputs: dict[str, Any] = field(default_factory=dict)
    # Deploy-time values the cluster module produces for layers (managed database address, its admin
    # password): layers read them as `Generated(CLUSTER_VALUES, key)`.
    provided: dict[str, Any] = field(default_factory=dict)
