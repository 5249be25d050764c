"""What an EKS stack's config means for the layers: its checks, its GPU instance types and its capabilities."""

from __future__ import annotations

from dataclasses import replace

from modules.clusters.contract import GPU_TAINT, Capabilities, CloudStorage, ClusterRequests
from modules.shared.cluster_config import EksGpuPool
from modules.shared.config import ConfigError, PlatformSpec
from modules.shared.gpus import GPU_RESOURCE, MIG_CONFIG_LABEL

# NVIDIA GPUs per instance for the EC2 GPU instance types the platform accepts.
GPU_INSTANCES: dict[str, int] = {
    **{f"g4dn.{s}": 1 for s in ("xlarge", "2xlarge", "4xlarge", "8xlarge", "16xlarge")},
    "g4dn.12xlarge": 4, "g4dn.metal": 8,
    **{f"{f}.{s}": 1 for f in ("g5", "g6", "g6e") for s in ("xlarge", "2xlarge", "4xlarge", "8xlarge", "16xlarge")},
    **{f"{f}.{s}": 4 for f in ("g5", "g6", "g6e") for s in ("12xlarge", "24xlarge")},
    **{f"{f}.48xlarge": 8 for f in ("g5", "g6", "g6e")},
    "p4d.24xlarge": 8, "p4de.24xlarge": 8, "p5.4xlarge": 1, "p5.48xlarge": 8, "p5e.48xlarge": 8,
    "p5en.48xlarge": 8, "p6-b200.48xlarge": 8,
}
# The GPU model of each instance family, as GPU feature discovery labels it (modules/shared/gpus.py).
GPU_FAMILIES: dict[str, str] = {
    "g4dn": "Tesla-T4", "g5": "NVIDIA-A10G", "g6": "NVIDIA-L4", "g6e": "NVIDIA-L40S",
    "p4d": "NVIDIA-A100-SXM4-40GB", "p4de": "NVIDIA-A100-SXM4-80GB", "p5": "NVIDIA-H100-80GB-HBM3",
    "p5e": "NVIDIA-H200", "p5en": "NVIDIA-H200", "p6-b200": "NVIDIA-B200",
}
GPU_LABELS = {"nvidia.com/gpu.present": "true"}
POOL_LABEL = "platform.cnai.dev/pool"
STORAGE_CLASS = "gp3"
ADMIN_POLICY = "arn:aws:iam::aws:policy/AmazonEKSClusterAdminPolicy"
DB_CLASSES = {"small": "db.t4g.medium", "large": "db.m7g.large"}  # by profile size


def bucket_prefix(spec: PlatformSpec) -> str:
    return spec.eks.bucketPrefix or f"cnai-{spec.stack}"


def gpus_per_node(pool: EksGpuPool) -> int:
    return GPU_INSTANCES[pool.instanceTypes[0]]


def pool_models(pool: EksGpuPool) -> tuple[str, ...]:
    """The GPU models a pool's instance types carry."""
    return tuple(sorted({GPU_FAMILIES[t.split(".")[0]] for t in pool.instanceTypes}))


def validate(spec: PlatformSpec, requests: ClusterRequests) -> None:
    e = spec.eks
    if not e.region:
        raise ConfigError("cnai:eks.region: is required for environment eks (for example us-west-2)")
    if len(e.availabilityZones) < 2 and not e.network.vpcId:
        raise ConfigError("cnai:eks.availabilityZones: list at least two zones of the region "
                          f"(for example {e.region}a, {e.region}b)")
    for i, az in enumerate(e.availabilityZones):
        if not (az.startswith(e.region) and len(az) == len(e.region) + 1 and az[-1].isalpha()):
            raise ConfigError(f"cnai:eks.availabilityZones[{i}]: {az!r} is not a zone of {e.region}")
    if e.network.vpcId and not (len(e.network.privateSubnetIds) >= 2 and e.network.publicSubnetIds):
        raise ConfigError("cnai:eks.network.privateSubnetIds: an adopted VPC needs at least two private subnet ids "
                          "(in different zones) and the public subnet ids")
    if not (e.endpoint.public or e.endpoint.private):
        raise ConfigError("cnai:eks.endpoint.private: at least one of public and private endpoint access must be on")
    names = [p.name for p in e.gpuPools]
    for i, pool in enumerate(e.gpuPools):
        for t in pool.instanceTypes:
            if t not in GPU_INSTANCES:
                known = ", ".join(sorted({k.split(".")[0] for k in GPU_INSTANCES}))
                raise ConfigError(f"cnai:eks.gpuPools[{i}].instanceTypes: {t!r} is not a known NVIDIA GPU instance "
                                  f"type (families: {known})")
        counts = {GPU_INSTANCES[t] for t in pool.instanceTypes}
        if len(counts) > 1:
            raise ConfigError(f"cnai:eks.gpuPools[{i}].instanceTypes: types in one pool must have the same GPU "
                              f"count (got {sorted(counts)}); use one pool per size")
        if names.count(pool.name) > 1:
            raise ConfigError(f"cnai:eks.gpuPools[{i}].name: pool {pool.name!r} is declared twice")
    if spec.gpu.enabled and not e.gpuPools:
        raise ConfigError("cnai:eks.gpuPools: cnai:gpu.enabled is true but no GPU pool is configured")
    per_node = {gpus_per_node(p) for p in e.gpuPools}
    if spec.gpu.enabled and len(per_node) > 1:
        raise ConfigError("cnai:eks.gpuPools: all GPU pools must have the same GPUs per node "
                          f"(got {sorted(per_node)}); quotas and MIG/time-slicing settings are per node")


