"""EKS and GKE cluster modules on the mock graph: network, encryption, node pools, buckets, identities.

Over 300 lines: the two cloud modules checked side by side (EKS, GKE), resource by resource.
"""

from __future__ import annotations

import json

import pytest

from modules.shared.config import ConfigError
from tests.conftest import evaluate, secret_data, values_of
from tools.harness import ACCOUNT, normalize, run


def one(rec, type_, name):
    return normalize(rec.get(type_, name).inputs, reveal=True)


def all_of(rec, type_):
    return {r.name: normalize(r.inputs, reveal=True) for r in rec.by_type(type_)}


# -- EKS -------------------------------------------------------------------------------------------

def test_eks_network_spans_zones_with_private_nodes():
    rec = evaluate("eks")
    subnets = all_of(rec, "aws:ec2/subnet:Subnet")
    private = {n: s for n, s in subnets.items() if n.startswith("private-")}
    public = {n: s for n, s in subnets.items() if n.startswith("public-")}
    assert len({s["availabilityZone"] for s in private.values()}) == 3
    assert all(s["tags"]["kubernetes.io/role/internal-elb"] == "1" for s in private.values())
    assert all(s["tags"]["kubernetes.io/role/elb"] == "1" and not s["mapPublicIpOnLaunch"] for s in public.values())
    assert len(rec.by_type("aws:ec2/natGateway:NatGateway")) == 3  # natGateways: perAz
    cluster = one(rec, "aws:eks/cluster:Cluster", "cluster")
    private_ids = {f"{n}-id" for n in private}
    assert set(cluster["vpcConfig"]["subnetIds"]) == private_ids
    for ng in all_of(rec, "aws:eks/nodeGroup:NodeGroup").values():
        assert set(ng["subnetIds"]) == private_ids


def test_eks_control_plane_is_encrypted_logged_and_protected():
    rec = evaluate("eks")
    cluster = one(rec, "aws:eks/cluster:Cluster", "cluster")
    assert cluster["version"] == "1.35"
    assert cluster["encryptionConfig"]["resources"] == ["secrets"]
    assert cluster["encryptionConfig"]["provider"]["keyArn"].endswith(":secrets")
    assert set(cluster["enabledClusterLogTypes"]) >= {"api", "audit", "authenticator"}
    assert cluster["accessConfig"]["authenticationMode"] == "API"
    assert cluster["deletionProtection"] is True
    assert one(rec, "aws:kms/key:Key", "secrets")["enableKeyRotation"] is True
    protected = {(r.type, r.name) for r in rec.registrations if r.protect}
    assert {("aws:eks/cluster:Cluster", "cluster"), ("aws:kms/key:Key", "secrets")} <= protected


def test_eks_nodes_require_imdsv2_and_encrypted_disks():
    rec = evaluate("eks")
    templates = all_of(rec, "aws:ec2/launchTemplate:LaunchTemplate")
    assert set(templates) == {"nodes-system", "nodes-gpu-gpu"}
    for lt in templates.values():
        assert lt["metadataOptions"] == {"httpEndpoint": "enabled", "httpTokens": "required",
                                         "httpPutResponseHopLimit": 1}
        assert lt["blockDeviceMappings"][0]["ebs"]["encrypted"] == "true"


def test_eks_gpu_group_scales_from_zero_with_taint_and_autoscaler_template():
    rec = evaluate("eks")
    gpu = one(rec, "aws:eks/nodeGroup:NodeGroup", "gpu-gpu")
    assert gpu["scalingConfig"] == {"minSize": 0, "maxSize": 2, "desiredSize": 0}
    assert gpu["amiType"] == "AL2023_x86_64_NVIDIA" and gpu["capacityType"] == "ON_DEMAND"
    assert gpu["taints"] == [{"key": "nvidia.com/gpu", "value": "present", "effect": "NO_SCHEDULE"}]
    assert gpu["labels"]["nvidia.com/gpu.present"] == "true"
    assert rec.get("aws:eks/nodeGroup:NodeGroup", "gpu-gpu").ignore_changes == ("scalingConfig.desiredSize",)
    tags = {t["tag"]["key"]: t["tag"]["value"] for t in all_of(rec, "aws:autoscaling/tag:Tag").values()}
    prefix = "k8s.io/cluster-autoscaler/node-template"
    assert tags[f"{prefix}/taint/nvidia.com/gpu"] == "present:NoSchedule"
    assert tags[f"{prefix}/resources/nvidia.com/gpu"] == "1"  # g6.xlarge
    assert tags[f"{prefix}/label/nvidia.com/gpu.present"] == "true"
    assert tags["k8s.io/cluster-autoscaler/enabled"] == "true"
    system = one(rec, "aws:eks/nodeGroup:NodeGroup", "system")
    assert system["scalingConfig"]["minSize"] == 3 and not system.get("taints")


