"""The AWS resources of an EKS stack: network, control plane, node groups, add-ons, buckets, identities, RDS."""

from __future__ import annotations

import ipaddress
from typing import Any

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s
import pulumi_random as random
import yaml

from modules.clusters.contract import (
    GPU_RESOURCE,
    PG_ADDRESS,
    PG_ADMIN_PASSWORD,
    PG_ADMIN_USER,
    Capabilities,
    Cluster,
    ClusterRequests,
)
from modules.clusters.eks.capabilities import (
    ADMIN_POLICY,
    DB_CLASSES,
    POOL_LABEL,
    STORAGE_CLASS,
    gpu_pool_labels,
    node_template_tags,
)
from modules.clusters.eks.iam import assume_policy, policy_document
from modules.shared.config import PlatformSpec
from modules.shared.profiles import PROFILES


def _subnets(cidr: str, zones: int) -> tuple[list[str], list[str]]:
    """Private /19s for nodes and pods (VPC CNI uses subnet IPs), public /22s for load balancers."""
    net = ipaddress.ip_network(cidr)
    halves = list(net.subnets(new_prefix=net.prefixlen + 1))
    private = [str(s) for s in list(halves[0].subnets(new_prefix=min(32, net.prefixlen + 3)))[:zones]]
    public = [str(s) for s in list(halves[1].subnets(new_prefix=min(32, net.prefixlen + 6)))[:zones]]
    return private, public


def kubeconfig(name: str, endpoint: str, ca: str, region: str) -> str:
    """A kubeconfig that authenticates with `aws eks get-token` (AWS CLI, the caller's credentials)."""
    return yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": name,
        "clusters": [{"name": name, "cluster": {"server": endpoint, "certificate-authority-data": ca}}],
        "contexts": [{"name": name, "context": {"cluster": name, "user": name}}],
        "users": [{"name": name, "user": {"exec": {
            "apiVersion": "client.authentication.k8s.io/v1beta1", "command": "aws",
            "args": ["eks", "get-token", "--cluster-name", name, "--region", region, "--output", "json"]}}}],
    }, sort_keys=False)


