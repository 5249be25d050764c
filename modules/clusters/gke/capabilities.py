"""What a GKE stack's config means for the layers: its checks, accelerators and capabilities."""

from __future__ import annotations

from modules.clusters.contract import GPU_TAINT, Capabilities, CloudStorage, ClusterRequests
from modules.shared.config import ConfigError, PlatformSpec

# Accelerator type -> machine families that carry it (GKE GPU platforms).
ACCELERATORS: dict[str, tuple[str, ...]] = {
    "nvidia-tesla-t4": ("n1",), "nvidia-tesla-v100": ("n1",), "nvidia-tesla-p4": ("n1",),
    "nvidia-l4": ("g2",), "nvidia-tesla-a100": ("a2",), "nvidia-a100-80gb": ("a2",),
    "nvidia-h100-80gb": ("a3",), "nvidia-h100-mega-80gb": ("a3",), "nvidia-h200-141gb": ("a3",),
    "nvidia-b200": ("a4",), "nvidia-rtx-pro-6000": ("g4",),
}
# The GPU model of each accelerator type, as GPU feature discovery labels it (modules/shared/gpus.py).
ACCELERATOR_MODELS: dict[str, str] = {
    "nvidia-tesla-t4": "Tesla-T4", "nvidia-tesla-v100": "Tesla-V100-SXM2-16GB", "nvidia-tesla-p4": "Tesla-P4",
    "nvidia-l4": "NVIDIA-L4", "nvidia-tesla-a100": "NVIDIA-A100-SXM4-40GB", "nvidia-a100-80gb": "NVIDIA-A100-SXM4-80GB",
    "nvidia-h100-80gb": "NVIDIA-H100-80GB-HBM3", "nvidia-h100-mega-80gb": "NVIDIA-H100-80GB-HBM3",
    "nvidia-h200-141gb": "NVIDIA-H200", "nvidia-b200": "NVIDIA-B200",
    "nvidia-rtx-pro-6000": "NVIDIA-RTX-PRO-6000-Blackwell-Server-Edition",
}
GPU_LABELS = {"nvidia.com/gpu.present": "true"}
POOL_LABEL = "platform.cnai.dev/pool"
# The operator's device plugin replaces GKE's (needed for time-slicing/MIG through the operator).
NO_GKE_DEVICE_PLUGIN = {"gke-no-default-nvidia-gpu-device-plugin": "true"}
GKE_DRIVER_ROOT = "/home/kubernetes/bin/nvidia"
STORAGE_CLASS = "standard-rwo"
BUCKET_ROLES = {"rw": "roles/storage.objectUser", "ro": "roles/storage.objectViewer"}
DB_TIERS = {"small": "db-custom-1-3840", "large": "db-custom-2-7680"}  # by profile size
NODE_ROLES = ("roles/logging.logWriter", "roles/monitoring.metricWriter", "roles/monitoring.viewer",
              "roles/artifactregistry.reader", "roles/autoscaling.metricsWriter")


def bucket_prefix(spec: PlatformSpec) -> str:
    return spec.gke.bucketPrefix or f"cnai-{spec.stack}"


def account_id(cluster: str, layer: str) -> str:
    """A Google service account id (6-30 characters) for a layer of this cluster."""
    return f"{cluster}-{layer}"[:30].rstrip("-")


