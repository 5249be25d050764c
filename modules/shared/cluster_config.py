"""Config models of the cluster modules: `cnai:kind`, `cnai:existing`, `cnai:eks`, `cnai:gke`."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from modules.shared.config_types import BUCKET_PREFIX, DNS_SUBDOMAIN, Cidr, DnsLabel, DnsSubdomain, ImageRef, Strict


class KindCluster(Strict):
    clusterName: DnsLabel = "cnai"
    workers: int | None = Field(None, ge=1, le=8, description="CPU workers (default: the profile's)")
    kubeconfigPath: str = Field("", description="where kind writes the kubeconfig (default: kind's)")
    simulateGpus: bool = Field(False, description="CI without GPUs: the GPU worker advertises cnai:gpu.count fake "
                               "nvidia.com/gpu (no device) so GPU scheduling, quotas and profiles can be tested")
    loadImages: list[ImageRef] = Field([], max_length=20, description="images built on this host (docker) to copy "
                                       "into the nodes with `kind load docker-image` before any layer installs")


class ExistingCluster(Strict):
    cniBinDir: Literal["/opt/cni/bin", "/home/kubernetes/bin"] = Field(
        "/opt/cni/bin",
        description="where nodes keep CNI plugins (GKE: /home/kubernetes/bin); Istio CNI installs there")
    kubeconfig: str = Field("~/.kube/config", min_length=1, description="path to the kubeconfig file")
    context: str = ""
    storageClass: str = Field("standard", pattern=DNS_SUBDOMAIN)
    nodes: int = Field(3, ge=1, le=10000, description="node count, used only for footprint figures")
    gpuNodes: int = Field(0, ge=0, le=10000)
    gpuNodeNames: tuple[DnsSubdomain, ...] = Field(
        (), strict=False, max_length=10000,
        description="names of the GPU nodes; with MIG the platform labels them nvidia.com/mig.config")
    gpuDriversPreinstalled: bool = False
    gpuToolkitPreinstalled: bool = False
    gpuNodeSelector: dict[str, str] = {"nvidia.com/gpu.present": "true"}
    gpuTaint: bool = Field(True, description="GPU nodes carry the nvidia.com/gpu NoSchedule taint")
    gpuTolerationInjected: bool = Field(False, description="the API server runs the ExtendedResourceToleration "
                                        "admission plugin (GPU pods get the taint's toleration)")
    loadBalancer: bool = False


class Pool(Strict):
    """Node pool sizes shared by the cloud clusters (the autoscaler moves between min and max)."""

    min: int = Field(0, ge=0, le=1000)
    max: int = Field(2, ge=1, le=1000)
    diskSize: int = Field(200, ge=20, le=16384, description="root disk GiB (images of GPU frameworks are large)")
    spot: bool = Field(False, description="spot/preemptible capacity (cheaper, can be reclaimed)")
    labels: dict[str, str] = {}

    @model_validator(mode="after")
    def _min_max(self):
        if self.min > self.max:
            raise ValueError(f"min {self.min} must not exceed max {self.max}")
        return self


class EksSystemPool(Pool):
    instanceTypes: tuple[str, ...] = Field(("m6i.xlarge",), strict=False, min_length=1)
    min: int = Field(2, ge=1, le=1000)
    max: int = Field(4, ge=1, le=1000)
    diskSize: int = Field(50, ge=20, le=16384)


class EksGpuPool(Pool):
    name: DnsLabel = "gpu"
    instanceTypes: tuple[str, ...] = Field(("g6.xlarge",), strict=False, min_length=1,
                                           description="NVIDIA GPU instance types with the same GPU count")


class EksNetwork(Strict):
    cidr: Cidr = "10.0.0.0/16"
    natGateways: Literal["single", "perAz"] = Field("single", description="perAz survives an AZ outage")
    vpcId: str = Field("", description="adopt this VPC instead of creating one (with the subnet ids)")
    privateSubnetIds: tuple[str, ...] = Field((), strict=False)
    publicSubnetIds: tuple[str, ...] = Field((), strict=False)


class EksDatabase(Strict):
    """RDS for PostgreSQL, used when `cnai:layers.postgres.managed` is true."""

    instanceClass: str = Field("", pattern=r"^(db\.[a-z0-9]+\.[a-z0-9]+)?$",
                               description="RDS instance class "
                                           "(default: db.t4g.medium laptop, db.m7g.large production)")
    engineVersion: str = Field("17", pattern=r"^1[4-8](\.[0-9]+)?$", description="PostgreSQL major (or major.minor)")
    storageGb: int = Field(50, ge=20, le=65536, description="allocated gp3 storage")
    maxStorageGb: int = Field(200, ge=0, le=65536, description="storage autoscaling ceiling (0: off)")
    multiAz: bool | None = Field(None, description="standby in a second zone (default: on in production)")
    backupRetentionDays: int = Field(7, ge=1, le=35, description="automated backups and point-in-time recovery")


class Endpoint(Strict):
    public: bool = True
    private: bool = True
    publicCidrs: tuple[Cidr, ...] = Field(("0.0.0.0/0",), strict=False,
                                          description="who may reach the public API endpoint")


class EksCluster(Strict):
    name: DnsLabel = "cnai"
    region: str = Field("", pattern=r"^([a-z]+(-[a-z]+)+-?[0-9])?$")
    availabilityZones: tuple[str, ...] = Field((), strict=False, description="at least two")
    network: EksNetwork = EksNetwork()
    endpoint: Endpoint = Endpoint()
    adminPrincipals: tuple[Annotated[str, Field(pattern=r"^arn:aws[a-z-]*:iam::[0-9]{12}:(role|user)/.+$")], ...] = \
        Field((), strict=False, description="IAM principals given cluster-admin access entries")
    logTypes: tuple[Literal["api", "audit", "authenticator", "controllerManager", "scheduler"], ...] = \
        Field(("api", "audit", "authenticator"), strict=False)
    systemPool: EksSystemPool = EksSystemPool()
    gpuPools: tuple[EksGpuPool, ...] = Field((EksGpuPool(),), strict=False)
    bucketPrefix: str = Field("", pattern=BUCKET_PREFIX, description="bucket name prefix (default cnai-<stack>)")
    database: EksDatabase = EksDatabase()


class GkeSystemPool(Pool):
    machineType: str = "e2-standard-4"
    min: int = Field(1, ge=1, le=1000)
    max: int = Field(3, ge=1, le=1000)
    diskSize: int = Field(100, ge=20, le=16384)


class GkeGpuPool(Pool):
    name: DnsLabel = "gpu"
    machineType: str = "g2-standard-8"
    acceleratorType: str = "nvidia-l4"
    acceleratorCount: int = Field(1, ge=1, le=16)


class GkeNetwork(Strict):
    subnetCidr: Cidr = "10.10.0.0/20"
    podsCidr: Cidr = "10.20.0.0/14"
    servicesCidr: Cidr = "10.30.0.0/20"
    network: str = Field("", description="adopt this VPC network (with subnetwork and range names)")
    subnetwork: str = ""
    podsRangeName: str = "pods"
    servicesRangeName: str = "services"


class GkeDatabase(Strict):
    """Cloud SQL for PostgreSQL (private IP), used when `cnai:layers.postgres.managed` is true."""

    tier: str = Field("", pattern=r"^(db-[a-z0-9-]+)?$",
                      description="machine tier (default: db-custom-1-3840 laptop, db-custom-2-7680 production)")
    version: str = Field("POSTGRES_17", pattern=r"^POSTGRES_1[4-8]$", description="Cloud SQL database version")
    diskSizeGb: int = Field(50, ge=10, le=65536, description="SSD size; grows automatically")
    highAvailability: bool | None = Field(None,
                                          description="regional instance with a standby (default: on in production)")
    backupRetentionDays: int = Field(7, ge=1, le=365, description="daily backups kept, with point-in-time recovery")
    peeringCidrPrefix: int = Field(20, ge=16, le=24,
                                   description="size of the range reserved for Google services peering")


class AuthorizedNetwork(Strict):
    cidr: Cidr
    name: str = ""


class GkeCluster(Strict):
    name: DnsLabel = "cnai"
    project: str = Field("", pattern=r"^([a-z][-a-z0-9]{4,28}[a-z0-9])?$")
    region: str = Field("", pattern=r"^([a-z]+(-[a-z]+)+-?[0-9])?$")
    zones: tuple[str, ...] = Field((), strict=False, description="node zones (default: the region's)")
    releaseChannel: Literal["RAPID", "REGULAR", "STABLE"] = "REGULAR"
    network: GkeNetwork = GkeNetwork()
    masterAuthorizedNetworks: tuple[AuthorizedNetwork, ...] = Field((), strict=False,
                                                                    description="empty: the public endpoint is open")
    privateEndpoint: bool = Field(False, description="control plane reachable only from the VPC")
    gpuDriver: Literal["gke", "operator"] = Field("gke", description="who installs the NVIDIA driver")
    systemPool: GkeSystemPool = GkeSystemPool()
    gpuPools: tuple[GkeGpuPool, ...] = Field((GkeGpuPool(),), strict=False)
    bucketPrefix: str = Field("", pattern=BUCKET_PREFIX, description="bucket name prefix (default cnai-<stack>)")
    bucketLocation: str = Field("", description="GCS location (default: the region)")
    database: GkeDatabase = GkeDatabase()