def test_eks_spot_is_one_switch():
    rec = run("eks", {"cnai:eks": {"region": "us-west-2", "availabilityZones": ["us-west-2a", "us-west-2b"],
                                   "gpuPools": [{"name": "gpu", "instanceTypes": ["g6.xlarge"], "spot": True}]}})
    assert one(rec, "aws:eks/nodeGroup:NodeGroup", "gpu-gpu")["capacityType"] == "SPOT"


def test_eks_buckets_are_encrypted_versioned_private_and_protected():
    rec = evaluate("eks")
    buckets = all_of(rec, "aws:s3/bucket:Bucket")
    # RDS backs itself up (the stack uses managed PostgreSQL): no backup bucket.
    assert {b["bucket"] for b in buckets.values()} == {"cnai-eks-mlflow", "cnai-eks-feast"}
    assert all(b["forceDestroy"] is False for b in buckets.values())
    assert all(r.protect for r in rec.by_type("aws:s3/bucket:Bucket"))
    for name in buckets:
        assert one(rec, "aws:s3/bucketVersioning:BucketVersioning",
                   name)["versioningConfiguration"] == {"status": "Enabled"}
        sse = one(rec, "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration", name)
        assert sse["rules"][0]["applyServerSideEncryptionByDefault"]["sseAlgorithm"] == "aws:kms"
        block = one(rec, "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock", name)
        assert all(block[k] for k in ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls",
                                      "restrictPublicBuckets"))


def test_eks_identities_are_scoped_to_each_layers_buckets():
    rec = evaluate("eks")
    policies = {n: json.loads(p["policy"]) for n, p in all_of(rec, "aws:iam/rolePolicy:RolePolicy").items()}

    def s3_resources(layer):
        return {r for s in policies[f"layer-{layer}"]["Statement"] for r in [s["Resource"]] if ":s3:::" in r}

    assert s3_resources("mlflow") == {"arn:aws:s3:::cnai-eks-mlflow", "arn:aws:s3:::cnai-eks-mlflow/*"}
    assert s3_resources("feast") == {"arn:aws:s3:::cnai-eks-feast", "arn:aws:s3:::cnai-eks-feast/*"}
    kserve_actions = {a for s in policies["layer-kserve"]["Statement"] for a in s["Action"]}
    assert "s3:PutObject" not in kserve_actions and "s3:GetObject" in kserve_actions  # serving reads only
    for doc in policies.values():
        assert all(s["Resource"] != "*" or "autoscaling:SetDesiredCapacity" not in s["Action"] or "Condition" in s
                   for s in doc["Statement"])
    assoc = {(a["namespace"], a["serviceAccount"]) for a in all_of(rec,
                                                                   "aws:eks/podIdentityAssociation:PodIdentityAssociation").values()}
    assert {("mlflow", "mlflow"), ("feast", "feast-platform"),
            ("kserve-examples", "kserve-models"), ("team-research", "kserve-models")} <= assoc
    assert ("postgres", "platform-db") not in assoc  # managed PostgreSQL: no in-cluster instances


def test_eks_layers_use_pod_identity_not_keys():
    rec = evaluate("eks")
    assert "object-store" not in {r.name for r in rec.by_type("kubernetes:helm.sh/v3:Release")}
    assert not [r for r in rec.by_type("random:index/randomPassword:RandomPassword")
                if r.name.startswith("object-store")]
    assert not [o for o in rec.objects() if o["kind"] == "Secret" and "AWS_SECRET_ACCESS_KEY" in o.get("stringData",
                                                                                                       {})]
    v = values_of(rec, "mlflow")
    assert v["artifactRoot"]["s3"] == {"enabled": True, "bucket": "cnai-eks-mlflow", "path": ""}
    assert "MLFLOW_S3_ENDPOINT_URL" not in v["extraEnvVars"]
    gpu = values_of(rec, "gpu-operator")
    assert gpu["driver"]["enabled"] is False and gpu["toolkit"]["enabled"] is False  # AL2023 NVIDIA AMI
    sc = one(rec, "kubernetes:storage.k8s.io/v1:StorageClass", "gp3")
    assert sc["metadata"]["annotations"]["storageclass.kubernetes.io/is-default-class"] == "true"
    assert sc["parameters"] == {"type": "gp3", "encrypted": "true"}


