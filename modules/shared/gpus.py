"""NVIDIA GPU models the platform knows: the product label GPU feature discovery gives their nodes, and
their MIG profiles with the instances per GPU. One table for every environment, so impossible sharing
settings (MIG on a GPU without MIG, a profile a GPU does not have) are refused in one line wherever the
cluster comes from, whether or not the gpu-operator layer runs.

Sources (facts, not copies): MIG profiles and counts from NVIDIA/mig-parted v0.15.0 (the MIG manager of
gpu-operator v26.7.0: `pkg/mig/builder`, and the operator's fallback `default-mig-parted-config`); product
labels are `sanitise(NVML name)` as k8s-device-plugin v0.20.0 labels them (`internal/lm/resource.go`).
Product strings marked `verified=False` come from third-party sources only: check them on a live node
(`kubectl get nodes -L nvidia.com/gpu.product`) and set `cnai:gpu.model` if they differ.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from modules.shared.config import ConfigError

GPU_RESOURCE = "nvidia.com/gpu"
PRODUCT_LABEL = "nvidia.com/gpu.product"
MIG_CONFIG_LABEL = "nvidia.com/mig.config"  # the MIG manager applies the config this node label names
# Dynamic Resource Allocation (NVIDIA's DRA driver): the DeviceClass of whole GPUs its chart creates, and the
# ResourceClaimTemplate the platform puts in every namespace whose pods ask for GPUs.
DRA_GPU_CLASS = "gpu.nvidia.com"
GPU_CLAIM_TEMPLATE = "gpu"

_A100_40 = {"1g.5gb": 7, "1g.10gb": 4, "2g.10gb": 3, "3g.20gb": 2, "4g.20gb": 1, "7g.40gb": 1}
_80GB = {"1g.10gb": 7, "1g.20gb": 4, "2g.20gb": 3, "3g.40gb": 2, "4g.40gb": 1, "7g.80gb": 1}


@dataclass(frozen=True)
class GpuModel:
    product: str  # nvidia.com/gpu.product
    mig: dict[str, int] = field(default_factory=dict)  # MIG profile -> instances per GPU (all-<profile>)
    verified: bool = True  # the product string is in NVIDIA's own docs

    @property
    def mig_configs(self) -> list[str]:
        """The single-profile MIG manager configs this GPU has (`all-<profile>`)."""
        return [f"all-{p}" for p in self.mig]


MODELS: dict[str, GpuModel] = {m.product: m for m in (
    GpuModel("Tesla-T4"),
    GpuModel("Tesla-V100-SXM2-16GB", verified=False),
    GpuModel("Tesla-P4", verified=False),
    GpuModel("NVIDIA-A10G", verified=False),
    GpuModel("NVIDIA-L4", verified=False),
    GpuModel("NVIDIA-L40S", verified=False),
    GpuModel("NVIDIA-A30", {"1g.6gb": 4, "2g.12gb": 2, "4g.24gb": 1}, verified=False),
    GpuModel("NVIDIA-A100-SXM4-40GB", _A100_40),
    GpuModel("NVIDIA-A100-PCIE-40GB", _A100_40, verified=False),
    GpuModel("NVIDIA-A100-SXM4-80GB", _80GB, verified=False),
    GpuModel("NVIDIA-A100-80GB-PCIe", _80GB, verified=False),
    GpuModel("NVIDIA-H100-80GB-HBM3", _80GB),
    GpuModel("NVIDIA-H100-PCIe", _80GB, verified=False),
    GpuModel("NVIDIA-H100-NVL", {"1g.12gb": 7, "1g.24gb": 4, "2g.24gb": 3, "3g.47gb": 2, "4g.47gb": 1,
                                 "7g.94gb": 1}, verified=False),
    GpuModel("NVIDIA-H200", {"1g.18gb": 7, "1g.35gb": 4, "2g.35gb": 3, "3g.71gb": 2, "4g.71gb": 1,
                             "7g.141gb": 1}, verified=False),
    GpuModel("NVIDIA-B200", {"1g.23gb": 7, "1g.45gb": 4, "2g.45gb": 3, "3g.90gb": 2, "4g.90gb": 1,
                             "7g.180gb": 1}, verified=False),
    GpuModel("NVIDIA-RTX-PRO-6000-Blackwell-Server-Edition", {"1g.24gb": 4, "2g.48gb": 2, "4g.96gb": 1},
             verified=False),
)}


def mig_capable() -> list[str]:
    return sorted(p for p, m in MODELS.items() if m.mig)


BALANCED = "all-balanced"
DRA_MIN_MINOR = 34  # resource.k8s.io/v1 and DRA on by default (GA) from Kubernetes 1.34


def mig_profile(config: str) -> str:
    """The MIG profile of a single-profile MIG manager config (`all-1g.10gb` -> `1g.10gb`)."""
    return config.removeprefix("all-")


def _balanced(model: GpuModel) -> dict[str, int]:
    """mig-parted's generated `all-balanced` (builder/balanced.go): two of the smallest 1g profile and one
    2g, plus one 3g on 7-slice GPUs."""
    ones = sorted((p for p in model.mig if p.startswith("1g.")), key=lambda p: -model.mig[p])
    layout = {ones[0]: 2}
    layout.update({next(p for p in model.mig if p.startswith("2g.")): 1})
    if model.mig[ones[0]] == 7:
        layout[next(p for p in model.mig if p.startswith("3g."))] = 1
    return layout


def mig_layout(models: tuple[str, ...], config: str) -> dict[str, int]:
    """MIG instances per GPU, by profile, that `config` creates on every one of `models` (the fewest where
    pools differ; `all-balanced` is checked to mean one model)."""
    if config == BALANCED:
        return _balanced(MODELS[models[0]])
    profile = mig_profile(config)
    return {profile: min(MODELS[m].mig[profile] for m in models)}


def slices(models: tuple[str, ...], config: str) -> int:
    """MIG instances per GPU of a single-profile `config` on every one of `models`."""
    return sum(mig_layout(models, config).values())


def check_allocation(gpu, kubernetes_version: str, where: str) -> None:
    """Refuse, in one line, Dynamic Resource Allocation where it cannot work."""
    if gpu.allocation != "dra" or not gpu.enabled:
        return
    if int(kubernetes_version.split(".")[1]) < DRA_MIN_MINOR:
        raise ConfigError(f"cnai:gpu.allocation: dra needs Kubernetes 1.{DRA_MIN_MINOR} or later (resource.k8s.io/v1, "
                          f"DRA on by default); cnai:kubernetesVersion is {kubernetes_version}")
    if gpu.sharing.mode != "none":
        raise ConfigError(f"cnai:gpu.sharing.mode: {gpu.sharing.mode} with allocation dra is not supported (the DRA "
                          "driver's time-slicing, MPS and dynamic MIG are alpha); use sharing none with dra")


def check_sharing(sharing, models: tuple[str, ...], partitioning: bool, where: str) -> None:
    """Refuse, in one line, GPU sharing the cluster's GPUs cannot do. `models` are the product labels the
    cluster's GPU nodes carry (empty: not known), `where` names the cluster for messages."""
    if sharing.mode != "mig":
        return
    if not partitioning:
        raise ConfigError(f"cnai:gpu.sharing.mode: mig is not supported on {where} (MIG reconfiguration needs "
                          "control of the host driver); use none, time-slicing or mps")
    if not models:
        raise ConfigError("cnai:gpu.model: MIG needs the GPU model the nodes carry (their nvidia.com/gpu.product, "
                          f"one of {', '.join(mig_capable())}) to check the profile")
    for model in models:
        known = MODELS.get(model)
        if known is None:
            raise ConfigError(f"cnai:gpu.model: {model!r} is not a GPU model the platform knows the MIG profiles of; "
                              f"MIG-capable models: {', '.join(mig_capable())}")
        if not known.mig:
            raise ConfigError(f"cnai:gpu.sharing.mode: {model} GPUs ({where}) have no MIG; use none, time-slicing "
                              "or mps")
        if sharing.migProfile == BALANCED:
            continue
        if not sharing.migProfile.startswith("all-") or mig_profile(sharing.migProfile) not in known.mig:
            raise ConfigError(f"cnai:gpu.sharing.migProfile: {model} has no {sharing.migProfile!r}; "
                              f"its configs are {', '.join(known.mig_configs)} and {BALANCED}")
    if sharing.migProfile == BALANCED:
        if sharing.migStrategy != "mixed":
            raise ConfigError(f"cnai:gpu.sharing.migProfile: {BALANCED} creates several profiles per GPU, which only "
                              "the mixed strategy advertises; set cnai:gpu.sharing.migStrategy: mixed")
        if len(models) > 1:
            raise ConfigError(f"cnai:gpu.sharing.migProfile: {BALANCED} differs per GPU model and the GPU nodes carry "
                              f"{', '.join(models)}; use one model or an all-<profile> config")
