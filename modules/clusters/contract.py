"""The cluster contract: what layers ask of a cluster module, and what it tells them.

A cluster module (kind, existing, eks, gke) exposes
- `validate(spec, requests)` (optional): its own config checks, one `ConfigError` line each;
- `capabilities(spec, requests) -> Capabilities`: what the cluster provides (GPU driver on the nodes?
  GPU labels and taint? default storage class? cloud buckets and identities?), computed once a run;
- `create(spec, requests, caps) -> Cluster`: the resources, a Kubernetes provider and what layers wait for;
`ClusterRequests` are what the enabled layers need from the cluster (workload identities with their
buckets, a managed database, real GPU devices), collected by the engine from the layers. The engine
applies `cnai:gpu` (models, sharing) to the capabilities in one place (`with_gpu_sharing`). Layers never
look at the environment's name, and cluster modules never read a layer's config.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from modules.shared import gpus
from modules.shared.config import ConfigError
from modules.shared.gpus import GPU_RESOURCE, PRODUCT_LABEL

GPU_TAINT = {"key": GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"}

# Deploy-time values a cloud module provides for the managed database (`Cluster.provided`), read by
# layers as Generated(CLUSTER_VALUES, ...) markers.
PG_ADDRESS, PG_ADMIN_PASSWORD = "postgres-address", "postgres-admin-password"
PG_ADMIN_USER = "cnai_admin"  # the managed instance's admin login (RDS master user, Cloud SQL built-in user)


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
class ManagedDatabase:
    """A layer asks the cloud for its managed PostgreSQL (RDS, Cloud SQL) instead of running one."""


@dataclass(frozen=True)
class GpuDevices:
    """A layer drives the GPU devices itself (the GPU operator): simulated GPUs will not do."""


Request = WorkloadIdentity | ManagedDatabase | GpuDevices


@dataclass(frozen=True)
class ClusterRequests:
    """Everything the enabled layers ask of the cluster module, collected by the engine."""

    identities: tuple[WorkloadIdentity, ...] = ()
    managed_database: bool = False
    gpu_devices: bool = False

    @classmethod
    def of(cls, requests: list[Request]) -> "ClusterRequests":
        return cls(identities=tuple(r for r in requests if isinstance(r, WorkloadIdentity)),
                   managed_database=any(isinstance(r, ManagedDatabase) for r in requests),
                   gpu_devices=any(isinstance(r, GpuDevices) for r in requests))

    @property
    def buckets(self) -> list[str]:
        """Every bucket some layer uses, sorted."""
        return sorted({b for ident in self.identities for b in ident.buckets})


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
    # GPU models (nvidia.com/gpu.product as discovery labels them, without MIG suffixes) the GPU nodes
    # carry: from the cloud pools' instance types, else `cnai:gpu.model`; empty: not known.
    gpu_models: tuple[str, ...] = ()
    # The MIG manager's config label (nvidia.com/mig.config) is set on GPU nodes when they are created
    # (cloud pools); otherwise the gpu-operator layer labels `gpu_node_names`.
    mig_config_labelled: bool = False
    gpu_node_names: tuple[str, ...] = ()
    gpu_sharing: str = "none"  # none | time-slicing | mps | mig
    gpu_replicas: int = 1  # time-slicing or MPS replicas per GPU
    gpu_allocation: str = "device-plugin"  # device-plugin | dra (NVIDIA's DRA driver; whole GPUs)
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

    @property
    def gpu_resource(self) -> str:
        """The resource a pod requests for one GPU (or one slice): MIG's mixed strategy names each profile;
        with several (`all-balanced`), the smallest."""
        if self.gpu_sharing == "mig" and self.mig_strategy == "mixed":
            layout = gpus.mig_layout(self.gpu_models, self.mig_profile)
            return f"nvidia.com/mig-{max(layout, key=lambda p: (layout[p], p))}"
        return GPU_RESOURCE

    def gpu_resources(self) -> dict[str, int]:
        """Schedulable GPU resources (name -> count) as the device plugin will advertise them (with DRA: the
        GPUs Kueue counts under `nvidia.com/gpu`)."""
        if not self.gpus:
            return {}
        if self.gpu_sharing in ("time-slicing", "mps"):
            return {GPU_RESOURCE: self.gpus * self.gpu_replicas}
        if self.gpu_sharing == "mig":
            layout = gpus.mig_layout(self.gpu_models, self.mig_profile)
            if self.mig_strategy == "single":
                return {GPU_RESOURCE: self.gpus * sum(layout.values())}
            return {f"nvidia.com/mig-{p}": self.gpus * n for p, n in sorted(layout.items())}
        return {GPU_RESOURCE: self.gpus}

    def check_gpu_resources(self, key: str, resources: Any) -> None:
        """Refuse, naming config `key`, GPU resources the cluster does not advertise."""
        known = sorted(self.gpu_resources())
        unknown = sorted(set(resources) - set(known))
        if unknown:
            raise ConfigError(f"{key}: the cluster advertises no {', '.join(unknown)}; its GPU resources: "
                              f"{', '.join(known) or 'none'}")

    def gpu_quota(self, quota: Any) -> dict[str, int]:
        """A team's GPUs by the resources the cluster advertises: `quota.gpuResources` where given, else
        `quota.gpu` of the primary resource (`gpu_resource`) and none of the others."""
        if not self.gpus:
            return {}
        out = {r: 0 for r in self.gpu_resources()}
        out[self.gpu_resource] = quota.gpu
        out.update({r: n for r, n in quota.gpuResources.items() if r in out})
        return out

    def gpu_products(self) -> tuple[str, ...]:
        """The nvidia.com/gpu.product values GPU feature discovery gives the GPU nodes: with MIG's single
        strategy the model gains a `-MIG-<profile>` suffix; otherwise the model as it is."""
        if self.gpu_sharing == "mig" and self.mig_strategy == "single":
            return tuple(f"{m}-MIG-{gpus.mig_profile(self.mig_profile)}" for m in self.gpu_models)
        return self.gpu_models

    def gpu_product_selector(self) -> dict[str, str]:
        """A node label selecting the GPU model the nodes carry, when they carry one known model."""
        products = self.gpu_products()
        return {PRODUCT_LABEL: products[0]} if len(products) == 1 else {}


def with_gpu_sharing(caps: Capabilities, gpu: Any, where: str, kubernetes_version: str) -> Capabilities:
    """The one place `cnai:gpu` reaches the capabilities layers read: the GPU models (the cloud pools',
    else `cnai:gpu.model`), time-slicing or MPS replicas, the MIG strategy and profile, and the allocation
    (device plugin or DRA), after refusing what the GPUs or the Kubernetes version cannot do
    (gpus.check_sharing, gpus.check_allocation). `where` names the cluster in messages."""
    mode = gpu.sharing.mode if gpu.enabled else "none"
    models = caps.gpu_models or ((gpu.model,) if gpu.enabled and gpu.model else ())
    if gpu.enabled and gpu.model and caps.gpu_models and set(caps.gpu_models) != {gpu.model}:
        raise ConfigError(f"cnai:gpu.model: {gpu.model} but the GPU pools carry {', '.join(caps.gpu_models)}; "
                          "leave it empty on clouds (the pools' instance types decide)")
    gpus.check_sharing(gpu.sharing, models, caps.mig_supported, where)
    gpus.check_allocation(gpu, kubernetes_version, where)
    fields: dict[str, Any] = {"gpu_models": models, "gpu_sharing": mode,
                              "gpu_replicas": gpu.sharing.replicas if mode in ("time-slicing", "mps") else 1,
                              "gpu_allocation": gpu.allocation if gpu.enabled else "device-plugin"}
    if mode == "mig":
        fields.update(mig_strategy=gpu.sharing.migStrategy, mig_profile=gpu.sharing.migProfile)
    return replace(caps, **fields)


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