def test_eks_cluster_autoscaler_discovers_the_groups_with_its_own_role():
    rec = evaluate("eks")
    v = values_of(rec, "cluster-autoscaler")
    assert v["autoDiscovery"] == {"clusterName": "cnai-eks"} and v["awsRegion"] == "us-west-2"
    assert v["image"]["tag"].startswith("v1.35.")  # the autoscaler's minor follows the cluster's
    assert v["cloudProvider"] == "aws" and "awsAccessKeyID" not in v
    assoc = {(a["namespace"], a["serviceAccount"]) for a in all_of(rec,
                                                                   "aws:eks/podIdentityAssociation:PodIdentityAssociation").values()}
    assert ("cluster-autoscaler", "cluster-autoscaler") in assoc
    policy = json.loads(one(rec, "aws:iam/rolePolicy:RolePolicy", "layer-cluster-autoscaler")["policy"])
    resize = next(s for s in policy["Statement"] if "autoscaling:SetDesiredCapacity" in s["Action"])
    assert resize["Condition"] == {"StringEquals": {"aws:ResourceTag/k8s.io/cluster-autoscaler/enabled": "true"}}
    assert not any(":s3:" in str(s["Resource"]) for s in policy["Statement"])  # no bucket access


# -- GKE -------------------------------------------------------------------------------------------

def test_gke_cluster_is_private_vpc_native_with_workload_identity():
    rec = evaluate("gke")
    c = one(rec, "gcp:container/cluster:Cluster", "cluster")
    assert c["privateClusterConfig"]["enablePrivateNodes"] is True
    assert c["workloadIdentityConfig"] == {"workloadPool": "my-ml-project.svc.id.goog"}
    assert c["enableShieldedNodes"] is True and c["deletionProtection"] is True
    assert c["releaseChannel"] == {"channel": "REGULAR"} and c["minMasterVersion"] == "1.35"
    assert c["ipAllocationPolicy"] == {"clusterSecondaryRangeName": "pods", "servicesSecondaryRangeName": "services"}
    assert c["removeDefaultNodePool"] is True
    assert c["masterAuthorizedNetworksConfig"]["cidrBlocks"][0]["cidrBlock"] == "0.0.0.0/0"
    sub = one(rec, "gcp:compute/subnetwork:Subnetwork", "nodes")
    assert {r["rangeName"] for r in sub["secondaryIpRanges"]} == {"pods", "services"}
    assert sub["privateIpGoogleAccess"] is True
    assert rec.by_type("gcp:compute/routerNat:RouterNat")
    assert rec.get("gcp:container/cluster:Cluster", "cluster").protect


def test_gke_gpu_pool_scales_from_zero_and_follows_the_driver_choice():
    rec = evaluate("gke")
    pool = one(rec, "gcp:container/nodePool:NodePool", "gpu-gpu")
    assert pool["autoscaling"] == {"minNodeCount": 0, "maxNodeCount": 1}
    node = pool["nodeConfig"]
    assert node["taints"] == [{"key": "nvidia.com/gpu", "value": "present", "effect": "NO_SCHEDULE"}]
    assert node["guestAccelerators"][0]["type"] == "nvidia-l4"
    assert node["guestAccelerators"][0]["gpuDriverInstallationConfig"] == {"gpuDriverVersion": "DEFAULT"}
    assert node["labels"]["gke-no-default-nvidia-gpu-device-plugin"] == "true"
    assert node["workloadMetadataConfig"] == {"mode": "GKE_METADATA"}
    assert node["shieldedInstanceConfig"]["enableSecureBoot"] is True
    gpu = values_of(rec, "gpu-operator")
    assert gpu["driver"]["enabled"] is False
    assert gpu["hostPaths"]["driverInstallDir"] == gpu["toolkit"]["installDir"] == "/home/kubernetes/bin/nvidia"
    assert {"name": "RUNTIME_CONFIG_SOURCE", "value": "file"} in gpu["toolkit"]["env"]
    quota = next(o for o in rec.objects() if o["kind"] == "ResourceQuota"
                 and o["metadata"]["namespace"] == "gpu-operator")
    assert quota["spec"]["scopeSelector"]["matchExpressions"][0]["values"] == ["system-node-critical",
                                                                              "system-cluster-critical"]


