"""The platform spec: one validated model of the stack's `cnai:` config.

Everything the program does is decided by a `PlatformSpec`. It is read from the Pulumi config in
exactly one place (`load_spec`), validated with pydantic (unknown keys, types, ranges) and then by
cross-field rules (layer requirements, GPU settings, teams). Any problem raises `ConfigError` with one
line naming the config key and what is allowed, before a single resource is registered.
"""

import json
import re
from decimal import Decimal
from typing import Annotated, Any, Literal


from pydantic import (BaseModel, BeforeValidator, ConfigDict, Field, SecretStr, ValidationError, create_model,
                      field_validator, model_validator)

from modules.versions import VERSIONS

NAMESPACE = "cnai"

# Kubernetes resource.Quantity (decimal/binary SI suffixes or an exponent), as the API server parses it.
_QUANTITY = re.compile(r"^([+-]?[0-9.]+)([eE][+-]?[0-9]+|[mkMGTPE]|[KMGTPE]i)?$")
_SUFFIX = {
    "": 1, "m": Decimal("0.001"), "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15,
    "E": 10**18, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60,
}
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$"
_NAMESPACE_OR_EMPTY = r"^([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)?$"
_PATTERN_HELP = {
    _DNS_LABEL.pattern: "must be a DNS label: lowercase letters, digits and '-', at most 63 characters",
    _DNS_SUBDOMAIN: "must be a DNS subdomain: lowercase letters, digits, '-' and '.'",
    _NAMESPACE_OR_EMPTY: "must be empty or a namespace name (lowercase letters, digits and '-')",
    r"^[a-z0-9.-]+$": "must be a MIG profile name such as all-1g.10gb",
    r"^[A-Za-z0-9._-]*$": "must be a GPU product label value such as NVIDIA-A100-SXM4-40GB",
    r"^([a-z]+(-[a-z]+)+-?[0-9])?$": "must be a cloud region such as us-west-2 or europe-west4",
    r"^([a-z][-a-z0-9]{4,28}[a-z0-9])?$": "must be a Google Cloud project id",
    r"^arn:aws[a-z-]*:iam::[0-9]{12}:(role|user)/.+$": "must be an IAM role or user ARN",
    r"^([0-9]{1,3}\.){3}[0-9]{1,3}/[0-9]{1,2}$": "must be an IPv4 CIDR such as 10.0.0.0/16",
    r"^([a-z0-9]([-a-z0-9]{0,40}[a-z0-9])?)?$": "must be empty or a bucket name prefix (lowercase letters, digits, '-')",
}
_CIDR = r"^([0-9]{1,3}\.){3}[0-9]{1,3}/[0-9]{1,2}$"
_BUCKET_PREFIX = r"^([a-z0-9]([-a-z0-9]{0,40}[a-z0-9])?)?$"
Cidr = Annotated[str, Field(pattern=_CIDR)]
# An image reference: name[:tag][@sha256:digest]
IMAGE_REF = r"^[^\s:@]+(:[\w][\w.-]{0,127})?(@sha256:[a-f0-9]{64})?$"
OPTIONAL_IMAGE_REF = f"^({IMAGE_REF[1:-1]})?$"
_PATTERN_HELP[IMAGE_REF] = "must be an image reference such as registry/name:tag"
_PATTERN_HELP[OPTIONAL_IMAGE_REF] = "must be empty or an image reference such as registry/name:tag"
ImageRef = Annotated[str, Field(pattern=IMAGE_REF)]


class ConfigError(Exception):
    """A stack config problem, reported as one line naming the key and what is allowed."""


def quantity(value: str) -> Decimal:
    """Parse a Kubernetes quantity ("500m", "8Gi", "2") to a Decimal in base units."""
    m = _QUANTITY.match(str(value))
    if not m:
        raise ValueError(f"not a Kubernetes quantity: {value!r}")
    number, suffix = Decimal(m.group(1)), m.group(2) or ""
    if suffix[:1] in ("e", "E"):
        return number * Decimal(10) ** int(suffix[1:])
    return number * Decimal(_SUFFIX[suffix])


