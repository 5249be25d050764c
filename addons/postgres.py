"""postgres: one operator-managed PostgreSQL cluster with a database and role per consuming layer.

The CloudNativePG operator (upstream chart, CRDs included) runs in the layer's namespace and manages
`Cluster/platform-db`: 1 instance on the laptop profile, 3 (streaming replicas, automated failover)
on production, on the default StorageClass. Each enabled layer that declares `databases` gets a
login role and a `Database` it owns; the role's password is generated (pulumi-random) into a
`kubernetes.io/basic-auth` Secret. Consumers copy it into their namespace from the generated value.
Extensions a layer asks for in its databases (`database_extensions()`, e.g. pgvector's `vector`) are listed
in each `Database`, and the cluster then runs CloudNativePG's `standard` image (the `minimal` one ships
only PostgreSQL's own contrib extensions).

Backups (`backups: true`, default): the Barman Cloud plugin (CNPG-I; the in-tree `barmanObjectStore`
is deprecated in 1.30 and removed in 1.31) archives WAL continuously and takes a daily base backup
into the object store's `postgres-backups` bucket, with generated keys on kind/existing and the
cluster's workload identity on the clouds. The plugin's TLS comes from cert-manager.

Managed (`managed: true`, on clusters whose capabilities offer it: RDS on EKS, Cloud SQL on GKE):
the cluster module creates the instance (private, encrypted, backed up by the cloud) with a
generated admin password; this layer then runs no operator and no in-cluster database, only a Job
that creates the same per-layer roles and databases there, and the extensions in them as the admin.
Consumers see the same interface (`host`, `port`, `password(db)`), the host being the instance's private
address.

Over 300 lines: a layer is one file, and this one has two modes (CloudNativePG in the cluster, a
cloud's managed instance) plus continuous backups.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from pydantic import Field

from addons.base import Layer
from modules.clusters.contract import PG_ADDRESS, PG_ADMIN_PASSWORD, PG_ADMIN_USER, ManagedDatabase, Request
from modules.shared.config import ConfigError, LayerOptions, Quantity
from modules.shared.k8s import resources, secret
from modules.shared.labels import MANAGED_BY
from modules.shared.markers import CLUSTER_VALUES, Generated
from modules.shared.offers import BucketStore, Database
from modules.shared.parts import KubeObject, Release, Workload, ref
from modules.shared.versions import VERSIONS

API = "postgresql.cnpg.io/v1"
CLUSTER = "platform-db"
PORT = 5432
BACKUP_BUCKET = "postgres-backups"
BACKUP_STORE = f"{CLUSTER}-backups"  # barmancloud.cnpg.io ObjectStore
BACKUP_SECRET = f"{CLUSTER}-backup-s3"
BARMAN_PLUGIN = "barman-cloud.cloudnative-pg.io"
ADMIN_SECRET = f"{CLUSTER}-admin"  # managed mode: the instance's admin login
ROLES_SCRIPT = Path(__file__).parent / "assets" / "postgres-roles.sh"
POSTGRES_UID = 26  # the postgres user of the CloudNativePG images

# operator (cpu, memory, memory limit) and per PostgreSQL instance
_SIZES = {
    "small": {"operator": ("50m", "96Mi", "256Mi"), "instance": ("100m", "256Mi", "1Gi"), "instances": 1,
               "storage": "5Gi"},
    "large": {"operator": ("100m", "128Mi", "512Mi"), "instance": ("1", "2Gi", "4Gi"), "instances": 3,
                   "storage": "50Gi"},
}


class PostgresOptions(LayerOptions):
    instances: int | None = Field(
        None, ge=1, le=9,
        description="1–9 PostgreSQL instances; more than 1 needs ≥ 2 nodes (null: 1 laptop, 3 production)")
    storageSize: Quantity | None = Field(None, description="volume per instance (null: 5Gi laptop, 50Gi production)")
    storageClass: str = Field("", description="StorageClass (empty: the cluster's default)")
    backups: bool = Field(
        True,
        description="WAL archiving and daily base backups to the object store (needs `object-store`)")
    backupSchedule: str = Field("0 0 2 * * *", pattern=r"^(\S+ ){5}\S+$",
                                description="base backup schedule, six-field cron, seconds first")
    backupRetention: str = Field(
        "30d", pattern=r"^[1-9][0-9]*[dwm]$",
        description="how long backups are kept: `<n>d`, `<n>w` or `<n>m`")
    managed: bool = Field(
        False,
        description="use the cloud's PostgreSQL instead of CloudNativePG: RDS on eks (`cnai:eks.database`), Cloud "
                    "SQL on gke (`cnai:gke.database`). The cloud backs it up; `instances`, `storage*` and `backup*` "
                    "do not apply")


class Postgres(Layer):
    name = "postgres"
    component = "Postgres"
    description = "CloudNativePG operator and the platform's PostgreSQL cluster, one database and role per layer."
    core = True
    chart = "cloudnative-pg"
    requires = ("cert-manager",)  # the backup plugin's TLS
    after = {"object-store": "objects"}  # backup credentials
    extra_charts = ("plugin-barman-cloud",)
    offers = (Database,)
    Options = PostgresOptions
    default_namespace = "postgres"

    def cluster_requests(self) -> list[Request]:
        return super().cluster_requests() + ([ManagedDatabase()] if self.options.managed else [])

    def validate(self) -> None:
        opts, caps, spec = self.options, self.caps, self.spec
        if opts.managed:
            if not caps.managed_postgres:
                raise ConfigError("cnai:layers.postgres.managed: this cluster offers no managed PostgreSQL "
                                  "(eks: RDS, gke: Cloud SQL); set it to false to run CloudNativePG in the cluster")
            for key in ("instances", "storageSize", "storageClass"):
                if getattr(opts, key):
                    raise ConfigError(f"cnai:layers.postgres.{key}: sizes the in-cluster CloudNativePG cluster; with "
                                      f"managed: true size the instance in cnai:{spec.environment}.database")
            return
        if opts.backups and self.peers.get(BucketStore) is None:
            raise ConfigError("cnai:layers.postgres.backups: backups go to the object-store layer, which is disabled "
                              "(enable it or set backups: false)")
        if opts.instances and opts.instances > 1 and caps.nodes < 2:
            raise ConfigError(f"cnai:layers.postgres.instances: {opts.instances} instances need at least 2 "
                              f"worker nodes for anti-affinity; this cluster has {caps.nodes}")

    # -- what other layers read ------------------------------------------------------------------
    @property
    def managed(self) -> bool:
        return self.options.managed

    @property
    def host(self) -> str | Generated:
        """The read-write endpoint: CloudNativePG's `-rw` service (always the primary), or the managed
        instance's private address (known at deploy time)."""
        if self.managed:
            return Generated(CLUSTER_VALUES, PG_ADDRESS, secret=False)
        return f"{CLUSTER}-rw.{self.namespace}.svc.cluster.local"

    @property
    def port(self) -> int:
        return PORT

    def database_names(self) -> list[str]:
        return sorted({db for layer in self.peers for db in layer.database_needs()})

    def extensions(self) -> dict[str, tuple[str, ...]]:
        """Database -> the extensions the enabled layers ask for in it (`Layer.database_extensions()`)."""
        wanted: dict[str, set[str]] = {}
        for layer in self.peers:
            for db, names in layer.database_extensions().items():
                wanted.setdefault(db, set()).update(names)
        return {db: tuple(sorted(names)) for db, names in sorted(wanted.items()) if names}

    @property
    def image(self) -> str:
        """The instances' image: CloudNativePG's `standard` (pgvector, PGAudit, failover slots) when a layer asks
        for an extension, else `minimal`. Switching rolls the cluster's instances."""
        return VERSIONS.images["postgresql-standard" if self.extensions() else "postgresql"]

    @staticmethod
    def secret_name(database: str) -> str:
        """The role's basic-auth Secret (Kubernetes names allow no underscore; PostgreSQL names do)."""
        return f"{CLUSTER}-{database.replace('_', '-')}"

    def password(self, database: str) -> Generated:
        """The generated password of the role owning `database` (role name = database name)."""
        return Generated(self.name, f"role-{database}")

    def bucket_needs(self) -> dict[str, str]:
        return {BACKUP_BUCKET: "rw"} if self.options.backups and not self.options.managed else {}

    def service_accounts(self) -> tuple[tuple[str, str], ...]:
        return ((self.namespace, CLUSTER),)  # CloudNativePG runs instances as the cluster's name

    # -- deployment ------------------------------------------------------------------------------
    @property
    def instances(self) -> int:
        return self.options.instances or _SIZES[self.profile.size]["instances"]

    def credentials(self) -> list[str]:
        return [f"role-{db}" for db in self.database_names()]

    def releases(self) -> list[Release]:
        if self.managed:
            return []
        out = [Release(self.chart, self.name, self.values())]
        if self.options.backups:
            # Same namespace as the operator, which the plugin requires.
            out.append(Release("plugin-barman-cloud", "barman-cloud", {
                "resources": resources(*_SIZES[self.profile.size]["operator"]), "crds": {"create": True}}))
        return out

    def values(self) -> dict[str, Any]:
        size = _SIZES[self.profile.size]
        return {
            "replicaCount": self.profile.replicas,
            "resources": resources(*size["operator"]),
            "crds": {"create": True},
            "config": {"clusterWide": True},
        }

    def workloads(self) -> list[Workload]:
        if self.managed:
            return []  # the instance runs outside the cluster; the roles Job is short-lived
        size = _SIZES[self.profile.size]
        op, inst = size["operator"], size["instance"]
        out = [Workload("cnpg-operator", op[0], op[1], self.profile.replicas),
               Workload(f"{CLUSTER}-instance", inst[0], inst[1], self.instances, rendered=False)]
        if self.options.backups:
            out.append(Workload("barman-cloud-plugin", op[0], op[1]))
        return out

    def _backup_objects(self) -> tuple[list[KubeObject], dict[str, Any]]:
        """The ObjectStore (and its key Secret), and the Cluster fields that archive to it."""
        store = self.peers.need(BucketStore).access(self.name)
        ns, labels = self.namespace, dict(MANAGED_BY)
        out: list[KubeObject] = []
        config: dict[str, Any] = {"destinationPath": store.url(BACKUP_BUCKET),
                                  "wal": {"compression": "gzip"}, "data": {"compression": "gzip"}}
        spec: dict[str, Any] = {"configuration": config, "retentionPolicy": self.options.backupRetention}
        if store.kind == "gcs":
            config["googleCredentials"] = {"gkeEnvironment": True}
        elif store.static_keys:
            keys = {"ACCESS_KEY_ID": store.access_key, "ACCESS_SECRET_KEY": store.secret_key}
            out.append(KubeObject(secret(BACKUP_SECRET, ns, keys), phase="after-peers"))
            config["s3Credentials"] = {"accessKeyId": {"name": BACKUP_SECRET, "key": "ACCESS_KEY_ID"},
                                       "secretAccessKey": {"name": BACKUP_SECRET, "key": "ACCESS_SECRET_KEY"}}
        else:
            config["s3Credentials"] = {"inheritFromIAMRole": True}
        if store.endpoint:
            config["endpointURL"] = store.endpoint
            # S3-compatible stores reject the checksums newer AWS SDKs send by default.
            spec["instanceSidecarConfiguration"] = {"env": [
                {"name": "AWS_REQUEST_CHECKSUM_CALCULATION", "value": "when_required"},
                {"name": "AWS_RESPONSE_CHECKSUM_VALIDATION", "value": "when_required"}]}
        out.append(KubeObject({"apiVersion": "barmancloud.cnpg.io/v1", "kind": "ObjectStore",
                               "metadata": {"name": BACKUP_STORE, "namespace": ns, "labels": labels}, "spec": spec},
                              phase="after-all", wait_for=tuple(o.ref for o in out)))
        cluster_fields: dict[str, Any] = {"plugins": [{"name": BARMAN_PLUGIN, "isWALArchiver": True,
                                                       "parameters": {"barmanObjectName": BACKUP_STORE}}]}
        if store.annotations:  # the instances' ServiceAccount carries the cloud identity
            cluster_fields["serviceAccountTemplate"] = {"metadata": {"annotations": dict(store.annotations)}}
        return out, cluster_fields

    def _managed_objects(self) -> list[KubeObject]:
        """Role Secrets, the admin Secret and the Job that creates roles and databases on the instance."""
        ns = self.namespace
        dbs = self.database_names()
        out = [KubeObject(secret(self.secret_name(db), ns, {"username": db, "password": self.password(db)},
                                 "kubernetes.io/basic-auth")) for db in dbs]
        out.append(KubeObject(secret(ADMIN_SECRET, ns, {
            "host": self.host, "username": PG_ADMIN_USER,
            "password": Generated(CLUSTER_VALUES, PG_ADMIN_PASSWORD)}, "kubernetes.io/basic-auth")))
        script = ROLES_SCRIPT.read_text()
        labels = dict(MANAGED_BY)
        out.append(KubeObject({"apiVersion": "v1", "kind": "ConfigMap",
                               "metadata": {"name": f"{CLUSTER}-roles", "namespace": ns, "labels": labels},
                               "data": {"roles.sh": script}}))
        extensions = {db: exts for db, exts in self.extensions().items() if db in dbs}
        # A new name whenever the roles, their extensions or the script change: a Job's pod template cannot be
        # updated.
        wanted = "".join(f" {db}:{','.join(exts)}" for db, exts in extensions.items())
        digest = hashlib.sha256((" ".join(dbs) + wanted + script).encode()).hexdigest()[:8]
        admin = lambda key: {"secretKeyRef": {"name": ADMIN_SECRET, "key": key}}  # noqa: E731
        env = [{"name": "PGHOST", "valueFrom": admin("host")}, {"name": "PGUSER", "valueFrom": admin("username")},
               {"name": "PGPASSWORD", "valueFrom": admin("password")}, {"name": "PGDATABASE", "value": "postgres"},
               {"name": "PGSSLMODE", "value": "require"}, {"name": "PGCONNECT_TIMEOUT", "value": "10"},
               {"name": "ROLES", "value": " ".join(dbs)}]
        env += [{"name": f"PASSWORD_{db.upper()}",
                 "valueFrom": {"secretKeyRef": {"name": self.secret_name(db), "key": "password"}}} for db in dbs]
        env += [{"name": f"EXTENSIONS_{db.upper()}", "value": " ".join(exts)} for db, exts in extensions.items()]
        job = {
            "apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": f"{CLUSTER}-roles-{digest}", "namespace": ns, "labels": labels},
            "spec": {
                "backoffLimit": 10,  # the instance may still be settling (DNS, security group) on first run
                "activeDeadlineSeconds": 900,
                "template": {"spec": {
                    "restartPolicy": "OnFailure",
                    "securityContext": {"runAsNonRoot": True, "runAsUser": POSTGRES_UID,
                                        "seccompProfile": {"type": "RuntimeDefault"}},
                    "containers": [{
                        "name": "roles", "image": VERSIONS.images["postgresql"],
                        "command": ["bash", "/scripts/roles.sh"], "env": env,
                        "resources": resources("50m", "64Mi", "128Mi"),
                        "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
                        "volumeMounts": [{"name": "scripts", "mountPath": "/scripts"}],
                    }],
                    "volumes": [{"name": "scripts", "configMap": {"name": f"{CLUSTER}-roles"}}],
                }},
            },
        }
        return out + [KubeObject(job, wait_for=tuple(o.ref for o in out))]

    def objects(self) -> list[KubeObject]:
        if self.managed:
            return self._managed_objects()
        size = _SIZES[self.profile.size]
        ns = self.namespace
        meta = lambda name, **extra: {"name": name, "namespace": ns, "labels": {**MANAGED_BY, **extra}}  # noqa: E731
        out: list[KubeObject] = []
        backup_fields: dict[str, Any] = {}
        if self.options.backups:
            backup, backup_fields = self._backup_objects()
            out += backup
        roles = []
        for db in self.database_names():
            name = self.secret_name(db)
            # cnpg.io/reload: the operator re-applies the password when the Secret changes.
            out.append(KubeObject(secret(name, ns, {"username": db, "password": self.password(db)},
                                         "kubernetes.io/basic-auth", labels={"cnpg.io/reload": "true"})))
            roles.append({"name": db, "ensure": "present", "login": True, "passwordSecret": {"name": name}})
        storage: dict[str, Any] = {"size": self.options.storageSize or size["storage"]}
        if self.options.storageClass:
            storage["storageClass"] = self.options.storageClass
        cluster = {
            "apiVersion": API, "kind": "Cluster", "metadata": meta(CLUSTER),
            "spec": {
                "instances": self.instances,
                "imageName": self.image,
                "storage": storage,
                "resources": resources(*size["instance"]),
                "enablePDB": self.instances > 1,
                "managed": {"roles": roles},
                **backup_fields,
            },
        }
        # The cluster holds every layer's data: where the profile protects state, `pulumi destroy` must be deliberate.
        out.append(KubeObject(cluster, phase="after-install", protect=self.profile.protect_state,
                              wait_for=tuple(o.ref for o in out)))
        extensions = self.extensions()
        for db in self.database_names():
            # retain: deleting the resource keeps the data; dropping a database is a manual act.
            spec: dict[str, Any] = {"name": db, "owner": db, "cluster": {"name": CLUSTER}, "ensure": "present",
                                    "databaseReclaimPolicy": "retain"}
            if extensions.get(db):  # created by the operator as superuser, at the image's default version
                spec["extensions"] = [{"name": e, "ensure": "present"} for e in extensions[db]]
            database = {"apiVersion": API, "kind": "Database", "metadata": meta(f"{self.secret_name(db)}-db"),
                        "spec": spec}
            out.append(KubeObject(database, phase="after-install", wait_for=(ref(cluster),)))
        if self.options.backups:
            out.append(KubeObject({
                "apiVersion": API, "kind": "ScheduledBackup",
                "metadata": {"name": f"{CLUSTER}-daily", "namespace": ns, "labels": dict(MANAGED_BY)},
                "spec": {"cluster": {"name": CLUSTER}, "schedule": self.options.backupSchedule, "immediate": True,
                         "method": "plugin", "pluginConfiguration": {"name": BARMAN_PLUGIN},
                         "backupOwnerReference": "self"},
            }, phase="after-install", wait_for=(ref(cluster),)))
        return out

    def outputs(self) -> dict[str, Any]:
        return {"host": self.host, "port": PORT, "databases": self.database_names(),
                "extensions": {db: list(exts) for db, exts in self.extensions().items()},
                "mode": "managed" if self.managed else "cloudnative-pg"}