def validate(spec: PlatformSpec, requests: ClusterRequests) -> None:
    g = spec.gke
    if not g.project:
        raise ConfigError("cnai:gke.project: is required for environment gke (the Google Cloud project id)")
    if not g.region:
        raise ConfigError("cnai:gke.region: is required for environment gke (for example europe-west4)")
    for i, zone in enumerate(g.zones):
        if not zone.startswith(g.region + "-"):
            raise ConfigError(f"cnai:gke.zones[{i}]: {zone!r} is not a zone of {g.region}")
    if g.network.network and not g.network.subnetwork:
        raise ConfigError("cnai:gke.network.subnetwork: an adopted network needs its subnetwork (with pods and "
                          "services secondary ranges)")
    names = [p.name for p in g.gpuPools]
    for i, pool in enumerate(g.gpuPools):
        families = ACCELERATORS.get(pool.acceleratorType)
        if families is None:
            raise ConfigError(f"cnai:gke.gpuPools[{i}].acceleratorType: {pool.acceleratorType!r} is not a known "
                              f"NVIDIA accelerator (known: {', '.join(sorted(ACCELERATORS))})")
        if pool.machineType.split("-")[0] not in families:
            raise ConfigError(f"cnai:gke.gpuPools[{i}].machineType: {pool.acceleratorType} runs on "
                              f"{'/'.join(families)} machines, not {pool.machineType}")
        if names.count(pool.name) > 1:
            raise ConfigError(f"cnai:gke.gpuPools[{i}].name: pool {pool.name!r} is declared twice")
    if spec.gpu.enabled and not g.gpuPools:
        raise ConfigError("cnai:gke.gpuPools: cnai:gpu.enabled is true but no GPU pool is configured")
    if spec.gpu.enabled and len({p.acceleratorCount for p in g.gpuPools}) > 1:
        raise ConfigError("cnai:gke.gpuPools: all GPU pools must have the same acceleratorCount; quotas and "
                          "sharing settings are per node")
    if g.gpuDriver == "gke" and spec.gpu.sharing.mode == "mig":
        raise ConfigError("cnai:gpu.sharing.mode: mig through the GPU operator needs cnai:gke.gpuDriver: operator "
                          "(GKE-installed drivers take MIG partitions from the node pool instead)")


def _zones_count(spec: PlatformSpec) -> int:
    return len(spec.gke.zones) or 3  # a regional cluster spreads pools over the region's zones (3 by default)


def capabilities(spec: PlatformSpec, requests: ClusterRequests) -> Capabilities:
    g, gpu = spec.gke, spec.gpu
    pools = g.gpuPools if gpu.enabled else ()
    zones = _zones_count(spec)
    gke_driver = g.gpuDriver == "gke"
    return Capabilities(
        nodes=g.systemPool.min * zones,
        gpu_nodes=sum(p.max for p in pools) * zones,  # pool sizes are per zone
        gpus_per_node=pools[0].acceleratorCount if pools else 0,
        gpu_models=tuple(sorted({ACCELERATOR_MODELS[p.acceleratorType] for p in pools})),
        mig_config_labelled=True,  # the GPU pools carry nvidia.com/mig.config (resources.py)
        gpu_drivers_preinstalled=gke_driver,
        gpu_toolkit_preinstalled=False,
        gpu_node_selector=dict(GPU_LABELS),
        gpu_tolerations=(GPU_TAINT,),
        gpu_nodes_labelled=True,
        default_storage_class=STORAGE_CLASS,
        load_balancer=True,
        mig_supported=not gke_driver,
        gpu_toleration_injected=True,  # GKE adds the GPU toleration to pods that request GPUs
        cloud_storage=CloudStorage(
            kind="gcs", region=g.region, buckets={b: f"{bucket_prefix(spec)}-{b}" for b in requests.buckets},
            identities={i.layer: {"iam.gke.io/gcp-service-account":
                                  f"{account_id(g.name, i.layer)}@{g.project}.iam.gserviceaccount.com"}
                        for i in requests.identities}),
        node_autoscaling="provider",
        cluster_name=g.name,
        region=g.region,
        gpu_driver_root=GKE_DRIVER_ROOT if gke_driver else "",
        containerd_config_file=True,  # GKE >= 1.33: the toolkit must read containerd's config from file
        critical_pods_need_quota=True,
        cni_bin_dir="/home/kubernetes/bin",  # GKE mounts /opt/cni/bin read-only
        managed_postgres="cloudsql",
    )