def _check_quantity(v: str) -> str:
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        v = str(v)
    if not isinstance(v, str) or not _QUANTITY.match(v) or quantity(v) < 0:
        raise ValueError("must be a Kubernetes quantity such as '500m', '2' or '8Gi'")
    return v


Quantity = Annotated[str, BeforeValidator(_check_quantity)]
DnsLabel = Annotated[str, Field(pattern=_DNS_LABEL.pattern)]


class Strict(BaseModel):
    """Base for config models: unknown keys are typos, and values are not coerced."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, populate_by_name=True)


# ---------------------------------------------------------------------------------------------
# GPU settings


class GpuSharing(Strict):
    mode: Literal["none", "time-slicing", "mig"] = "none"
    replicas: int = Field(4, ge=2, le=64, description="time-slicing: pods sharing one GPU")
    migStrategy: Literal["single", "mixed"] = "single"
    migProfile: str = Field("all-1g.10gb", pattern=r"^[a-z0-9.-]+$",
                            description="mig: profile applied through the nvidia.com/mig.config node label")


class Gpu(Strict):
    enabled: bool = False
    count: int = Field(1, ge=1, le=8, description="kind: GPUs passed through to the GPU worker")
    model: str = Field("", pattern=r"^[A-Za-z0-9._-]*$",
                       description="GPU product label (nvidia.com/gpu.product) the GPU flavor selects; empty: any")
    sharing: GpuSharing = GpuSharing()


# ---------------------------------------------------------------------------------------------
# Teams


class TeamQuota(Strict):
    cpu: Quantity = "4"
    memory: Quantity = "16Gi"
    gpu: int = Field(0, ge=0, le=1024)
    pods: int = Field(50, ge=1, le=10000)
    storage: Quantity = "100Gi"


_EMAIL = r"^[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}$"
_OPTIONAL_EMAIL = f"^({_EMAIL[1:-1]})?$"
_PATTERN_HELP[_EMAIL] = "must be an email address such as alice@example.com"
_PATTERN_HELP[_OPTIONAL_EMAIL] = "must be empty or an email address such as alice@example.com"
# 200: a contributor binding is named user-<email>-clusterrole-edit, at most 253 characters.
Email = Annotated[str, Field(pattern=_EMAIL, max_length=200)]


class Team(Strict):
    name: str = Field(pattern=_DNS_LABEL.pattern, max_length=50)
    group: str = Field("", description="identity-provider group bound to the team namespace (default: team name)")
    owner: str = Field("", pattern=_OPTIONAL_EMAIL, max_length=200,
                       description="email of the team's Kubeflow profile owner (kubeflow-platform layer)")
    members: tuple[Email, ...] = Field((), strict=False, max_length=500,
                                       description="emails of the profile's contributors (kubeflow-platform layer)")
    quota: TeamQuota = TeamQuota()
    allowInternetEgress: bool = False

    @property
    def namespace(self) -> str:
        return f"team-{self.name}"

    @property
    def rbac_group(self) -> str:
        return self.group or self.name


# ---------------------------------------------------------------------------------------------
# Clusters


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
        "/opt/cni/bin", description="where nodes keep CNI plugins (GKE: /home/kubernetes/bin); Istio CNI installs there")
    kubeconfig: str = Field("~/.kube/config", min_length=1, description="path to the kubeconfig file")
    context: str = ""
    storageClass: str = Field("standard", pattern=_DNS_SUBDOMAIN)
    nodes: int = Field(3, ge=1, le=10000, description="node count, used only for footprint figures")
    gpuNodes: int = Field(0, ge=0, le=10000)
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
                               description="RDS instance class (default: db.t4g.medium laptop, db.m7g.large production)")
    engineVersion: str = Field("17", pattern=r"^1[4-8](\.[0-9]+)?$", description="PostgreSQL major (or major.minor)")
    storageGb: int = Field(50, ge=20, le=65536, description="allocated gp3 storage")
    maxStorageGb: int = Field(200, ge=0, le=65536, description="storage autoscaling ceiling (0: off)")
    multiAz: bool | None = Field(None, description="standby in a second zone (default: on in production)")
    backupRetentionDays: int = Field(7, ge=1, le=35, description="automated backups and point-in-time recovery")


class Endpoint(Strict):
    public: bool = True
    private: bool = True
    publicCidrs: tuple[Cidr, ...] = Field(("0.0.0.0/0",), strict=False, description="who may reach the public API endpoint")


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
    bucketPrefix: str = Field("", pattern=_BUCKET_PREFIX, description="bucket name prefix (default cnai-<stack>)")
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
    highAvailability: bool | None = Field(None, description="regional instance with a standby (default: on in production)")
    backupRetentionDays: int = Field(7, ge=1, le=365, description="daily backups kept, with point-in-time recovery")
    peeringCidrPrefix: int = Field(20, ge=16, le=24, description="size of the range reserved for Google services peering")


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
    bucketPrefix: str = Field("", pattern=_BUCKET_PREFIX, description="bucket name prefix (default cnai-<stack>)")
    bucketLocation: str = Field("", description="GCS location (default: the region)")
    database: GkeDatabase = GkeDatabase()


# ---------------------------------------------------------------------------------------------
# Layer options: each layer module declares a subclass; `layers` is assembled from the registry.


class LayerOptions(Strict):
    """Options every layer has (deployKF style): enabled, namespace, values overrides."""

    enabled: bool = True
    namespace: str = Field("", pattern=_NAMESPACE_OR_EMPTY,
                           description="override the layer's namespace")
    values: dict[str, Any] = Field(default_factory=dict, description="chart values merged over the built ones")


class PlatformSpec(Strict):
    """The whole validated stack config (namespace `cnai:`)."""

    stack: str = "dev"
    environment: Literal["kind", "existing", "eks", "gke"]
    kubernetesVersion: str = VERSIONS.kubernetes_default
    profile: Literal["laptop", "production"] = "laptop"
    gpu: Gpu = Gpu()
    teams: tuple[Team, ...] = Field((), strict=False)
    layers: Any = None  # replaced per registry by `spec_model()`
    kind: KindCluster = KindCluster()
    existing: ExistingCluster = ExistingCluster()
    eks: EksCluster = EksCluster()
    gke: GkeCluster = GkeCluster()
    # Secret key of an external S3 endpoint (cnai:layers.object-store.external); `pulumi config set --secret`.
    objectStoreSecretAccessKey: SecretStr | None = None
    # Client secret of the OpenID Connect app JupyterHub logs in with (cnai:layers.jupyterhub.auth: oidc).
    oidcClientSecret: SecretStr | None = None

    @field_validator("kubernetesVersion")
    @classmethod
    def _k8s(cls, v: str) -> str:
        if v not in VERSIONS.kubernetes_supported:
            raise ValueError(f"must be one of {', '.join(VERSIONS.kubernetes_supported)}")
        return v

    def layer(self, name: str) -> LayerOptions:
        return getattr(self.layers, _field(name))

    def enabled_layers(self) -> list[str]:
        return [n for n in type(self.layers).layer_names if self.layer(n).enabled]


def _field(layer_name: str) -> str:
    return layer_name.replace("-", "_")


def spec_model(layers: dict[str, type[LayerOptions]]) -> type[PlatformSpec]:
    """Build the PlatformSpec model whose `layers` has one typed field per registered layer."""
    fields: dict[str, Any] = {}
    for name, options in layers.items():
        fields[_field(name)] = (options, Field(default_factory=options, alias=name))
    layers_model = create_model("Layers", __base__=Strict, **fields)
    layers_model.layer_names = tuple(layers)
    return create_model(
        "PlatformSpec",
        __base__=PlatformSpec,
        layers=(layers_model, Field(default_factory=layers_model)),
    )


# ---------------------------------------------------------------------------------------------
# Reading and error reporting

_TOP_LEVEL = [k for k in PlatformSpec.model_fields if k != "stack"]


_SCALARS = ("environment", "kubernetesVersion", "profile", "objectStoreSecretAccessKey", "oidcClientSecret")
# Keys that carry credentials: accepted only when stored encrypted (`pulumi config set --secret`).
SECRET_KEYS = ("objectStoreSecretAccessKey", "oidcClientSecret")


def read_config(raw: dict[str, Any], secret_keys: Any = None) -> dict[str, Any]:
    """Pick the `cnai:` keys out of a flat Pulumi config map, decoding JSON objects as get_object does.
    `secret_keys`: the config keys Pulumi holds encrypted (None: not known, not checked)."""
    data: dict[str, Any] = {}
    for key, value in raw.items():
        ns, _, name = key.partition(":")
        if ns != NAMESPACE:
            continue
        if name in SECRET_KEYS and secret_keys is not None and key not in secret_keys:
            raise ConfigError(f"{key}: is a credential; store it encrypted with "
                              f"`pulumi config set --secret {name} ...`, not as plain text")
        if name not in _TOP_LEVEL:
            close = ", ".join(_TOP_LEVEL)
            raise ConfigError(f"{key}: unknown config key; allowed keys under cnai: are {close}")
        if isinstance(value, str) and name not in _SCALARS:
            try:
                value = json.loads(value)
            except json.JSONDecodeError as exc:
                raise ConfigError(f"{key}: must be a YAML/JSON object or list ({exc.msg})") from None
        data[name] = value
    return data


def parse_spec(data: dict[str, Any], model: type[PlatformSpec], stack: str) -> PlatformSpec:
    try:
        return model.model_validate({**data, "stack": stack})
    except ValidationError as exc:
        raise ConfigError(_one_line(exc, model)) from None


def _key(loc: tuple) -> str:
    out = NAMESPACE + ":"
    for i, part in enumerate(loc):
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("" if i == 0 else ".") + str(part)
    return out


def _allowed_keys(model: type[BaseModel], loc: tuple) -> list[str]:
    cur: Any = model
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        field = next((f for n, f in cur.model_fields.items() if part in (n, f.alias)), None)
        if field is None:
            return []
        ann = field.annotation
        for candidate in getattr(ann, "__args__", ()) + (ann,):
            if isinstance(candidate, type) and issubclass(candidate, BaseModel):
                cur = candidate
                break
        else:
            return []
    return [f.alias or n for n, f in cur.model_fields.items() if n != "stack"]


def _one_line(exc: ValidationError, model: type[BaseModel]) -> str:
    err = exc.errors(include_url=False)[0]
    loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
    key = _key(loc)
    kind = err["type"]
    if kind == "extra_forbidden":
        allowed = ", ".join(_allowed_keys(model, loc))
        msg = f"unknown key; allowed keys here are {allowed}"
    elif kind == "missing":
        msg = "is required"
    elif kind == "string_pattern_mismatch":
        pattern = err.get("ctx", {}).get("pattern", "")
        msg = _PATTERN_HELP.get(pattern, f"must match {pattern}") + f" (got {err['input']!r})"
    else:
        msg = err["msg"].replace("Input should be", "must be").replace("Value error, ", "")
        msg = msg.replace("a valid tuple", "a list").replace("a valid dictionary", "a mapping")
        if "input" in err and not isinstance(err["input"], (dict, list)):
            msg += f" (got {err['input']!r})"
    more = len(exc.errors()) - 1
    return f"{key}: {msg}" + (f" [and {more} more problem{'s' * (more > 1)}]" if more else "")
