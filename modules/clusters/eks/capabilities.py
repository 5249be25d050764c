"""What an EKS stack's config means for the layers: its checks, its GPU instance types and its capabilities."""

from __future__ import annotations

from modules.clusters.contract import GPU_TAINT, Capabilities, CloudStorage, ClusterRequests
from modules.shared.cluster_config import EksGpuPool
from modules.shared.config import ConfigError, PlatformSpec

GPU_PARTITIONING = True  # the GPU operator's MIG manager may partition A100/H100-class instances

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
GPU_LABELS = {"nvidia.com/gpu.present": "true"}
POOL_LABEL = "platform.cnai.dev/pool"
STORAGE_CLASS = "gp3"
ADMIN_POLICY = "arn:aws:iam::aws:policy/AmazonEKSClusterAdminPolicy"
DB_CLASSES = {"small": "db.t4g.medium", "large": "db.m7g.large"}  # by profile size


def bucket_prefix(spec: PlatformSpec) -> str:
    return spec.eks.bucketPrefix or f"cnai-{spec.stack}"


def gpus_per_node(pool: EksGpuPool) -> int:
    return GPU_INSTANCES[pool.instanceTypes[0]]


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
