"""Rules over the cloud resources of the eks and gke stacks: buckets, nodes, encryption, databases, protection."""

from __future__ import annotations

from framework import GPU, Res, of, rule


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