class EksCluster(pulumi.ComponentResource):
    """An EKS cluster with its network, node groups, storage, buckets and workload identities."""

    def __init__(self, spec: PlatformSpec, requests: ClusterRequests, caps: Capabilities,
                 opts: pulumi.ResourceOptions | None = None):
        e = spec.eks
        super().__init__("cnai:modules:EksCluster", e.name, None, opts)
        profile = PROFILES[spec.profile]
        protect = profile.protect_state  # protection, deletion protection, data kept on delete
        self.aws = aws.Provider("aws", region=e.region, opts=pulumi.ResourceOptions(parent=self))
        child = pulumi.ResourceOptions(parent=self, provider=self.aws)
        stateful = pulumi.ResourceOptions.merge(child, pulumi.ResourceOptions(protect=protect))
        tags = {"platform.cnai.dev/stack": spec.stack, "platform.cnai.dev/cluster": e.name}

        def opt(**kw) -> pulumi.ResourceOptions:
            return pulumi.ResourceOptions.merge(child, pulumi.ResourceOptions(**kw))

        # -- network ----------------------------------------------------------------------------
        if e.network.vpcId:
            private_ids: list[Any] = list(e.network.privateSubnetIds)
            public_ids: list[Any] = list(e.network.publicSubnetIds)
        else:
            vpc = aws.ec2.Vpc("vpc", cidr_block=e.network.cidr, enable_dns_hostnames=True, enable_dns_support=True,
                              tags={**tags, "Name": e.name}, opts=child)
            igw = aws.ec2.InternetGateway("igw", vpc_id=vpc.id, tags=tags, opts=child)
            public_rt = aws.ec2.RouteTable("public", vpc_id=vpc.id, tags=tags, opts=child,
                                           routes=[{"cidr_block": "0.0.0.0/0", "gateway_id": igw.id}])
            private_cidrs, public_cidrs = _subnets(e.network.cidr, len(e.availabilityZones))
            public_ids, private_ids, nats = [], [], []
            shared = {f"kubernetes.io/cluster/{e.name}": "shared"}
            for i, az in enumerate(e.availabilityZones):
                pub = aws.ec2.Subnet(f"public-{az}", vpc_id=vpc.id, cidr_block=public_cidrs[i], availability_zone=az,
                                     map_public_ip_on_launch=False, opts=child,
                                     tags={**tags, **shared, "kubernetes.io/role/elb": "1",
                                           "Name": f"{e.name}-public-{az}"})
                aws.ec2.RouteTableAssociation(f"public-{az}", subnet_id=pub.id, route_table_id=public_rt.id, opts=child)
                public_ids.append(pub.id)
                if e.network.natGateways == "perAz" or i == 0:
                    eip = aws.ec2.Eip(f"nat-{az}", domain="vpc", tags=tags, opts=child)
                    nats.append(aws.ec2.NatGateway(f"nat-{az}", allocation_id=eip.id, subnet_id=pub.id, tags=tags,
                                                   opts=opt(depends_on=[igw])))
                priv = aws.ec2.Subnet(f"private-{az}", vpc_id=vpc.id, cidr_block=private_cidrs[i], availability_zone=az,
                                      opts=child, tags={**tags, **shared, "kubernetes.io/role/internal-elb": "1",
                                                        "Name": f"{e.name}-private-{az}"})
                rt = aws.ec2.RouteTable(f"private-{az}", vpc_id=vpc.id, tags=tags, opts=child,
                                        routes=[{"cidr_block": "0.0.0.0/0", "nat_gateway_id": nats[-1].id}])
                aws.ec2.RouteTableAssociation(f"private-{az}", subnet_id=priv.id, route_table_id=rt.id, opts=child)
                private_ids.append(priv.id)

        # -- control plane ----------------------------------------------------------------------
        self.key = aws.kms.Key("secrets", description=f"{e.name}: EKS secrets and platform buckets",
                               enable_key_rotation=True, deletion_window_in_days=30, tags=tags, opts=stateful)
        cluster_role = aws.iam.Role("cluster", assume_role_policy=assume_policy("eks.amazonaws.com"), tags=tags,
                                    opts=child)
        attach = aws.iam.RolePolicyAttachment("cluster", role=cluster_role.name, opts=child,
                                              policy_arn="arn:aws:iam::aws:policy/AmazonEKSClusterPolicy")
        self.cluster = aws.eks.Cluster(
            "cluster", name=e.name, version=spec.kubernetesVersion, role_arn=cluster_role.arn,
            vpc_config={"subnet_ids": private_ids, "endpoint_private_access": e.endpoint.private,
                        "endpoint_public_access": e.endpoint.public,
                        "public_access_cidrs": list(e.endpoint.publicCidrs) if e.endpoint.public else None},
            access_config={"authentication_mode": "API", "bootstrap_cluster_creator_admin_permissions": True},
            encryption_config={"provider": {"key_arn": self.key.arn}, "resources": ["secrets"]},
            enabled_cluster_log_types=list(e.logTypes),
            deletion_protection=protect,
            tags=tags,
            opts=pulumi.ResourceOptions.merge(stateful, pulumi.ResourceOptions(depends_on=[attach])),
        )
        for i, arn in enumerate(e.adminPrincipals):
            entry = aws.eks.AccessEntry(f"admin-{i}", cluster_name=self.cluster.name, principal_arn=arn, opts=child)
            aws.eks.AccessPolicyAssociation(f"admin-{i}", cluster_name=self.cluster.name, principal_arn=arn,
                                            policy_arn=ADMIN_POLICY, access_scope={"type": "cluster"},
                                            opts=opt(depends_on=[entry]))

        # -- nodes ------------------------------------------------------------------------------
        node_role = aws.iam.Role("nodes", assume_role_policy=assume_policy("ec2.amazonaws.com"), tags=tags, opts=child)
        node_policies = [aws.iam.RolePolicyAttachment(f"nodes-{p}", role=node_role.name, opts=child,
                                                      policy_arn=f"arn:aws:iam::aws:policy/{p}")
                         for p in ("AmazonEKSWorkerNodePolicy", "AmazonEC2ContainerRegistryReadOnly",
                                   "AmazonEKS_CNI_Policy")]

        def launch_template(name: str, disk: int) -> aws.ec2.LaunchTemplate:
            return aws.ec2.LaunchTemplate(
                name, tags=tags, opts=child, update_default_version=True,
                # IMDSv2 only, one hop: pods cannot borrow the node's role.
                metadata_options={"http_endpoint": "enabled", "http_tokens": "required",
                                  "http_put_response_hop_limit": 1},
                block_device_mappings=[{"device_name": "/dev/xvda", "ebs": {
                    "volume_size": disk, "volume_type": "gp3", "encrypted": "true", "delete_on_termination": "true"}}],
            )

        def node_group(name: str, ami: str, types: tuple[str, ...], pool: Any, labels: dict[str, str],
                       taints: list[dict[str, str]], desired: int) -> aws.eks.NodeGroup:
            lt = launch_template(f"nodes-{name}", pool.diskSize)
            return aws.eks.NodeGroup(
                name, cluster_name=self.cluster.name, node_group_name=name, node_role_arn=node_role.arn,
                subnet_ids=private_ids, ami_type=ami, instance_types=list(types),
                capacity_type="SPOT" if pool.spot else "ON_DEMAND",
                scaling_config={"min_size": pool.min, "max_size": pool.max, "desired_size": desired},
                launch_template={"id": lt.id, "version": lt.latest_version.apply(str)},
                labels=labels, taints=taints, update_config={"max_unavailable": 1}, tags=tags,
                # The autoscaler owns the desired size once the group exists.
                opts=opt(depends_on=node_policies, ignore_changes=["scalingConfig.desiredSize"]),
            )

        system = e.systemPool
        self.system = node_group("system", "AL2023_x86_64_STANDARD", system.instanceTypes, system,
                                 {POOL_LABEL: "system", **system.labels}, [], system.min)
        self.gpu_groups: list[aws.eks.NodeGroup] = []
        for pool in (e.gpuPools if spec.gpu.enabled else ()):
            ng = node_group(f"gpu-{pool.name}", "AL2023_x86_64_NVIDIA", pool.instanceTypes, pool,
                            gpu_pool_labels(pool, caps),
                            [{"key": GPU_RESOURCE, "value": "present", "effect": "NO_SCHEDULE"}], pool.min)
            self.gpu_groups.append(ng)
            asg = ng.resources.apply(lambda r: r[0].autoscaling_groups[0].name)
            for i, (k, v) in enumerate(sorted(node_template_tags(e.name, pool, caps).items())):
                aws.autoscaling.Tag(f"gpu-{pool.name}-tag-{i}", autoscaling_group_name=asg, opts=child,
                                    tag={"key": k, "value": v, "propagate_at_launch": False})

        # -- add-ons and storage ----------------------------------------------------------------
        agent = aws.eks.Addon("pod-identity-agent", cluster_name=self.cluster.name, addon_name="eks-pod-identity-agent",
                              opts=opt(depends_on=[self.system]))
        ebs_role = aws.iam.Role("ebs-csi", assume_role_policy=assume_policy("pods.eks.amazonaws.com"), tags=tags,
                                opts=child)
        aws.iam.RolePolicyAttachment("ebs-csi", role=ebs_role.name, opts=child,
                                     policy_arn="arn:aws:iam::aws:policy/service-role/AmazonEBSCSIDriverPolicy")
        ebs = aws.eks.Addon("ebs-csi", cluster_name=self.cluster.name, addon_name="aws-ebs-csi-driver",
                            pod_identity_associations=[{"role_arn": ebs_role.arn,
                                                        "service_account": "ebs-csi-controller-sa"}],
                            opts=opt(depends_on=[agent]))

        # -- buckets and identities -------------------------------------------------------------
        names = caps.cloud_storage.buckets
        self.buckets: dict[str, aws.s3.Bucket] = {}
        for bucket, name in names.items():
            b = aws.s3.Bucket(f"bucket-{bucket}", bucket=name, force_destroy=not protect, tags=tags, opts=stateful)
            aws.s3.BucketVersioning(f"bucket-{bucket}", bucket=b.id, opts=child,
                                    versioning_configuration={"status": "Enabled"})
            aws.s3.BucketServerSideEncryptionConfiguration(f"bucket-{bucket}", bucket=b.id, opts=child, rules=[{
                "apply_server_side_encryption_by_default": {"sse_algorithm": "aws:kms",
                                                            "kms_master_key_id": self.key.arn},
                "bucket_key_enabled": True}])
            aws.s3.BucketPublicAccessBlock(f"bucket-{bucket}", bucket=b.id, block_public_acls=True,
                                           block_public_policy=True, ignore_public_acls=True,
                                           restrict_public_buckets=True, opts=child)
            self.buckets[bucket] = b
        self.roles: dict[str, aws.iam.Role] = {}
        for ident in requests.identities:
            role = aws.iam.Role(f"layer-{ident.layer}", assume_role_policy=assume_policy("pods.eks.amazonaws.com"),
                                tags=tags, opts=child)
            aws.iam.RolePolicy(f"layer-{ident.layer}", role=role.id, opts=child,
                               policy=self.key.arn.apply(lambda arn, i=ident: policy_document(i, names, arn)))
            for ns, sa in ident.subjects:
                aws.eks.PodIdentityAssociation(f"{ident.layer}-{ns}-{sa}", cluster_name=self.cluster.name,
                                               namespace=ns, service_account=sa, role_arn=role.arn,
                                               opts=opt(depends_on=[agent]))
            self.roles[ident.layer] = role

        # -- managed PostgreSQL -----------------------------------------------------------------
        self.provided: dict[str, Any] = {}
        self.database: aws.rds.Instance | None = None
        if requests.managed_database:
            d = e.database
            admin = random.RandomPassword("postgres-admin", length=32, special=False, opts=child)
            subnets = aws.rds.SubnetGroup("postgres", name=f"{e.name}-platform-db", subnet_ids=private_ids, tags=tags,
                                          opts=child,
                                          description=f"{e.name}: platform PostgreSQL (private subnets)")
            sg = aws.ec2.SecurityGroup("postgres", vpc_id=e.network.vpcId or vpc.id, tags=tags, opts=child,
                                       description=f"{e.name}: PostgreSQL from the cluster only")
            # Managed node groups without their own security groups run in the cluster security group.
            aws.vpc.SecurityGroupIngressRule(
                "postgres-from-cluster", security_group_id=sg.id, ip_protocol="tcp", from_port=5432, to_port=5432,
                referenced_security_group_id=self.cluster.vpc_config.cluster_security_group_id,
                description="PostgreSQL from EKS nodes and pods", opts=child)
            self.database = aws.rds.Instance(
                "postgres", identifier=f"{e.name}-platform-db", engine="postgres", engine_version=d.engineVersion,
                instance_class=d.instanceClass or DB_CLASSES[profile.size],
                allocated_storage=d.storageGb, max_allocated_storage=d.maxStorageGb or None, storage_type="gp3",
                storage_encrypted=True, kms_key_id=self.key.arn,
                db_subnet_group_name=subnets.name, vpc_security_group_ids=[sg.id], publicly_accessible=False,
                username=PG_ADMIN_USER, password=admin.result,
                multi_az=profile.ha if d.multiAz is None else d.multiAz,
                backup_retention_period=d.backupRetentionDays, copy_tags_to_snapshot=True,
                delete_automated_backups=not protect, auto_minor_version_upgrade=True,
                enabled_cloudwatch_logs_exports=["postgresql"],
                deletion_protection=protect, skip_final_snapshot=not protect,
                final_snapshot_identifier=f"{e.name}-platform-db-final" if protect else None,
                tags=tags, opts=stateful)
            self.provided = {PG_ADDRESS: self.database.address, PG_ADMIN_PASSWORD: admin.result}

        # -- Kubernetes access ------------------------------------------------------------------
        self.kubeconfig = pulumi.Output.secret(pulumi.Output.all(
            self.cluster.name, self.cluster.endpoint, self.cluster.certificate_authority.apply(lambda ca: ca.data)
        ).apply(lambda a: kubeconfig(a[0], a[1], a[2], e.region)))
        self.provider = k8s.Provider("eks", kubeconfig=self.kubeconfig, enable_server_side_apply=True,
                                     opts=pulumi.ResourceOptions(parent=self, depends_on=[self.system]))
        self.storage_class = k8s.storage.v1.StorageClass(
            "gp3", metadata={"name": STORAGE_CLASS,
                             "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
            provisioner="ebs.csi.aws.com", volume_binding_mode="WaitForFirstConsumer", allow_volume_expansion=True,
            reclaim_policy="Retain" if protect else "Delete",
            parameters={"type": "gp3", "encrypted": "true"},
            opts=pulumi.ResourceOptions(parent=self, provider=self.provider, depends_on=[ebs]))
        self.ready: list[pulumi.Resource] = [self.system, self.storage_class, agent]
        self.outputs = {
            "endpoint": self.cluster.endpoint,
            "region": e.region,
            "buckets": dict(names),
            "roles": {layer: role.arn for layer, role in self.roles.items()},
        }
        if self.database:
            self.outputs["database"] = self.database.address
        self.register_outputs({"name": e.name, "kubeconfig": self.kubeconfig, **self.outputs})


def create(spec: PlatformSpec, requests: ClusterRequests, caps: Capabilities) -> Cluster:
    c = EksCluster(spec, requests, caps)
    return Cluster(name=spec.eks.name, provider=c.provider, kubeconfig=c.kubeconfig,
                   capabilities=caps, ready=c.ready, outputs=c.outputs, provided=c.provided)