def capabilities(spec: PlatformSpec, requests: ClusterRequests) -> Capabilities:
    e, gpu = spec.eks, spec.gpu
    pools = e.gpuPools if gpu.enabled else ()
    return Capabilities(
        nodes=e.systemPool.min,
        gpu_nodes=sum(p.max for p in pools),
        gpus_per_node=gpus_per_node(pools[0]) if pools else 0,
        gpu_models=tuple(sorted({m for p in pools for m in pool_models(p)})),
        mig_config_labelled=True,  # the GPU node groups carry nvidia.com/mig.config (resources.py)
        # AL2023 NVIDIA AMIs ship the driver and the container toolkit.
        gpu_drivers_preinstalled=True,
        gpu_toolkit_preinstalled=True,
        gpu_node_selector=dict(GPU_LABELS),
        gpu_tolerations=(GPU_TAINT,),
        gpu_nodes_labelled=True,
        default_storage_class=STORAGE_CLASS,
        load_balancer=True,
        mig_supported=True,
        managed_postgres="rds",
        gpu_toleration_injected=True,  # EKS runs the ExtendedResourceToleration admission plugin
        # Pod Identity: associations name the ServiceAccounts, so the accounts need no annotations.
        cloud_storage=CloudStorage(kind="s3", region=e.region,
                                   buckets={b: f"{bucket_prefix(spec)}-{b}" for b in requests.buckets},
                                   identities={i.layer: {} for i in requests.identities}),
        node_autoscaling="cluster-autoscaler",
        cluster_name=e.name,
        region=e.region,
    )


def gpu_pool_labels(pool: EksGpuPool, caps: Capabilities) -> dict[str, str]:
    """Labels of a GPU node group's nodes; with MIG, the config the MIG manager applies at boot."""
    mig = {MIG_CONFIG_LABEL: caps.mig_profile} if caps.gpu_sharing == "mig" else {}
    return {**GPU_LABELS, POOL_LABEL: pool.name, **mig, **pool.labels}


def node_template_tags(cluster: str, pool: EksGpuPool, caps: Capabilities) -> dict[str, str]:
    """Auto Scaling group tags Cluster Autoscaler reads to build a node while the group is empty: its labels
    (with the product label discovery will add, so pods selecting a model or MIG slice scale the group from
    zero), taint and GPU resources as the device plugin will advertise them."""
    prefix = "k8s.io/cluster-autoscaler/node-template"
    models = pool_models(pool)
    node = replace(caps, gpu_nodes=1, gpus_per_node=gpus_per_node(pool), gpu_models=models)
    labels = {**gpu_pool_labels(pool, caps), **node.gpu_product_selector()}
    tags = {f"{prefix}/label/{k}": v for k, v in labels.items()}
    tags[f"{prefix}/taint/{GPU_RESOURCE}"] = f"present:{GPU_TAINT['effect']}"
    for resource, count in node.gpu_resources().items():
        tags[f"{prefix}/resources/{resource}"] = str(count)
    tags["k8s.io/cluster-autoscaler/enabled"] = "true"
    tags[f"k8s.io/cluster-autoscaler/{cluster}"] = "owned"
    return tags
