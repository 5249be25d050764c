"""The platform's guardrails as plain functions over a stack's resources (no Pulumi engine needed).

Each rule takes every resource of a stack (`Res`: type, name, urn, props, protect, parent) and
returns violations (`(urn, message)`). `policies/__main__.py` wires them into a Pulumi CrossGuard
policy pack (`pulumi preview --policy-pack policies`); the offline tests run them over the mock graph
of every stack, and over a broken fixture per rule. Props use the engine's camelCase names.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

RELEASE = "kubernetes:helm.sh/v3:Release"
GPU = "nvidia.com/gpu"
ENFORCE = "pod-security.kubernetes.io/enforce"
TEAM_LABEL = "platform.cnai.dev/team"
PLATFORM_LABEL = "platform.cnai.dev/part-of"
# Layers whose namespaces may run below `restricted` (each layer documents why: docs/layers/*.md).
BELOW_RESTRICTED = {"gpu-operator": "privileged", "observability": "privileged", "feast": "baseline",
                    "jupyterhub": "baseline", "kserve": "baseline",
                    "katib": "baseline", "pipelines": "baseline"}
_EXACT_VERSION = re.compile(r"^v?\d+\.\d+\.\d+([-+][0-9A-Za-z.-]+)?$")
_PINNED_REF = re.compile(r"(/v?\d+\.\d+\.\d+/|[?&]ref=v?\d+\.\d+\.\d+$)")


@dataclass
class Res:
    """One resource as a policy sees it."""

    type: str
    name: str
    urn: str
    props: dict[str, Any]
    protect: bool = False
    parent: str = ""
    depends_on: list[str] = field(default_factory=list)

    @property
    def kind(self) -> str:
        return self.props.get("kind", "")

    @property
    def meta(self) -> dict[str, Any]:
        return self.props.get("metadata") or {}


Violation = tuple[str, str]


@dataclass(frozen=True)
class Rule:
    name: str
    description: str
    check: Callable[[list[Res]], list[Violation]]


RULES: list[Rule] = []


def rule(name: str, description: str):
    def register(fn: Callable[[list[Res]], Iterable[Violation]]):
        RULES.append(Rule(name, description, lambda rs: list(fn(rs))))
        return fn
    return register


def of(resources: list[Res], *types: str) -> list[Res]:
    return [r for r in resources if r.type in types]


def objects(resources: list[Res], kind: str | None = None) -> list[Res]:
    """Kubernetes objects the program creates directly (not releases or components)."""
    return [r for r in resources if r.type.startswith("kubernetes:") and "apiVersion" in r.props
            and r.type != RELEASE and (kind is None or r.kind == kind)]


def pod_specs(obj: Res) -> list[dict[str, Any]]:
    """Pod specs inside an object (Pod, Job, Deployment-like, InferenceService predictor)."""
    spec = obj.props.get("spec") or {}
    found = []
    if obj.kind == "Pod":
        found.append(spec)
    template = (spec.get("template") or {}).get("spec")
    if template:
        found.append(template)
    predictor = spec.get("predictor")
    if predictor:
        model = predictor.get("model")
        found.append({"containers": [model] if model else predictor.get("containers", []),
                      "tolerations": predictor.get("tolerations", [])})
    return found


def containers(pod: dict[str, Any]) -> list[dict[str, Any]]:
    return list(pod.get("containers") or []) + list(pod.get("initContainers") or [])


# -- supply chain ------------------------------------------------------------------------------------

@rule("charts-pinned", "Every Helm release names an exact chart version.")
def charts_pinned(rs):
    for r in of(rs, RELEASE):
        version = str(r.props.get("version") or "")
        if not _EXACT_VERSION.match(version):
            yield r.urn, f"release {r.name}: chart version {version!r} is not an exact version"


@rule("manifests-pinned", "Every install manifest or kustomization URL names a release tag.")
def manifests_pinned(rs):
    for r in of(rs, "kubernetes:yaml/v2:ConfigFile", "kubernetes:kustomize/v2:Directory"):
        url = str(r.props.get("file") or r.props.get("directory") or "")
        if url.startswith(("http://", "https://")) and not _PINNED_REF.search(url):
            yield r.urn, f"{r.name}: {url} is not pinned to a release tag"


@rule("images-pinned", "Images in objects the program creates carry a tag or digest, never `latest`.")
def images_pinned(rs):
    for obj in objects(rs):
        for pod in pod_specs(obj):
            for c in containers(pod):
                image = c.get("image")
                if image is None:
                    continue
                name = image.rsplit("/", 1)[-1]
                if "@sha256:" in image:
                    continue
                if ":" not in name or name.endswith(":latest"):
                    yield obj.urn, f"{obj.kind} {obj.meta.get('name')}: image {image!r} is not pinned"


# -- workloads -----------------------------------------------------------------------------------------

@rule("gpu-requests-as-limits", "Containers request GPUs through limits (extended resources cannot overcommit).")
def gpu_limits(rs):
    for obj in objects(rs):
        for pod in pod_specs(obj):
            for c in containers(pod):
                res = c.get("resources") or {}
                if GPU in (res.get("requests") or {}) and GPU not in (res.get("limits") or {}):
                    yield obj.urn, f"{obj.kind} {obj.meta.get('name')}: {GPU} requested without a limit"


@rule("namespaces-pod-security", "Every namespace enforces Pod Security; below restricted only where documented.")
def namespaces_pod_security(rs):
    for ns in objects(rs, "Namespace"):
        labels = ns.meta.get("labels") or {}
        level = labels.get(ENFORCE)
        name = ns.meta.get("name")
        if level is None:
            yield ns.urn, f"namespace {name} has no {ENFORCE} label"
        elif level == "privileged" and BELOW_RESTRICTED.get(labels.get(PLATFORM_LABEL)) != "privileged":
            yield ns.urn, f"namespace {name} is privileged without a documented reason"
        elif level == "baseline" and TEAM_LABEL not in labels and labels.get(PLATFORM_LABEL) not in BELOW_RESTRICTED:
            yield ns.urn, f"namespace {name} runs at baseline without a documented reason"


@rule("no-load-balancers", "No Service of type LoadBalancer: the platform exposes nothing publicly by default.")
def no_load_balancers(rs):
    for svc in objects(rs, "Service"):
        if (svc.props.get("spec") or {}).get("type") == "LoadBalancer":
            yield svc.urn, f"Service {svc.meta.get('name')} is a LoadBalancer"
    for r in of(rs, RELEASE):
        for path, value in _walk(r.props.get("values") or {}):
            if path.endswith("service.type") and value == "LoadBalancer":
                yield r.urn, f"release {r.name}: {path} is LoadBalancer"


def _walk(value: Any, prefix: str = ""):
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _walk(v, f"{prefix}.{k}" if prefix else k)
    else:
        yield prefix, value


@rule("teams-isolated", "Every team namespace has a quota, a limit range, a default-deny policy and a queue.")
def teams_isolated(rs):
    kueue = any(r.type.startswith("kubernetes:kueue.x-k8s.io/") for r in rs)
    by_ns: dict[str, set[tuple[str, str]]] = {}
    for o in objects(rs):
        by_ns.setdefault(o.meta.get("namespace", ""), set()).add((o.kind, o.meta.get("name")))
    for ns in objects(rs, "Namespace"):
        if TEAM_LABEL not in (ns.meta.get("labels") or {}):
            continue
        have = by_ns.get(ns.meta.get("name"), set())
        kinds = {k for k, _ in have}
        missing = [k for k in ("ResourceQuota", "LimitRange") if k not in kinds]
        if ("NetworkPolicy", "default-deny") not in have:
            missing.append("NetworkPolicy default-deny")
        if kueue and "LocalQueue" not in kinds:
            missing.append("LocalQueue")
        if missing:
            yield ns.urn, f"team namespace {ns.meta.get('name')} lacks {', '.join(missing)}"


@rule("credentials-in-secrets", "Helm values carry no password, secret key or token literals.")
def credentials_in_secrets(rs):
    suspicious = re.compile(r"^(password|adminPassword|secretKey|secretAccessKey|awsSecretAccessKey|"
                            r"client_secret|clientSecret|apiToken|secretToken|cookieSecret|token)$", re.I)
    for r in of(rs, RELEASE):
        for path, value in _walk(r.props.get("values") or {}):
            leaf = path.rsplit(".", 1)[-1]
            if suspicious.match(leaf) and isinstance(value, str) and value:
                yield r.urn, f"release {r.name}: {path} holds a literal credential; use a Secret reference"


# -- cloud -----------------------------------------------------------------------------------------------

def _bucket_subresources(rs: list[Res], type_: str) -> dict[str, Res]:
    """Bucket sub-resources keyed by the name of the bucket they configure (same resource name)."""
    return {r.name: r for r in of(rs, type_)}


@rule("s3-encrypted", "Every S3 bucket has default server-side encryption with KMS.")
def s3_encrypted(rs):
    sse = _bucket_subresources(
        rs, "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration")
    for b in of(rs, "aws:s3/bucket:Bucket"):
        rules = (sse.get(b.name).props.get("rules") if b.name in sse else None) or []
        algos = {(x.get("applyServerSideEncryptionByDefault") or {}).get("sseAlgorithm") for x in rules}
        if not algos & {"aws:kms", "aws:kms:dsse"}:
            yield b.urn, f"bucket {b.props.get('bucket')} has no KMS default encryption"


@rule("s3-versioned", "Every S3 bucket keeps object versions.")
def s3_versioned(rs):
    ver = _bucket_subresources(rs, "aws:s3/bucketVersioning:BucketVersioning")
    for b in of(rs, "aws:s3/bucket:Bucket"):
        status = ((ver[b.name].props.get("versioningConfiguration") or {}).get("status") if b.name in ver else None)
        if status != "Enabled":
            yield b.urn, f"bucket {b.props.get('bucket')} is not versioned"


@rule("s3-private", "Every S3 bucket blocks all public access.")
def s3_private(rs):
    pab = _bucket_subresources(rs, "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock")
    keys = ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets")
    for b in of(rs, "aws:s3/bucket:Bucket"):
        props = pab[b.name].props if b.name in pab else {}
        if not all(props.get(k) for k in keys):
            yield b.urn, f"bucket {b.props.get('bucket')} does not block all public access"


@rule("gcs-private-versioned", "Every GCS bucket has uniform access, public access prevention and versioning.")
def gcs_private(rs):
    for b in of(rs, "gcp:storage/bucket:Bucket"):
        p = b.props
        if not (p.get("uniformBucketLevelAccess") and p.get("publicAccessPrevention") == "enforced"
                and (p.get("versioning") or {}).get("enabled")):
            yield b.urn, f"bucket {p.get('name')} lacks uniform access, enforced public access prevention or versioning"


@rule("imdsv2", "EC2 nodes require IMDSv2 with a hop limit of 1 (pods cannot borrow the node role).")
def imdsv2(rs):
    for lt in of(rs, "aws:ec2/launchTemplate:LaunchTemplate"):
        m = lt.props.get("metadataOptions") or {}
        if m.get("httpTokens") != "required" or int(m.get("httpPutResponseHopLimit") or 2) > 1:
            yield lt.urn, f"launch template {lt.name} does not require IMDSv2 with hop limit 1"


@rule("cluster-secrets-encrypted", "EKS encrypts Kubernetes secrets with a KMS key.")
def cluster_secrets_encrypted(rs):
    for c in of(rs, "aws:eks/cluster:Cluster"):
        enc = c.props.get("encryptionConfig") or {}
        if "secrets" not in (enc.get("resources") or []) or not (enc.get("provider") or {}).get("keyArn"):
            yield c.urn, f"EKS cluster {c.props.get('name')} does not envelope-encrypt secrets"


@rule("private-nodes", "Nodes have no public addresses: private GKE nodes, EKS nodes only in private subnets.")
def private_nodes(rs):
    for c in of(rs, "gcp:container/cluster:Cluster"):
        if not (c.props.get("privateClusterConfig") or {}).get("enablePrivateNodes"):
            yield c.urn, f"GKE cluster {c.props.get('name')} has public nodes"
    public = {s.urn for s in of(rs, "aws:ec2/subnet:Subnet") if s.props.get("mapPublicIpOnLaunch")
              or (s.props.get("tags") or {}).get("kubernetes.io/role/elb")}
    for ng in of(rs, "aws:eks/nodeGroup:NodeGroup"):
        if public & set(ng.depends_on):  # subnet ids are unknown at preview; the dependency names the subnet
            yield ng.urn, f"node group {ng.name} places nodes in public subnets"


@rule("gpu-pools-tainted", "GPU node pools carry the nvidia.com/gpu NoSchedule taint.")
def gpu_pools_tainted(rs):
    taint = {"key": GPU, "effect": "NO_SCHEDULE"}
    for ng in of(rs, "aws:eks/nodeGroup:NodeGroup"):
        if "NVIDIA" in str(ng.props.get("amiType")) and not any(
                {k: t.get(k) for k in taint} == taint for t in ng.props.get("taints") or []):
            yield ng.urn, f"GPU node group {ng.name} is not tainted"
    for np in of(rs, "gcp:container/nodePool:NodePool"):
        cfg = np.props.get("nodeConfig") or {}
        if cfg.get("guestAccelerators") and not any(
                {k: t.get(k) for k in taint} == taint for t in cfg.get("taints") or []):
            yield np.urn, f"GPU node pool {np.name} is not tainted"


@rule("managed-databases-private",
      "RDS / Cloud SQL instances are private, encrypted and backed up, with TLS required on Cloud SQL.")
def managed_databases_private(rs):
    for db in of(rs, "aws:rds/instance:Instance"):
        p = db.props
        if p.get("publiclyAccessible") or not p.get("storageEncrypted") or not p.get("backupRetentionPeriod"):
            yield db.urn, f"RDS instance {p.get('identifier')} is public, unencrypted or without automated backups"
    for db in of(rs, "gcp:sql/databaseInstance:DatabaseInstance"):
        s = db.props.get("settings") or {}
        ip, backup = s.get("ipConfiguration") or {}, s.get("backupConfiguration") or {}
        if ip.get("ipv4Enabled") is not False or ip.get("sslMode") != "ENCRYPTED_ONLY" or not backup.get("enabled"):
            yield db.urn, (f"Cloud SQL instance {db.props.get('name')} has a public IP, accepts plain connections "
                           "or has no backups")


@rule("stateful-protected",
      "Where the cluster is deletion-protected (production), stateful resources are protected too.")
def stateful_protected(rs):
    clusters = of(rs, "aws:eks/cluster:Cluster", "gcp:container/cluster:Cluster")
    if not any(c.props.get("deletionProtection") for c in clusters):
        return
    stateful = ("aws:eks/cluster:Cluster", "gcp:container/cluster:Cluster", "aws:s3/bucket:Bucket",
                "gcp:storage/bucket:Bucket", "aws:kms/key:Key", "kubernetes:postgresql.cnpg.io/v1:Cluster",
                "aws:rds/instance:Instance", "gcp:sql/databaseInstance:DatabaseInstance")
    for r in of(rs, *stateful):
        if not r.protect:
            yield r.urn, f"{r.type} {r.name} is not protected from deletion"


def evaluate(resources: list[Res]) -> dict[str, list[Violation]]:
    """Every rule's violations (empty lists when the stack complies)."""
    return {r.name: r.check(resources) for r in RULES}
