"""cluster-autoscaler: adds nodes when pods (a queued training job, a GPU notebook) cannot be scheduled,
and removes idle ones, so GPU node groups can sit at zero.

Only for clusters whose capabilities say `node_autoscaling: cluster-autoscaler` (EKS managed node
groups). GKE scales its own pools; kind and existing clusters have no node groups to scale. Cluster
Autoscaler was chosen over Karpenter because the platform declares its node groups in config (the
GPU shape, taint and labels are decided up front), it needs no extra CRDs, and it reads an empty
group's labels, taint and GPU count from the group itself (docs/layers/cluster-autoscaler.md).
Runs with its own Pod Identity role (describe node groups; resize only groups tagged for it).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from addons.base import Layer
from modules.clusters.contract import WorkloadIdentity
from modules.shared.config import ConfigError, LayerOptions
from modules.shared.k8s import resources
from modules.shared.parts import Workload
from modules.shared.versions import VERSIONS

RELEASE_NAME = "cluster-autoscaler"
SERVICE_ACCOUNT = "cluster-autoscaler"
UID = 65534  # nonroot user of the distroless image

_SIZES = {"small": ("50m", "128Mi", "300Mi"), "large": ("100m", "300Mi", "600Mi")}


class ClusterAutoscalerOptions(LayerOptions):
    expander: Literal["least-waste", "random", "most-pods", "price"] = Field(
        "least-waste", description="which node group to grow when several fit")
    scaleDownUnneededTime: str = Field(
        "10m", pattern=r"^[0-9]+[smh]$",
        description="how long a node stays unneeded before removal: `<n>s`, `<n>m` or `<n>h`")


class ClusterAutoscaler(Layer):
    name = "cluster-autoscaler"
    component = "ClusterAutoscaler"
    description = "Scales node groups (GPU groups from zero) to the pods waiting for them."
    chart = "cluster-autoscaler"
    Options = ClusterAutoscalerOptions
    default_namespace = "cluster-autoscaler"

    def validate(self) -> None:
        if self.caps.node_autoscaling != "cluster-autoscaler":
            why = {"provider": "scales its node pools itself",
                   "none": "has no node groups the platform can scale"}[self.caps.node_autoscaling]
            raise ConfigError(f"cnai:layers.cluster-autoscaler.enabled: a {self.spec.environment} cluster {why}; "
                              "disable this layer")

    def identity(self) -> WorkloadIdentity | None:
        return WorkloadIdentity(self.name, ((self.namespace, SERVICE_ACCOUNT),), permissions=("node-autoscaling",))

    def values(self) -> dict[str, Any]:
        repo, tag = VERSIONS.images[f"cluster-autoscaler-{self.spec.kubernetesVersion}"].rsplit(":", 1)
        return {
            "fullnameOverride": RELEASE_NAME,
            "cloudProvider": "aws",
            "awsRegion": self.caps.region,
            "autoDiscovery": {"clusterName": self.caps.cluster_name},
            "image": {"repository": repo, "tag": tag},
            # Pod Identity associates this account with the role; no annotation needed.
            "rbac": {"serviceAccount": {"create": True, "name": SERVICE_ACCOUNT}},
            "replicaCount": self.profile.replicas,
            "resources": resources(*_SIZES[self.profile.size]),
            "extraArgs": {
                "balance-similar-node-groups": True,
                "expander": self.options.expander,
                "scale-down-unneeded-time": self.options.scaleDownUnneededTime,
            },
            "securityContext": {"runAsNonRoot": True, "runAsUser": UID, "runAsGroup": UID,
                                "seccompProfile": {"type": "RuntimeDefault"}},
            "containerSecurityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]},
                                         "readOnlyRootFilesystem": True},
        }

    def workloads(self) -> list[Workload]:
        cpu, mem, _ = _SIZES[self.profile.size]
        return [Workload("cluster-autoscaler", cpu, mem, self.profile.replicas)]