def test_gke_operator_installed_drivers():
    g = {"project": "my-ml-project", "region": "europe-west4", "gpuDriver": "operator"}
    rec = run("gke", {"cnai:gke": g})
    node = one(rec, "gcp:container/nodePool:NodePool", "gpu-gpu")["nodeConfig"]
    assert node["imageType"] == "UBUNTU_CONTAINERD"
    assert node["guestAccelerators"][0]["gpuDriverInstallationConfig"] == {"gpuDriverVersion": "INSTALLATION_DISABLED"}
    gpu = values_of(rec, "gpu-operator")
    assert gpu["driver"]["enabled"] is True and "hostPaths" not in gpu


def test_gke_buckets_and_workload_identity_bindings():
    rec = evaluate("gke")
    for b in all_of(rec, "gcp:storage/bucket:Bucket").values():
        assert b["uniformBucketLevelAccess"] is True and b["publicAccessPrevention"] == "enforced"
        assert b["versioning"] == {"enabled": True} and b["forceDestroy"] is False
    members = {(m["member"], m["role"]) for m in all_of(rec, "gcp:serviceaccount/iAMMember:IAMMember").values()}
    assert ("serviceAccount:my-ml-project.svc.id.goog[mlflow/mlflow]", "roles/iam.workloadIdentityUser") in members
    assert ("serviceAccount:my-ml-project.svc.id.goog[team-research/kserve-models]",
            "roles/iam.workloadIdentityUser") in members
    grants = {n: g["role"] for n, g in all_of(rec, "gcp:storage/bucketIAMMember:BucketIAMMember").items()}
    assert grants == {"mlflow-mlflow": "roles/storage.objectUser", "kserve-mlflow": "roles/storage.objectViewer",
                      "feast-feast": "roles/storage.objectUser",
                      "postgres-postgres-backups": "roles/storage.objectUser"}
    v = values_of(rec, "mlflow")
    assert v["serviceAccount"]["annotations"] == {
        "iam.gke.io/gcp-service-account": "cnai-gke-mlflow@my-ml-project.iam.gserviceaccount.com"}
    assert v["artifactRoot"]["gcs"]["bucket"] == "cnai-gke-mlflow"


def test_cloud_stacks_run_the_same_layers_as_kind():
    kind = set(evaluate("kind").spec.enabled_layers())
    # The optional Kubeflow platform is on in the gke example (Istio with GKE's CNI path), off on kind.
    assert set(evaluate("gke").spec.enabled_layers()) - {"kubeflow-platform"} == kind
    assert set(evaluate("eks").spec.enabled_layers()) - {"cluster-autoscaler"} == kind


def test_kueue_gpu_quota_counts_the_pools_maximum():
    """The GPUs the queues share are the pools' maximum: the team's guarantee plus the cohort's pool."""
    rec = evaluate("eks")
    assert rec.platform.caps.gpu_resources() == {"nvidia.com/gpu": 2}  # 2 x g6.xlarge at max
    cohort = next(o for o in rec.objects() if o["kind"] == "Cohort")
    team = next(o for o in rec.objects() if o["kind"] == "ClusterQueue" and o["metadata"]["name"] == "team-research")

    def gpus(q):
        return sum(int(r["nominalQuota"]) for g in q["spec"]["resourceGroups"] for f in g["flavors"]
                   if f["name"] == "gpu" for r in f["resources"])

    assert gpus(team) + gpus(cohort) == 2


# -- bad cloud configs -----------------------------------------------------------------------------

# -- managed PostgreSQL ----------------------------------------------------------------------------

