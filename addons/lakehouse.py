"""lakehouse: Apache Iceberg tables for every team, behind an Iceberg REST catalog (Apache Polaris) and a SQL
engine (Trino), on the platform's PostgreSQL and object store.

- Polaris keeps catalog metadata in PostgreSQL (database `polaris`, relational-jdbc); the realm is
  bootstrapped by Polaris' admin tool before the server starts, then a setup Job creates the catalog `lake`
  (warehouse in the `lake` bucket), a principal per team with grants on the team's Iceberg namespace, and a
  principal for Trino with the whole catalog. Every credential is generated here and reaches pods as Secrets.
- Trino (single node on the laptop) has catalog `lake` pointing at Polaris (OAuth2 client credentials).
- Team namespaces get Secret `lakehouse-client` (their principal's credential and Iceberg namespace; where
  the store takes keys, the client identity's S3 keys) and, on clouds, ServiceAccount `lakehouse-client`
  bound to the client identity (the `lake` bucket). `Lakehouse.client_env()` wires PyIceberg, Spark and Ray.
The catalog does not vend storage credentials: SeaweedFS has no STS, and on clouds every engine has its own
identity (docs/layers/lakehouse.md).

Over 300 lines: two releases, the two Jobs between them and the team objects share one plan of names and
credentials; split up, the order and the names would have to be kept in step across files.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from pydantic import Field

from addons.base import Layer
from modules.clusters.contract import WorkloadIdentity
from modules.shared.config import LayerOptions, Team
from modules.shared.k8s import resources, secret
from modules.shared.labels import MANAGED_BY
from modules.shared.markers import Generated, Template
from modules.shared.offers import BucketStore, Database, Metrics, ModelServing, Queueing, RayRuntime, Tracking
from modules.shared.offers import Lakehouse as LakehouseOffer
from modules.shared.parts import KubeObject, Release, Workload, ref
from modules.shared.versions import VERSIONS

POLARIS = "polaris"
TRINO = "trino"
WAREHOUSE = "lake"  # the catalog name; clients pass it as `warehouse`
BUCKET = "lake"
REALM = "POLARIS"
ROOT = "root"
CLIENT = "lakehouse-client"  # Secret and ServiceAccount in team namespaces
DB = "polaris"
DB_SECRET = "polaris-db"
TOKEN_SECRET = "polaris-token-broker"
STORAGE_SECRET = "polaris-storage"
BOOTSTRAP_SECRET = "polaris-bootstrap"
SETUP = "lakehouse-setup"  # its plan Secret, script ConfigMap and Job
TRINO_SECRET = "trino-lakehouse"
POLARIS_PORT, TRINO_PORT = 8181, 8080
ASSETS = Path(__file__).parent / "assets"
SCRIPT = ASSETS / "lakehouse-setup.py"
EXAMPLE = "lakehouse-example"
EXAMPLE_TABLE = "iris"
RAY_UID = 1000  # USER of the Ray image (numeric)
MLSERVER_UID = 1000  # USER of the MLServer image
_RESTRICTED = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}
SCOPE = "PRINCIPAL_ROLE:ALL"
POLARIS_UID = 10000  # the Polaris and admin-tool images' user (by name in the image: runAsNonRoot needs the id)
# What a team's principal may do in its own Iceberg namespace: manage it and its tables, read and write data.
TEAM_GRANTS = ("NAMESPACE_FULL_METADATA", "TABLE_FULL_METADATA", "TABLE_READ_DATA", "TABLE_WRITE_DATA")

# (cpu, memory, memory limit); Trino's heap must leave ~0.7 GiB for code cache and native memory.
_SIZES = {
    "small": {"polaris": ("100m", "512Mi", "1Gi"), "trino": ("250m", "1536Mi", "1792Mi"), "trino-heap": "1G",
              "query-per-node": "384MB", "headroom": "256MB", "query": "384MB", "workers": 0,
              "job": ("50m", "64Mi", "256Mi"), "admin-tool": ("100m", "384Mi", "768Mi")},
    "large": {"polaris": ("500m", "2Gi", "4Gi"), "trino": ("2", "8Gi", "8Gi"), "trino-heap": "6G",
              "query-per-node": "2GB", "headroom": "1536MB", "query": "8GB", "workers": 2,
              "job": ("50m", "64Mi", "256Mi"), "admin-tool": ("100m", "384Mi", "768Mi")},
}


class LakehouseOptions(LayerOptions):
    example: bool = Field(
        True,
        description="the data example in the first team namespace: raw data into the bucket, a RayJob writing an "
                    "Iceberg table (with the ray layer), training from Trino into MLflow (with mlflow), served by "
                    "KServe (with kserve)")
    trinoWorkers: int | None = Field(
        None, ge=0, le=100,
        description="Trino workers (null: the profile's, 0 on the laptop: the coordinator also runs queries; 2 in "
                    "production)")


def team_schema(team: Team) -> str:
    """The team's Iceberg namespace (and Trino schema): SQL identifiers, so dashes become underscores (team
    names are DNS labels: no underscores, so no two teams collide)."""
    return team.name.replace("-", "_")


class Lakehouse(Layer):
    name = "lakehouse"
    component = "Lakehouse"
    description = "Iceberg tables per team: the Apache Polaris REST catalog and Trino, on PostgreSQL and object store."
    chart = POLARIS
    extra_charts = (TRINO,)
    requires = ("postgres", "object-store")
    # Polaris renders its ServiceMonitor only when the Prometheus CRDs exist; client Secrets go into team
    # namespaces; the example's RayJob, training Job and InferenceService need those layers' CRDs and objects.
    after = {"observability": "install", "teams": "objects", "ray": "objects", "mlflow": "objects",
             "kserve": "objects", "kueue": "objects"}
    offers = (LakehouseOffer,)
    databases = (DB,)
    buckets = {BUCKET: "rw"}
    Options = LakehouseOptions
    default_namespace = "lakehouse"

    # -- what it offers ------------------------------------------------------------------------------
    @property
    def catalog_uri(self) -> str:
        return f"http://{POLARIS}.{self.namespace}.svc.cluster.local:{POLARIS_PORT}/api/catalog"

    @property
    def warehouse(self) -> str:
        return WAREHOUSE

    @property
    def trino_uri(self) -> str:
        return f"http://{TRINO}.{self.namespace}.svc.cluster.local:{TRINO_PORT}"

    @property
    def client_secret(self) -> str:
        return CLIENT

    @property
    def client_service_account(self) -> str:
        return CLIENT

    def team_schema(self, team: Team) -> str:
        return team_schema(team)

    def client_env(self) -> list[dict[str, Any]]:
        store = self._store(CLIENT_IDENTITY)

        def ref(key: str) -> dict[str, Any]:
            return {"valueFrom": {"secretKeyRef": {"name": CLIENT, "key": key, "optional": True}}}

        py = f"PYICEBERG_CATALOG__{WAREHOUSE.upper()}__"
        env: list[dict[str, Any]] = [
            {"name": "LAKEHOUSE_CATALOG_URI", "value": self.catalog_uri},
            {"name": "LAKEHOUSE_WAREHOUSE", "value": WAREHOUSE},
            {"name": "LAKEHOUSE_SCOPE", "value": SCOPE},
            {"name": "LAKEHOUSE_TRINO_URI", "value": self.trino_uri},
            {"name": "LAKEHOUSE_CREDENTIAL", **ref("credential")},
            {"name": "LAKEHOUSE_NAMESPACE", **ref("namespace")},
            {"name": f"{py}TYPE", "value": "rest"},
            {"name": f"{py}URI", "value": self.catalog_uri},
            {"name": f"{py}WAREHOUSE", "value": WAREHOUSE},
            {"name": f"{py}SCOPE", "value": SCOPE},
            {"name": f"{py}CREDENTIAL", **ref("credential")},
        ]
        if store.kind == "s3":
            env.append({"name": "LAKEHOUSE_S3_REGION", "value": store.region})
            env.append({"name": f"{py}S3__REGION", "value": store.region})
        if store.endpoint:
            env += [{"name": "LAKEHOUSE_S3_ENDPOINT", "value": store.endpoint},
                    {"name": f"{py}S3__ENDPOINT", "value": store.endpoint}]
        if store.static_keys:
            env += [{"name": "LAKEHOUSE_S3_ACCESS_KEY_ID", **ref("s3-access-key-id")},
                    {"name": "LAKEHOUSE_S3_SECRET_ACCESS_KEY", **ref("s3-secret-access-key")},
                    {"name": f"{py}S3__ACCESS_KEY_ID", **ref("s3-access-key-id")},
                    {"name": f"{py}S3__SECRET_ACCESS_KEY", **ref("s3-secret-access-key")}]
        return env

    # -- identities, credentials -----------------------------------------------------------------
    def service_accounts(self) -> tuple[tuple[str, str], ...]:
        return ((self.namespace, POLARIS), (self.namespace, TRINO))

    def identities(self) -> list[WorkloadIdentity]:
        """Its own (Polaris and Trino), and the one team clients use (Spark, Ray, notebooks): the `lake`
        bucket, through ServiceAccount `lakehouse-client` in each team namespace."""
        out = super().identities()
        teams = self.teams()
        if teams:
            out.append(WorkloadIdentity(CLIENT_IDENTITY, tuple((t.namespace, CLIENT) for t in teams),
                                        {BUCKET: "rw"}))
        return out

    def credentials(self) -> list[str]:
        return ["root-secret", "token-key", "trino-secret"] + [f"team-{t.name}-secret" for t in self.teams()]

    def _store(self, identity: str | None = None):
        return self.peers.need(BucketStore).access(identity or self.name)

    # -- releases --------------------------------------------------------------------------------
    def _size(self) -> dict[str, Any]:
        return _SIZES[self.profile.size]

    @property
    def workers(self) -> int:
        w = self.options.trinoWorkers
        return self._size()["workers"] if w is None else w

    def releases(self) -> list[Release]:
        setup = tuple(o.manifest for o in self._setup_objects())
        return [Release(POLARIS, POLARIS, self.polaris_values(), then=setup),
                Release(TRINO, TRINO, self.trino_values())]

    def values(self) -> dict[str, Any]:
        return self.polaris_values()

    def polaris_values(self) -> dict[str, Any]:
        store = self._store()
        values: dict[str, Any] = {
            "replicaCount": self.profile.replicas,
            "resources": resources(*self._size()["polaris"]),
            "persistence": {"type": "relational-jdbc", "relationalJdbc": {"secret": {"name": DB_SECRET}}},
            # One shared token key: with generated per-pod keys, tokens fail on the other replicas.
            "authentication": {"tokenBroker": {"type": "symmetric-key", "secret": {
                "name": TOKEN_SECRET, "symmetricKey": {"secretKey": "symmetric.key"}}}},
            "realmContext": {"realms": [REALM]},
            "serviceAccount": {"create": True, "name": POLARIS, "annotations": dict(store.annotations)},
            "serviceMonitor": {"enabled": self.peers.get(Metrics) is not None},
        }
        if store.kind == "s3":
            values["extraEnv"] = [{"name": "AWS_REGION", "value": store.region}]
        if store.static_keys:
            values["storage"] = {"secret": {"name": STORAGE_SECRET, "awsAccessKeyId": "AWS_ACCESS_KEY_ID",
                                            "awsSecretAccessKey": "AWS_SECRET_ACCESS_KEY"}}
        return values

    def trino_catalog(self) -> str:
        """Trino's `lake` catalog: Iceberg through Polaris, data files through Trino's own identity."""
        store = self._store()
        lines = [
            "connector.name=iceberg",
            "iceberg.catalog.type=rest",
            f"iceberg.rest-catalog.uri={self.catalog_uri}",
            f"iceberg.rest-catalog.warehouse={WAREHOUSE}",
            "iceberg.rest-catalog.security=OAUTH2",
            "iceberg.rest-catalog.oauth2.credential=${ENV:LAKEHOUSE_CREDENTIAL}",
            f"iceberg.rest-catalog.oauth2.scope={SCOPE}",
            f"iceberg.rest-catalog.oauth2.server-uri={self.catalog_uri}/v1/oauth/tokens",
        ]
        if store.kind == "gcs":
            lines.append("fs.native-gcs.enabled=true")
        else:
            lines += ["fs.native-s3.enabled=true", f"s3.region={store.region}"]
            if store.endpoint:
                lines += [f"s3.endpoint={store.endpoint}", "s3.path-style-access=true"]
            if store.static_keys:
                lines += ["s3.aws-access-key=${ENV:AWS_ACCESS_KEY_ID}",
                          "s3.aws-secret-key=${ENV:AWS_SECRET_ACCESS_KEY}"]
        return "\n".join(lines) + "\n"

    def trino_values(self) -> dict[str, Any]:
        size, store = self._size(), self._store()
        single = self.workers == 0
        node = {
            "jvm": {"maxHeapSize": size["trino-heap"]},
            "config": {"query": {"maxMemoryPerNode": size["query-per-node"]},
                       "memory": {"heapHeadroomPerNode": size["headroom"]}},
            "resources": resources(*size["trino"]),
        }
        return {
            "server": {"workers": self.workers, "config": {"query": {"maxMemory": size["query"]}}},
            # Single node: the coordinator runs the queries too.
            "coordinator": {**node, "config": {**node["config"], "nodeScheduler": {"includeCoordinator": single}}},
            "worker": node,
            "catalogs": {WAREHOUSE: self.trino_catalog(), "tpch": "connector.name=tpch\ntpch.splits-per-node=4\n"},
            # `${ENV:...}` in the catalog reads these: the catalog principal's credential and the S3 keys.
            "envFrom": [{"secretRef": {"name": TRINO_SECRET}}],
            "serviceAccount": {"create": True, "name": TRINO, "annotations": dict(store.annotations)},
            "securityContext": {"runAsUser": 1000, "runAsGroup": 1000, "runAsNonRoot": True,
                                "seccompProfile": {"type": "RuntimeDefault"}},
        }

    # -- objects ---------------------------------------------------------------------------------
    def _plan(self) -> tuple[str, dict[str, Generated]]:
        """The setup Job's plan (JSON with `${...}` fields for the generated secrets) and the digest of
        everything but the secrets (a new plan gets a new Job)."""
        store = self._store()
        location = store.url(BUCKET, "warehouse")
        storage: dict[str, Any] = {"storageType": "GCS" if store.kind == "gcs" else "S3",
                                   "allowedLocations": [store.url(BUCKET) + "/"]}
        if store.kind == "s3":
            # No STS to vend credentials from: every engine reaches the bucket with its own identity.
            storage.update(region=store.region, stsUnavailable=True)
            if store.endpoint:
                storage.update(endpoint=store.endpoint, pathStyleAccess=True)
        principals = [{"name": TRINO, "clientId": TRINO, "clientSecret": "${trino}",
                       "catalogGrants": ["CATALOG_MANAGE_CONTENT"]}]
        refs: dict[str, Generated] = {"root": Generated(self.name, "root-secret"),
                                      "trino": Generated(self.name, "trino-secret")}
        for t in self.teams():
            key = f"team_{t.name.replace('-', '_')}"
            refs[key] = Generated(self.name, f"team-{t.name}-secret")
            principals.append({"name": f"team-{t.name}", "clientId": f"team-{t.name}", "clientSecret": f"${{{key}}}",
                               "namespace": team_schema(t), "namespaceGrants": list(TEAM_GRANTS)})
        shared = sorted({n for layer in self.peers for n in layer.lakehouse_namespaces()})
        plan = {"polaris": f"http://{POLARIS}.{self.namespace}.svc.cluster.local:{POLARIS_PORT}", "realm": REALM,
                "namespaces": shared,
                "root": {"clientId": ROOT, "clientSecret": "${root}"},
                "catalog": {"type": "INTERNAL", "name": WAREHOUSE, "properties": {"default-base-location": location},
                            "storageConfigInfo": storage},
                "principals": principals}
        return json.dumps(plan, indent=1, sort_keys=True), refs

    def _setup_objects(self) -> list[KubeObject]:
        """The setup Job (after the Polaris release): its plan Secret, its script, and the Job itself."""
        ns, labels = self.namespace, dict(MANAGED_BY)
        plan, refs = self._plan()
        script = SCRIPT.read_text()
        digest = hashlib.sha256((plan + script).encode()).hexdigest()[:8]
        cpu, mem, limit = self._size()["job"]
        job = {
            "apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": f"{SETUP}-{digest}", "namespace": ns, "labels": labels},
            "spec": {
                "backoffLimit": 6, "activeDeadlineSeconds": 900,
                "template": {"spec": {
                    "restartPolicy": "OnFailure",
                    "securityContext": {"runAsNonRoot": True, "runAsUser": 65534,
                                        "seccompProfile": {"type": "RuntimeDefault"}},
                    "containers": [{
                        "name": "setup", "image": VERSIONS.images["python"],
                        "command": ["python3", "/scripts/setup.py"],
                        "resources": resources(cpu, mem, limit),
                        "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]},
                                            "readOnlyRootFilesystem": True},
                        "volumeMounts": [{"name": "scripts", "mountPath": "/scripts"},
                                         {"name": "plan", "mountPath": "/plan"}],
                    }],
                    "volumes": [{"name": "scripts", "configMap": {"name": SETUP}},
                                {"name": "plan", "secret": {"secretName": SETUP}}],
                }},
            },
        }
        return [KubeObject(secret(SETUP, ns, {"plan.json": Template.of(plan, **refs)})),
                KubeObject({"apiVersion": "v1", "kind": "ConfigMap",
                            "metadata": {"name": SETUP, "namespace": ns, "labels": labels},
                            "data": {"setup.py": script}}),
                KubeObject(job)]

    def _bootstrap_job(self) -> dict[str, Any]:
        """Polaris' admin tool bootstraps the realm and its root principal in PostgreSQL before the server
        starts (idempotent: a bootstrapped realm is left as it is)."""
        db = lambda key: {"secretKeyRef": {"name": DB_SECRET, "key": key}}  # noqa: E731
        env = [{"name": "polaris.persistence.type", "value": "relational-jdbc"},
               {"name": "quarkus.datasource.username", "valueFrom": db("username")},
               {"name": "quarkus.datasource.password", "valueFrom": db("password")},
               {"name": "quarkus.datasource.jdbc.url", "valueFrom": db("jdbcUrl")},
               {"name": "ROOT_SECRET", "valueFrom": {"secretKeyRef": {"name": BOOTSTRAP_SECRET, "key": "root"}}}]
        cpu, mem, limit = self._size()["admin-tool"]
        return {
            "apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": "polaris-bootstrap", "namespace": self.namespace, "labels": dict(MANAGED_BY)},
            "spec": {
                "backoffLimit": 10,  # PostgreSQL's role may still be on its way
                "activeDeadlineSeconds": 900,
                "template": {"spec": {
                    "restartPolicy": "OnFailure",
                    "securityContext": {"runAsNonRoot": True, "runAsUser": POLARIS_UID,
                                        "seccompProfile": {"type": "RuntimeDefault"}},
                    "containers": [{
                        "name": "bootstrap", "image": VERSIONS.images["polaris-admin-tool"],
                        "args": ["bootstrap", "-r", REALM, "-c", f"{REALM},{ROOT},$(ROOT_SECRET)"],
                        "env": env, "resources": resources(cpu, mem, limit),
                        "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
                    }],
                }},
            },
        }

    def objects(self) -> list[KubeObject]:
        ns = self.namespace
        pg, store = self.peers.need(Database), self._store()
        jdbc = (Template.of(f"jdbc:postgresql://${{host}}:{pg.port}/{DB}", host=pg.host)
                if isinstance(pg.host, Generated) else f"jdbc:postgresql://{pg.host}:{pg.port}/{DB}")
        db_secret = secret(DB_SECRET, ns, {"username": DB, "password": pg.password(DB), "jdbcUrl": jdbc})
        out = [KubeObject(db_secret, phase="before-install"),
               KubeObject(secret(TOKEN_SECRET, ns, {"symmetric.key": Generated(self.name, "token-key")}),
                          phase="before-install"),
               KubeObject(secret(BOOTSTRAP_SECRET, ns, {"root": Generated(self.name, "root-secret")}),
                          phase="before-install")]
        out.append(KubeObject(self._bootstrap_job(), phase="before-install", wait_for=tuple(o.ref for o in out)))
        trino_env: dict[str, Any] = {"LAKEHOUSE_CREDENTIAL": Template.of(f"{TRINO}:${{s}}",
                                                                           s=Generated(self.name, "trino-secret"))}
        if store.static_keys:
            keys = {"AWS_ACCESS_KEY_ID": store.access_key, "AWS_SECRET_ACCESS_KEY": store.secret_key}
            out.append(KubeObject(secret(STORAGE_SECRET, ns, keys), phase="before-install"))
            trino_env.update(keys)
        out.append(KubeObject(secret(TRINO_SECRET, ns, trino_env), phase="before-install"))
        out += self._team_objects()
        out += self._example()
        return out

    def _team_objects(self) -> list[KubeObject]:
        client = self._store(CLIENT_IDENTITY) if self.teams() else None
        out = []
        for t in self.teams():
            data: dict[str, Any] = {
                "client-id": f"team-{t.name}", "client-secret": Generated(self.name, f"team-{t.name}-secret"),
                "credential": Template.of(f"team-{t.name}:${{s}}", s=Generated(self.name, f"team-{t.name}-secret")),
                "namespace": team_schema(t)}
            if client.static_keys:
                data.update({"s3-access-key-id": client.access_key, "s3-secret-access-key": client.secret_key})
            out.append(KubeObject(secret(CLIENT, t.namespace, data), phase="after-peers"))
            sa = {"apiVersion": "v1", "kind": "ServiceAccount",
                  "metadata": {"name": CLIENT, "namespace": t.namespace, "labels": dict(MANAGED_BY)}}
            if client.annotations:
                sa["metadata"]["annotations"] = dict(client.annotations)
            out.append(KubeObject(sa, phase="after-peers"))
        return out

    # -- the example --------------------------------------------------------------------------------
    def example_model_path(self, team: Team) -> str:
        return f"examples/{team.name}/lakehouse-{EXAMPLE_TABLE}"

    def _example(self) -> list[KubeObject]:
        """Raw data → Ray Data → Iceberg (RayJob), Iceberg → Trino → training → MLflow (Job), MLflow → KServe.
        Each hop needs its layer; neither Job is awaited (the RayJob and the training run concurrently, the
        training waits for the table; the InferenceService's storage initializer retries until the model
        exists), so `pulumi up` does not hang on the data."""
        teams, ray = self.teams(), self.peers.get(RayRuntime)
        if not (self.options.example and teams and ray):
            return []
        team = teams[0]
        ns, labels = team.namespace, dict(MANAGED_BY)
        queueing = self.peers.get(Queueing)
        queued = {**labels, **(queueing.workload_labels() if queueing else {})}
        scripts = {"ingest.py": (ASSETS / "lakehouse-example-ingest.py").read_text(),
                   "train.py": (ASSETS / "lakehouse-example-train.py").read_text()}
        digest = hashlib.sha256("".join(scripts.values()).encode()).hexdigest()[:8]
        store = self._store(CLIENT_IDENTITY)
        out = [KubeObject({"apiVersion": "v1", "kind": "ConfigMap",
                           "metadata": {"name": EXAMPLE, "namespace": ns, "labels": labels}, "data": scripts},
                          phase="after-all")]
        # The RayJob runs as the team's client ServiceAccount, with its Secret's credentials: both first.
        client = tuple(ref({"kind": kind, "metadata": {"name": CLIENT, "namespace": ns}})
                       for kind in ("Secret", "ServiceAccount"))
        out.append(KubeObject(self._example_rayjob(ray.ray_image, ns, queued, digest, store), phase="after-all",
                              ignore_changes=("spec.suspend",), wait_for=client))
        tracking = self.peers.get(Tracking)
        if tracking is None:
            return out
        env = [{"name": "LAKEHOUSE_TRINO_URI", "value": self.trino_uri},
               {"name": "LAKEHOUSE_NAMESPACE", "valueFrom": {"secretKeyRef": {"name": CLIENT, "key": "namespace"}}},
               {"name": "TABLE", "value": EXAMPLE_TABLE},
               {"name": "MLFLOW_TRACKING_URI", "value": tracking.tracking_uri},
               {"name": "MODEL_PATH", "value": self.example_model_path(team)},
               {"name": "HOME", "value": "/tmp"}]
        admin = tracking.admin_password()
        train_spec: dict[str, Any] = {
            "restartPolicy": "OnFailure",
            "securityContext": {"runAsNonRoot": True, "runAsUser": MLSERVER_UID,
                                "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [{"name": "train", "image": VERSIONS.images["mlserver"],
                            "command": ["python", "/scripts/train.py"], "env": env,
                            "resources": resources("100m", "384Mi", "1Gi"), "securityContext": dict(_RESTRICTED),
                            "volumeMounts": [{"name": "scripts", "mountPath": "/scripts"},
                                             {"name": "tmp", "mountPath": "/tmp"}]}],
            "volumes": [{"name": "scripts", "configMap": {"name": EXAMPLE}}, {"name": "tmp", "emptyDir": {}}],
        }
        if admin is not None:  # MLflow with logins: the example logs as its admin
            out.append(KubeObject(secret(f"{EXAMPLE}-mlflow", ns, {"MLFLOW_TRACKING_USERNAME": "admin",
                                                                   "MLFLOW_TRACKING_PASSWORD": admin}),
                                  phase="after-all"))
            train_spec["containers"][0]["envFrom"] = [{"secretRef": {"name": f"{EXAMPLE}-mlflow"}}]
        job = {"apiVersion": "batch/v1", "kind": "Job",
               "metadata": {"name": f"{EXAMPLE}-train-{digest}", "namespace": ns, "labels": queued,
                            "annotations": {"pulumi.com/skipAwait": "true"}},
               "spec": {"backoffLimit": 3, "activeDeadlineSeconds": 3600, "template": {"spec": train_spec}}}
        out.append(KubeObject(job, phase="after-all", ignore_changes=("spec.suspend",)))
        serving = self.peers.get(ModelServing)
        if serving is not None:
            out.append(KubeObject(self._example_isvc(serving, team, labels), phase="after-all"))
        return out

    def _example_rayjob(self, image: str, ns: str, labels: dict[str, str], digest: str, store) -> dict[str, Any]:
        pod_security = {"runAsNonRoot": True, "runAsUser": RAY_UID, "seccompProfile": {"type": "RuntimeDefault"}}
        env = [{"name": "RAW_PATH", "value": f"{store.buckets[BUCKET]}/raw/{EXAMPLE_TABLE}/{EXAMPLE_TABLE}.csv"},
               {"name": "TABLE", "value": EXAMPLE_TABLE},
               {"name": "LAKEHOUSE_STORE", "value": store.kind}]
        head = {"name": "ray-head", "image": image, "env": env, "resources": resources("250m", "1Gi", "2Gi"),
                "securityContext": dict(_RESTRICTED),
                "ports": [{"name": "dashboard", "containerPort": 8265}, {"name": "gcs", "containerPort": 6379}],
                "volumeMounts": [{"name": "scripts", "mountPath": "/scripts"}]}
        submitter = {"restartPolicy": "Never", "securityContext": pod_security, "containers": [{
            "name": "ray-job-submitter", "image": image, "resources": resources("50m", "128Mi", "512Mi"),
            "securityContext": dict(_RESTRICTED)}]}
        return {
            "apiVersion": "ray.io/v1", "kind": "RayJob",
            "metadata": {"name": f"{EXAMPLE}-ingest-{digest}", "namespace": ns, "labels": labels},
            "spec": {
                "entrypoint": "python /scripts/ingest.py",
                # PyIceberg from PyPI at the pinned version: the team needs egress to PyPI (allowInternetEgress).
                "runtimeEnvYAML": f"pip:\n  - pyiceberg=={VERSIONS.components['pyiceberg']}\n",
                "shutdownAfterJobFinishes": True,  # Kueue requires it
                "ttlSecondsAfterFinished": 600,
                "activeDeadlineSeconds": 1800,
                "submitterPodTemplate": {"spec": submitter},
                "rayClusterSpec": {
                    "rayVersion": image.rsplit(":", 1)[1],
                    "headGroupSpec": {"rayStartParams": {"num-cpus": "1"}, "template": {"spec": {
                        "serviceAccountName": CLIENT, "securityContext": pod_security, "containers": [head],
                        "volumes": [{"name": "scripts", "configMap": {"name": EXAMPLE}}]}}},
                },
            },
        }

    def _example_isvc(self, serving, team: Team, labels: dict[str, str]) -> dict[str, Any]:
        return {
            "apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceService",
            "metadata": {"name": f"{EXAMPLE_TABLE}-lakehouse", "namespace": team.namespace, "labels": labels,
                         "annotations": serving.example_annotations()},
            "spec": {"predictor": {
                "serviceAccountName": serving.model_service_account,
                "minReplicas": 1,
                "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
                "model": {"modelFormat": {"name": "mlflow"}, "protocolVersion": "v2", "runtime": "kserve-mlserver",
                          "storageUri": serving.model_uri(self.example_model_path(team)),
                          "resources": resources("100m", "384Mi", "1Gi")},
            }},
        }

    def workloads(self) -> list[Workload]:
        size = self._size()
        cpu, mem, _ = size["trino"]
        out = [Workload("polaris", *size["polaris"][:2], self.profile.replicas),
               Workload("trino-coordinator", cpu, mem)]
        if self.workers:
            out.append(Workload("trino-worker", cpu, mem, self.workers))
        return out

    def outputs(self) -> dict[str, Any]:
        ns = self.namespace
        return {"catalogUri": self.catalog_uri, "warehouse": WAREHOUSE, "trino": self.trino_uri,
                "sql": f"kubectl -n {ns} exec -it deploy/{TRINO}-coordinator -- trino --catalog {WAREHOUSE}",
                "teamSchemas": {t.name: team_schema(t) for t in self.teams()}}


CLIENT_IDENTITY = CLIENT  # the client identity's name: its object-store keys and cloud role
