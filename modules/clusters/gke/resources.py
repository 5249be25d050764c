"""The Google Cloud resources of a GKE stack: network, cluster, node pools, buckets, identities, Cloud SQL."""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_gcp as gcp
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
from modules.clusters.gke.capabilities import (
    BUCKET_ROLES,
    DB_TIERS,
    GPU_LABELS,
    NO_GKE_DEVICE_PLUGIN,
    NODE_ROLES,
    POOL_LABEL,
    account_id,
)
from modules.shared.config import PlatformSpec
from modules.shared.gpus import MIG_CONFIG_LABEL
from modules.shared.profiles import PROFILES


def kubeconfig(name: str, endpoint: str, ca: str) -> str:
    """A kubeconfig that authenticates with gke-gcloud-auth-plugin (the caller's gcloud credentials)."""
    return yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": name,
        "clusters": [{"name": name, "cluster": {"server": f"https://{endpoint}", "certificate-authority-data": ca}}],
        "contexts": [{"name": name, "context": {"cluster": name, "user": name}}],
        "users": [{"name": name, "user": {"exec": {
            "apiVersion": "client.authentication.k8s.io/v1beta1", "command": "gke-gcloud-auth-plugin",
            "provideClusterInfo": True, "installHint": "gcloud components install gke-gcloud-auth-plugin"}}}],
    }, sort_keys=False)