def _managed_postgres_wiring(rec, address):
    """No in-cluster PostgreSQL; consumers get the instance's address; a Job creates their roles."""
    releases = {r.name for r in rec.by_type("kubernetes:helm.sh/v3:Release")}
    assert not releases & {"postgres", "barman-cloud"}
    assert not [o for o in rec.objects() if o["kind"] in ("Cluster", "Database", "ScheduledBackup")]
    assert values_of(rec, "mlflow")["backendStore"]["postgres"]["host"] == address
    assert secret_data(rec, "feast", "feast-env")["POSTGRES_HOST"] == address
    objects = [normalize(o, reveal=True) for o in rec.objects()]
    job = next(o for o in objects if o["kind"] == "Job" and o["metadata"]["namespace"] == "postgres")
    env = {e["name"]: e for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["ROLES"]["value"] == "feast mlflow" and env["PGSSLMODE"]["value"] == "require"
    assert env["PGPASSWORD"]["valueFrom"]["secretKeyRef"] == {"name": "platform-db-admin", "key": "password"}
    assert env["PASSWORD_MLFLOW"]["valueFrom"]["secretKeyRef"] == {"name": "platform-db-mlflow", "key": "password"}
    admin = secret_data(rec, "postgres", "platform-db-admin")
    assert admin["host"] == address and admin["username"] == "cnai_admin"
    # the mlflow release waits for the roles Job (it requires the postgres layer)
    assert any(job["metadata"]["name"] in w for w in rec.waits_for(rec.get("kubernetes:helm.sh/v3:Release", "mlflow")))


def test_eks_managed_postgres_is_rds_private_encrypted_backed_up_and_protected():
    rec = evaluate("eks")
    db = one(rec, "aws:rds/instance:Instance", "postgres")
    assert db["engine"] == "postgres" and db["storageEncrypted"] is True
    assert db["kmsKeyId"] == f"arn:aws:kms:us-west-2:{ACCOUNT}:secrets"  # the cluster's KMS key
    assert db["publiclyAccessible"] is False and db["multiAz"] is True and db["backupRetentionPeriod"] == 7
    assert db["deletionProtection"] is True and db["skipFinalSnapshot"] is False and db["finalSnapshotIdentifier"]
    assert rec.get("aws:rds/instance:Instance", "postgres").protect
    assert db["password"] == "mockpwpostgresadmin" and db["username"] == "cnai_admin"
    subnets = one(rec, "aws:rds/subnetGroup:SubnetGroup", "postgres")["subnetIds"]
    assert subnets == [f"private-us-west-2{z}-id" for z in "abc"]
    rule = one(rec, "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule", "postgres-from-cluster")
    assert (rule["fromPort"], rule["toPort"], rule["referencedSecurityGroupId"]) == (5432, 5432, "sg-0cluster")
    assert "cidrIpv4" not in rule
    _managed_postgres_wiring(rec, "cnai-eks-platform-db.c0mock.us-west-2.rds.amazonaws.com")


def test_gke_managed_postgres_is_cloud_sql_on_a_private_ip():
    rec = evaluate("gke", {"cnai:layers": {"postgres": {"managed": True}}})
    db = one(rec, "gcp:sql/databaseInstance:DatabaseInstance", "postgres")
    s = db["settings"]
    assert s["ipConfiguration"] == {"ipv4Enabled": False, "privateNetwork": "network-id", "sslMode": "ENCRYPTED_ONLY"}
    assert s["backupConfiguration"]["enabled"] and s["backupConfiguration"]["pointInTimeRecoveryEnabled"]
    assert s["availabilityType"] == "REGIONAL" and s["deletionProtectionEnabled"] is True
    assert s["edition"] == "ENTERPRISE" and s["tier"] == "db-custom-2-7680"
    assert db["deletionProtection"] is True and rec.get("gcp:sql/databaseInstance:DatabaseInstance", "postgres").protect
    peering = one(rec, "gcp:compute/globalAddress:GlobalAddress", "sql-peering")
    assert peering["purpose"] == "VPC_PEERING" and peering["network"] == "network-id"
    deps = rec.get("gcp:sql/databaseInstance:DatabaseInstance", "postgres").depends_on
    assert any(d.endswith("gcp:servicenetworking/connection:Connection::sql-peering") for d in deps)
    user = one(rec, "gcp:sql/user:User", "postgres-admin")
    assert user["name"] == "cnai_admin" and user["password"] == "mockpwpostgresadmin"
    # no backup bucket and no identity for in-cluster instances
    assert "cnai-gke-postgres-backups" not in {b["name"] for b in all_of(rec, "gcp:storage/bucket:Bucket").values()}
    _managed_postgres_wiring(rec, "10.100.0.3")


EKS = {"region": "us-west-2", "availabilityZones": ["us-west-2a", "us-west-2b"]}
GKE = {"project": "my-ml-project", "region": "europe-west4"}
BAD = [
    ("kind", {"cnai:layers": {"cluster-autoscaler": {"enabled": True}}}, "cnai:layers.cluster-autoscaler.enabled",
     "has no node groups the platform can scale"),
    ("gke", {"cnai:layers": {"cluster-autoscaler": {"enabled": True}}}, "cnai:layers.cluster-autoscaler.enabled",
     "scales its node pools itself"),
    ("eks", {"cnai:eks": {**EKS, "gpuPools": [{"instanceTypes": ["m6i.xlarge"]}]}},
     "cnai:eks.gpuPools[0].instanceTypes", "not a known NVIDIA GPU instance type"),
    ("eks", {"cnai:eks": {**EKS, "gpuPools": [{"min": 3, "max": 1}]}}, "cnai:eks.gpuPools[0]", "must not exceed max"),
    ("eks", {"cnai:eks": {"availabilityZones": ["us-west-2a", "us-west-2b"]}}, "cnai:eks.region", "is required"),
    ("eks", {"cnai:eks": {**EKS, "availabilityZones": ["us-west-2a"]}}, "cnai:eks.availabilityZones", "at least two"),
    ("eks", {"cnai:eks": {**EKS, "availabilityZones": ["us-west-2a", "us-east-1b"]}},
     "cnai:eks.availabilityZones[1]", "not a zone of us-west-2"),
    ("eks", {"cnai:eks": {**EKS, "gpuPools": [{"instanceTypes": ["g6.xlarge", "g6.12xlarge"]}]}},
     "cnai:eks.gpuPools[0].instanceTypes", "same GPU count"),
    ("eks", {"cnai:eks": {**EKS, "adminPrincipals": ["alice"]}}, "cnai:eks.adminPrincipals[0]", "IAM role or user ARN"),
    ("eks", {"cnai:eks": {**EKS, "region": "Oregon"}}, "cnai:eks.region", "must be a cloud region"),
    ("gke", {"cnai:gke": {"region": "europe-west4"}}, "cnai:gke.project", "is required"),
    ("gke", {"cnai:gke": {**GKE, "gpuPools": [{"acceleratorType": "nvidia-l4", "machineType": "n1-standard-8"}]}},
     "cnai:gke.gpuPools[0].machineType", "runs on g2 machines"),
    ("gke", {"cnai:gke": {**GKE, "gpuPools": [{"acceleratorType": "nvidia-x9"}]}},
     "cnai:gke.gpuPools[0].acceleratorType", "not a known NVIDIA accelerator"),
    ("gke", {"cnai:gke": {**GKE, "gpuPools": [{"min": 2, "max": 1}]}}, "cnai:gke.gpuPools[0]", "must not exceed max"),
    ("gke", {"cnai:gke": {**GKE, "zones": ["us-central1-a"]}}, "cnai:gke.zones[0]", "not a zone of europe-west4"),
    ("gke", {"cnai:gpu": {"enabled": True, "sharing": {"mode": "mig"}}}, "cnai:gpu.sharing.mode",
     "needs cnai:gke.gpuDriver: operator"),
    ("kind", {"cnai:layers": {"postgres": {"managed": True}}}, "cnai:layers.postgres.managed",
     "offers no managed PostgreSQL"),
    ("eks", {"cnai:layers": {"postgres": {"managed": True, "instances": 3}}}, "cnai:layers.postgres.instances",
     "size the instance in cnai:eks.database"),
    ("eks", {"cnai:eks": {**EKS, "database": {"instanceClass": "m6i.large"}}}, "cnai:eks.database.instanceClass",
     ""),
    ("gke", {"cnai:gke": {**GKE, "database": {"version": "MYSQL_8_0"}}}, "cnai:gke.database.version", ""),
]


@pytest.mark.parametrize("stack,overrides,key,fragment", BAD, ids=[f"{b[0]}:{b[2]}" for b in BAD])
def test_bad_cloud_config_is_one_line_naming_the_key(stack, overrides, key, fragment):
    with pytest.raises(ConfigError) as err:
        run(stack, overrides)
    message = str(err.value)
    assert "\n" not in message and message.startswith(key), message
    assert fragment in message, message
