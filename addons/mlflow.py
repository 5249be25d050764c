"""mlflow: the experiment tracking server and model registry (community-charts `mlflow` chart).

Backend store: the platform's PostgreSQL (database `mlflow`, migrations run by the chart's init
container on every upgrade). Artifacts: the `mlflow` bucket, proxied through the server
(`--serve-artifacts`), so clients only need the tracking URI; on kind/existing the server holds
generated S3 keys, on the clouds it uses its workload identity. The Flask secret key is generated
here: the chart's hook that would create it does not rerun, and its pod cannot start without it.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from addons.base import Layer
from modules.shared.config import LayerOptions
from modules.shared.k8s import resources, secret
from modules.shared.markers import Generated
from modules.shared.offers import BucketStore, Database, Metrics, Tracking
from modules.shared.parts import KubeObject, Workload

RELEASE = "mlflow"
DB_SECRET = "mlflow-db"
S3_SECRET = "mlflow-s3"
FLASK_SECRET = f"{RELEASE}-flask-server-secret-key"  # the name the chart's deployment reads
ADMIN_SECRET = "mlflow-admin"
AUTH_DB = "mlflow_auth"
AUTH_DB_SECRET = "mlflow-auth-db"
PORT = 80

_SIZES = {"small": ("100m", "512Mi", "1536Mi"), "large": ("500m", "1Gi", "4Gi")}


class MlflowOptions(LayerOptions):
    allowedHosts: tuple[str, ...] = Field((), strict=False,
                                          description="extra Host headers MLflow accepts (ingress hosts)")
    auth: bool = Field(False, description="MLflow basic auth: users and permissions in PostgreSQL, admin password "
                                          "generated into Secret mlflow-admin")


class Mlflow(Layer):
    name = "mlflow"
    component = "Mlflow"
    description = "MLflow tracking server and model registry on PostgreSQL, artifacts in the object store."
    core = True
    chart = "mlflow"
    requires = ("postgres", "object-store")
    # The chart renders its ServiceMonitor only when the Prometheus CRDs exist at install time.
    after = {"observability": "install"}
    offers = (Tracking,)
    databases = ("mlflow",)
    buckets = {"mlflow": "rw"}
    Options = MlflowOptions
    default_namespace = "mlflow"

    def database_needs(self) -> tuple[str, ...]:
        # Auth users and permissions live in their own database, so they survive restarts and replicas share them.
        return ("mlflow", AUTH_DB) if self.options.auth else ("mlflow",)

    def service_accounts(self) -> tuple[tuple[str, str], ...]:
        return ((self.namespace, RELEASE),)  # the chart's ServiceAccount is its fullname

    @property
    def tracking_uri(self) -> str:
        return f"http://{RELEASE}.{self.namespace}.svc.cluster.local:{PORT}"

    @property
    def scraped(self) -> bool:
        """Prometheus scrapes MLflow when the observability layer runs (not with auth: the chart's
        ServiceMonitor cannot send credentials and /metrics is behind basic auth)."""
        return self.peers.get(Metrics) is not None and not self.options.auth

    def credentials(self) -> list[str]:
        return ["flask-secret-key"] + (["admin-password"] if self.options.auth else [])

    def admin_password(self) -> Generated | None:
        return Generated(self.name, "admin-password") if self.options.auth else None

    def _store(self):
        return self.peers.need(BucketStore).access(self.name)

    def values(self) -> dict[str, Any]:
        pg = self.peers.need(Database)
        store = self._store()
        ns = self.namespace
        # MLflow 3 rejects Host headers it does not know; list the service names clients use.
        hosts = [RELEASE, f"{RELEASE}.{ns}", f"{RELEASE}.{ns}.svc", f"{RELEASE}.{ns}.svc.cluster.local",
                 "localhost", "127.0.0.1"]
        if self.scraped:  # Prometheus scrapes with the pod IP as Host
            hosts += ["10.*", "172.*", "192.168.*"]
        allowed = sorted({h2 for h in hosts for h2 in (h, f"{h}:*")} | set(self.options.allowedHosts))
        values: dict[str, Any] = {
            "replicaCount": self.profile.replicas,
            "resources": resources(*_SIZES[self.profile.size]),
            "backendStore": {
                "databaseMigration": True,
                "databaseConnectionCheck": True,
                "postgres": {"enabled": True, "host": pg.host, "port": pg.port, "database": "mlflow"},
                "existingDatabaseSecret": {"name": DB_SECRET, "usernameKey": "username", "passwordKey": "password"},
            },
            "artifactRoot": {"proxiedArtifactStorage": True},
            "serverAllowedHosts": allowed,
            # restricted Pod Security needs a seccomp profile, which the chart does not set.
            "podSecurityContext": {"fsGroup": 1001, "fsGroupChangePolicy": "OnRootMismatch",
                                   "seccompProfile": {"type": "RuntimeDefault"}},
            "serviceAccount": {"create": True, "annotations": dict(store.annotations)},
        }
        if store.kind == "gcs":
            values["artifactRoot"]["gcs"] = {"enabled": True, "bucket": store.buckets["mlflow"], "path": ""}
        else:
            s3: dict[str, Any] = {"enabled": True, "bucket": store.buckets["mlflow"], "path": ""}
            if store.static_keys:
                s3["existingSecret"] = {"name": S3_SECRET, "keyOfAccessKeyId": "AWS_ACCESS_KEY_ID",
                                        "keyOfSecretAccessKey": "AWS_SECRET_ACCESS_KEY"}
            values["artifactRoot"]["s3"] = s3
            env = {"AWS_DEFAULT_REGION": store.region}
            if store.endpoint:
                env["MLFLOW_S3_ENDPOINT_URL"] = store.endpoint
            values["extraEnvVars"] = env
        if self.scraped:
            # `--expose-prometheus` keeps multiprocess metrics in this directory (read-only root FS);
            # the port targeted by name is the Service's (`useServicePort`), not the pod's.
            values["serviceMonitor"] = {"enabled": True, "namespace": ns, "useServicePort": True}
            values["extraVolumes"] = [{"name": "prometheus-metrics", "emptyDir": {}}]
            values["extraVolumeMounts"] = [{"name": "prometheus-metrics", "mountPath": "/mlflow/metrics"}]
        if self.options.auth:
            values["auth"] = {
                "enabled": True,
                "existingAdminSecret": {"name": ADMIN_SECRET, "usernameKey": "username", "passwordKey": "password"},
                "postgres": {"enabled": True, "host": pg.host, "port": pg.port, "database": AUTH_DB,
                             "existingSecret": {"name": AUTH_DB_SECRET, "usernameKey": "username",
                                                "passwordKey": "password"}},
            }
        return values

    def workloads(self) -> list[Workload]:
        cpu, mem, _ = _SIZES[self.profile.size]
        return [Workload("mlflow", cpu, mem, self.profile.replicas)]

    def objects(self) -> list[KubeObject]:
        ns = self.namespace
        pg = self.peers.need(Database)
        store = self._store()

        def before_chart(name: str, data: dict[str, Any], type_: str = "Opaque") -> KubeObject:
            return KubeObject(secret(name, ns, data, type_), phase="before-install")

        out = [
            before_chart(DB_SECRET, {"username": "mlflow", "password": pg.password("mlflow")},
                         "kubernetes.io/basic-auth"),
            before_chart(FLASK_SECRET, {"MLFLOW_FLASK_SERVER_SECRET_KEY": Generated(self.name, "flask-secret-key")}),
        ]
        if store.static_keys:
            out.append(before_chart(S3_SECRET, {"AWS_ACCESS_KEY_ID": store.access_key,
                                                "AWS_SECRET_ACCESS_KEY": store.secret_key}))
        if self.options.auth:
            out.append(before_chart(ADMIN_SECRET, {"username": "admin", "password": self.admin_password()},
                                    "kubernetes.io/basic-auth"))
            out.append(before_chart(AUTH_DB_SECRET, {"username": AUTH_DB, "password": pg.password(AUTH_DB)},
                                    "kubernetes.io/basic-auth"))
        return out

    def outputs(self) -> dict[str, Any]:
        return {"trackingUri": self.tracking_uri,
                "ui": f"kubectl -n {self.namespace} port-forward svc/{RELEASE} 5000:{PORT}, then http://localhost:5000"}
