"""Config models of what the platform shares and with whom: the GPUs (sharing mode, allocation) and the
teams (quota, queue settings). Part of the platform spec (modules/shared/config.py)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from modules.shared.config_types import DNS_LABEL, OPTIONAL_EMAIL, Email, Quantity, Strict

# ---------------------------------------------------------------------------------------------
# GPU settings


class GpuSharing(Strict):
    mode: Literal["none", "time-slicing", "mps", "mig"] = "none"
    replicas: int = Field(4, ge=2, le=64, description="time-slicing and mps: pods sharing one GPU")
    migStrategy: Literal["single", "mixed"] = "single"
    migProfile: str = Field("all-1g.10gb", pattern=r"^[a-z0-9.-]+$",
                            description="mig: `all-<profile>` or `all-balanced` (mixed strategy), applied through "
                                        "the nvidia.com/mig.config node label")


class Gpu(Strict):
    enabled: bool = False
    count: int = Field(1, ge=1, le=8, description="kind: GPUs passed through to the GPU worker")
    model: str = Field("", pattern=r"^[A-Za-z0-9._-]*$",
                       description="GPU product label (nvidia.com/gpu.product) the GPU flavor selects; empty: any")
    sharing: GpuSharing = GpuSharing()
    allocation: Literal["device-plugin", "dra"] = Field(
        "device-plugin",
        description="how pods get GPUs: the device plugin's `nvidia.com/gpu` resource, or Dynamic Resource "
                    "Allocation through NVIDIA's DRA driver (Kubernetes 1.34+, whole GPUs)")


# ---------------------------------------------------------------------------------------------
# Teams


class TeamQuota(Strict):
    cpu: Quantity = "4"
    memory: Quantity = "16Gi"
    gpu: int = Field(0, ge=0, le=4096, description="GPUs (or GPU slices: the resource the cluster advertises)")
    gpuResources: dict[str, int] = Field(
        default_factory=dict,
        description="per GPU resource, where the cluster advertises several (MIG `all-balanced`): "
                    "`{nvidia.com/mig-<profile>: count}`")
    pods: int = Field(50, ge=1, le=10000)
    storage: Quantity = "100Gi"


class BorrowingLimit(Strict):
    cpu: Quantity | None = Field(None, description="CPU the team may borrow (null: as much as its quota)")
    memory: Quantity | None = Field(None, description="memory the team may borrow (null: as much as its quota)")
    gpu: int | None = Field(None, ge=0, le=4096,
                            description="GPUs the team may borrow (null: every GPU the rest of the cohort lends)")


class TeamQueue(Strict):
    """The team's Kueue ClusterQueue in the platform's cohort."""

    weight: float = Field(1.0, gt=0, le=1000, description="fair-sharing weight (a share of idle capacity)")
    borrowingLimit: BorrowingLimit = BorrowingLimit()
    reservedGpus: int | None = Field(
        None, ge=0, le=4096,
        description="GPUs of the quota never lent to other teams (null: cnai:layers.kueue.reservedGpuShare of it, "
                    "rounded down)")


class Team(Strict):
    name: str = Field(pattern=DNS_LABEL.pattern, max_length=50)
    group: str = Field("", description="identity-provider group bound to the team namespace (default: team name)")
    owner: str = Field("", pattern=OPTIONAL_EMAIL, max_length=200,
                       description="email of the team's Kubeflow profile owner (kubeflow-platform layer)")
    members: tuple[Email, ...] = Field((), strict=False, max_length=500,
                                       description="emails of the profile's contributors (kubeflow-platform layer)")
    quota: TeamQuota = TeamQuota()
    queue: TeamQueue = TeamQueue()
    allowInternetEgress: bool = False

    @property
    def namespace(self) -> str:
        return f"team-{self.name}"

    @property
    def rbac_group(self) -> str:
        return self.group or self.name