class GkeCluster(pulumi.ComponentResource):
    """A GKE cluster with its network, node pools, buckets and Workload Identity bindings."""

    def __init__(self, spec: PlatformSpec, requests: ClusterRequests, caps: Capabilities,
                 opts: pulumi.ResourceOptions | None = None):
        g = spec.gke
        super().__init__("cnai:modules:GkeCluster", g.name, None, opts)
        profile = PROFILES[spec.profile]
        protect = profile.protect_state  # protection, deletion protection, data kept on delete
        self.gcp = gcp.Provider("gcp", project=g.project, region=g.region, opts=pulumi.ResourceOptions(parent=self))
        child = pulumi.ResourceOptions(parent=self, provider=self.gcp)
        stateful = pulumi.ResourceOptions.merge(child, pulumi.ResourceOptions(protect=protect))
        labels = {"platform-cnai-dev-stack": spec.stack, "platform-cnai-dev-cluster": g.name}

        def opt(**kw) -> pulumi.ResourceOptions:
            return pulumi.ResourceOptions.merge(child, pulumi.ResourceOptions(**kw))

        # -- network ----------------------------------------------------------------------------
        n = g.network
        if n.network:
            network: Any = n.network
            subnetwork: Any = n.subnetwork
        else:
            net = gcp.compute.Network("network", name=g.name, auto_create_subnetworks=False, opts=child)
            sub = gcp.compute.Subnetwork(
                "nodes", name=f"{g.name}-nodes", network=net.id, region=g.region, ip_cidr_range=n.subnetCidr,
                private_ip_google_access=True,
                secondary_ip_ranges=[{"range_name": n.podsRangeName, "ip_cidr_range": n.podsCidr},
                                     {"range_name": n.servicesRangeName, "ip_cidr_range": n.servicesCidr}],
                opts=child)
            router = gcp.compute.Router("router", name=f"{g.name}-router", network=net.id, region=g.region, opts=child)
            gcp.compute.RouterNat("nat", name=f"{g.name}-nat", router=router.name, region=g.region,
                                  nat_ip_allocate_option="AUTO_ONLY",
                                  source_subnetwork_ip_ranges_to_nat="ALL_SUBNETWORKS_ALL_IP_RANGES",
                                  log_config={"enable": True, "filter": "ERRORS_ONLY"}, opts=child)
            network, subnetwork = net.id, sub.id

        # -- cluster ----------------------------------------------------------------------------
        node_sa = gcp.serviceaccount.Account("nodes", account_id=account_id(g.name, "nodes"), project=g.project,
                                             display_name=f"{g.name} nodes", opts=child)
        for role in NODE_ROLES:
            gcp.projects.IAMMember(f"nodes-{role.split('/')[1]}", project=g.project, role=role,
                                   member=node_sa.email.apply(lambda e: f"serviceAccount:{e}"), opts=child)
        authorized = [{"cidr_block": a.cidr, "display_name": a.name or a.cidr} for a in g.masterAuthorizedNetworks]
        self.cluster = gcp.container.Cluster(
            "cluster", name=g.name, location=g.region, project=g.project,
            node_locations=list(g.zones) or None,
            network=network, subnetwork=subnetwork, networking_mode="VPC_NATIVE",
            ip_allocation_policy={"cluster_secondary_range_name": n.podsRangeName,
                                  "services_secondary_range_name": n.servicesRangeName},
            release_channel={"channel": g.releaseChannel},
            min_master_version=spec.kubernetesVersion,
            remove_default_node_pool=True, initial_node_count=1,
            workload_identity_config={"workload_pool": f"{g.project}.svc.id.goog"},
            enable_shielded_nodes=True,
            private_cluster_config={"enable_private_nodes": True, "enable_private_endpoint": g.privateEndpoint},
            master_authorized_networks_config={"cidr_blocks": authorized} if authorized else None,
            deletion_protection=protect,
            resource_labels=labels,
            opts=stateful,
        )

        def pool(name: str, p: Any, machine: str, node_labels: dict[str, str], accel: list[dict[str, Any]] | None,
                 taints: list[dict[str, str]], image: str) -> gcp.container.NodePool:
            return gcp.container.NodePool(
                name, name=name, cluster=self.cluster.id, location=g.region, project=g.project,
                autoscaling={"min_node_count": p.min, "max_node_count": p.max},
                initial_node_count=p.min,
                management={"auto_repair": True, "auto_upgrade": True},
                node_config={
                    "machine_type": machine, "disk_size_gb": p.diskSize, "disk_type": "pd-balanced",
                    "image_type": image, "spot": p.spot, "labels": node_labels, "taints": taints,
                    "guest_accelerators": accel, "service_account": node_sa.email,
                    "oauth_scopes": ["https://www.googleapis.com/auth/cloud-platform"],
                    "workload_metadata_config": {"mode": "GKE_METADATA"},
                    "shielded_instance_config": {"enable_secure_boot": True, "enable_integrity_monitoring": True},
                    "metadata": {"disable-legacy-endpoints": "true"},
                    "resource_labels": labels,
                },
                # The autoscaler owns the node count once the pool exists.
                opts=opt(ignore_changes=["initialNodeCount"]),
            )

        s = g.systemPool
        self.system = pool("system", s, s.machineType, {POOL_LABEL: "system", **s.labels}, None, [], "COS_CONTAINERD")
        self.gpu_pools: list[gcp.container.NodePool] = []
        driver = "DEFAULT" if g.gpuDriver == "gke" else "INSTALLATION_DISABLED"
        image = "COS_CONTAINERD" if g.gpuDriver == "gke" else "UBUNTU_CONTAINERD"
        # With MIG, the config the operator's MIG manager applies when a node boots.
        mig_config = {MIG_CONFIG_LABEL: caps.mig_profile} if caps.gpu_sharing == "mig" else {}
        for p in (g.gpuPools if spec.gpu.enabled else ()):
            accel = [{"type": p.acceleratorType, "count": p.acceleratorCount,
                      "gpu_driver_installation_config": {"gpu_driver_version": driver}}]
            self.gpu_pools.append(pool(
                f"gpu-{p.name}", p, p.machineType,
                {**GPU_LABELS, **NO_GKE_DEVICE_PLUGIN, POOL_LABEL: p.name, **mig_config, **p.labels}, accel,
                [{"key": GPU_RESOURCE, "value": "present", "effect": "NO_SCHEDULE"}], image))

        # -- buckets and identities -------------------------------------------------------------
        names = caps.cloud_storage.buckets
        location = (g.bucketLocation or g.region).upper()
        self.buckets: dict[str, gcp.storage.Bucket] = {}
        for bucket, name in names.items():
            self.buckets[bucket] = gcp.storage.Bucket(
                f"bucket-{bucket}", name=name, location=location, project=g.project,
                uniform_bucket_level_access=True, public_access_prevention="enforced",
                versioning={"enabled": True}, force_destroy=not protect, labels=labels, opts=stateful)
        self.accounts: dict[str, gcp.serviceaccount.Account] = {}
        for ident in requests.identities:
            sa = gcp.serviceaccount.Account(f"layer-{ident.layer}", account_id=account_id(g.name, ident.layer),
                                            project=g.project, display_name=f"{g.name} {ident.layer}", opts=child)
            member = sa.email.apply(lambda e: f"serviceAccount:{e}")
            for bucket, mode in sorted(ident.buckets.items()):
                gcp.storage.BucketIAMMember(f"{ident.layer}-{bucket}", bucket=self.buckets[bucket].name,
                                            role=BUCKET_ROLES[mode], member=member, opts=child)
            for ns, ksa in ident.subjects:
                gcp.serviceaccount.IAMMember(
                    f"{ident.layer}-{ns}-{ksa}", service_account_id=sa.name, role="roles/iam.workloadIdentityUser",
                    member=f"serviceAccount:{g.project}.svc.id.goog[{ns}/{ksa}]",
                    opts=opt(depends_on=[self.cluster]))  # the identity pool exists with the cluster
            self.accounts[ident.layer] = sa

        # -- managed PostgreSQL -----------------------------------------------------------------
        self.provided: dict[str, Any] = {}
        self.database: gcp.sql.DatabaseInstance | None = None
        if requests.managed_database:
            d = g.database
            network_id = network if not isinstance(network, str) or "/" in network \
                else f"projects/{g.project}/global/networks/{network}"
            peering = gcp.compute.GlobalAddress(
                "sql-peering", name=f"{g.name}-sql-peering", project=g.project, network=network_id,
                purpose="VPC_PEERING", address_type="INTERNAL", prefix_length=d.peeringCidrPrefix, opts=child)
            connection = gcp.servicenetworking.Connection(
                "sql-peering", network=network_id, service="servicenetworking.googleapis.com",
                reserved_peering_ranges=[peering.name], opts=child)
            ha = profile.ha if d.highAvailability is None else d.highAvailability
            self.database = gcp.sql.DatabaseInstance(
                "postgres", name=f"{g.name}-platform-db", project=g.project, region=g.region,
                database_version=d.version, deletion_protection=protect,
                settings={
                    # New PostgreSQL 16+ instances default to Enterprise Plus, which rejects custom tiers.
                    "edition": "ENTERPRISE", "tier": d.tier or DB_TIERS[profile.size],
                    "availability_type": "REGIONAL" if ha else "ZONAL",
                    "disk_type": "PD_SSD", "disk_size": d.diskSizeGb, "disk_autoresize": True,
                    "deletion_protection_enabled": protect, "retain_backups_on_delete": protect,
                    "ip_configuration": {"ipv4_enabled": False, "private_network": network_id,
                                         "ssl_mode": "ENCRYPTED_ONLY"},
                    "backup_configuration": {"enabled": True, "point_in_time_recovery_enabled": True,
                                             "backup_retention_settings": {"retained_backups": d.backupRetentionDays}},
                    "user_labels": labels,
                },
                opts=pulumi.ResourceOptions.merge(stateful, pulumi.ResourceOptions(depends_on=[connection])))
            admin = random.RandomPassword("postgres-admin", length=32, special=False, opts=child)
            user = gcp.sql.User("postgres-admin", instance=self.database.name, project=g.project, name=PG_ADMIN_USER,
                                password=admin.result, opts=child)
            # The address is handed out only once the admin user exists.
            address = pulumi.Output.all(self.database.private_ip_address, user.id).apply(lambda a: a[0])
            self.provided = {PG_ADDRESS: address, PG_ADMIN_PASSWORD: admin.result}

        # -- Kubernetes access ------------------------------------------------------------------
        self.kubeconfig = pulumi.Output.secret(pulumi.Output.all(
            self.cluster.name, self.cluster.endpoint, self.cluster.master_auth.apply(lambda m: m.cluster_ca_certificate)
        ).apply(lambda a: kubeconfig(a[0], a[1], a[2])))
        self.provider = k8s.Provider("gke", kubeconfig=self.kubeconfig, enable_server_side_apply=True,
                                     opts=pulumi.ResourceOptions(parent=self, depends_on=[self.system]))
        self.ready: list[pulumi.Resource] = [self.system]
        self.outputs = {
            "endpoint": self.cluster.endpoint,
            "region": g.region,
            "buckets": dict(names),
            "serviceAccounts": {layer: sa.email for layer, sa in self.accounts.items()},
        }
        if self.database:
            self.outputs["database"] = self.database.private_ip_address
        self.register_outputs({"name": g.name, "kubeconfig": self.kubeconfig, **self.outputs})


def create(spec: PlatformSpec, requests: ClusterRequests, caps: Capabilities) -> Cluster:
    c = GkeCluster(spec, requests, caps)
    return Cluster(name=spec.gke.name, provider=c.provider, kubeconfig=c.kubeconfig,
                   capabilities=caps, ready=c.ready, outputs=c.outputs, provided=c.provided)
