"""feast: the Feast operator and the platform's FeatureStore.

The operator has no Helm chart: its pinned install manifest (`feast-dev/feast` `dist/install.yaml`)
is applied server-side (its CRD is too large for client-side apply) into `feast-operator-system`.
FeatureStore `platform` is wired to the platform:
- registry: SQL registry in the platform's PostgreSQL (database `feast`);
- online store: PostgreSQL (same database);
- offline store: the `dask` file store, which reads `s3://` / `gs://` sources through fsspec with
  the standard credential chains (generated keys and endpoint on kind/existing, Pod Identity on EKS,
  Workload Identity on GKE). The upstream image lacks s3fs/gcsfs: `image` names one built from
  `images/feast` (`make image-feast`); without it offline sources must be local to the servers.
  (DuckDB was dropped: its httpfs takes neither Pod Identity, Workload Identity nor path-style URLs
  from the environment, so it reached no bucket.)
Connection settings reach feature_store.yaml as `${VAR}` references resolved from an env Secret, so
no password appears in the FeatureStore or the Deployment the operator renders.
The FeatureStore starts from Feast's example repository (`feastProjectDir.init`), which the smoke
test applies and materializes; teams point `feastProjectDir.git` at their own feature repository.
"""

from __future__ import annotations

from typing import Any, Literal

import yaml
from pydantic import Field

from addons.base import Layer
from modules.shared.config import OPTIONAL_IMAGE_REF, ConfigError, LayerOptions
from modules.shared.k8s import resources, secret
from modules.shared.labels import MANAGED_BY
from modules.shared.offers import BucketStore, Database, FeatureClient, Lakehouse
from modules.shared.parts import KubeObject, Workload

API = "feast.dev/v1"
STORE = "platform"
ENV_SECRET = "feast-env"
STORES_SECRET = "feast-data-stores"
PROJECT = "platform"
OPERATOR_NAMESPACE = "feast-operator-system"  # created by the install manifest
FEAST_SCHEMA = "feast"  # the lakehouse namespace where Feast's Trino offline store keeps temporary tables

_SERVER = {"small": ("50m", "256Mi", "1Gi"), "large": ("250m", "512Mi", "2Gi")}
# feature_store.yaml sections; the operator merges the Secret key named after the store type.
_REGISTRY = ("path: postgresql+psycopg://${POSTGRES_USER}:${POSTGRES_PASSWORD}@${POSTGRES_HOST}:${POSTGRES_PORT}"
             "/${POSTGRES_DB}\ncache_ttl_seconds: 60\nsqlalchemy_config_kwargs:\n  pool_pre_ping: true\n")
_ONLINE = ("host: ${POSTGRES_HOST}\nport: ${POSTGRES_PORT}\ndatabase: ${POSTGRES_DB}\ndb_schema: public\n"
           "user: ${POSTGRES_USER}\npassword: ${POSTGRES_PASSWORD}\n")


class FeastOptions(LayerOptions):
    ui: bool = Field(False, description="run the Feast web UI next to the servers")
    offlineStore: Literal["dask", "trino"] = Field(
        "dask",
        description="offline store: `dask` (files in the object store) or `trino` (Iceberg tables of the lakehouse "
                    "layer through its Trino; needs that layer and `image` built from images/feast)")
    image: str = Field(
        "", pattern=OPTIONAL_IMAGE_REF,
        description="feature server image with s3fs/gcsfs, built from `images/feast` (`make image-feast "
                    "REGISTRY=…`), so offline sources can live in the object store; empty: the operator's upstream "
                    "image")


class Feast(Layer):
    name = "feast"
    component = "Feast"
    description = "Feature store: Feast operator and a FeatureStore on PostgreSQL and the object store."
    core = True
    requires = ("postgres", "object-store")
    manifests = ("feast-operator",)
    offers = (FeatureClient,)
    databases = ("feast",)
    buckets = {"feast": "rw"}
    Options = FeastOptions
    default_namespace = "feast"
    # The operator renders FeatureStore containers without container-level security contexts.
    pod_security = "baseline"
    pod_security_reason = "the Feast operator sets no container securityContext on FeatureStore pods"

    def service_accounts(self) -> tuple[tuple[str, str], ...]:
        return ((self.namespace, f"feast-{STORE}"),)  # the operator's name for the servers

    def client_config(self) -> str:
        """feature_store.yaml for remote clients (notebooks): the servers the operator runs for the store."""
        ns = self.namespace
        return yaml.safe_dump({
            "project": PROJECT,
            "registry": {"registry_type": "remote", "path": f"feast-{STORE}-registry.{ns}.svc.cluster.local:80"},
            "online_store": {"type": "remote", "path": f"http://feast-{STORE}-online.{ns}.svc.cluster.local:80"},
            "offline_store": {"type": "remote", "host": f"feast-{STORE}-offline.{ns}.svc.cluster.local", "port": 80},
            "auth": {"type": "no_auth"},
            "entity_key_serialization_version": 3,
        }, sort_keys=False)

    def _store(self):
        return self.peers.need(BucketStore).access(self.name)

    def validate(self) -> None:
        if self.options.offlineStore != "trino":
            return
        if self.peers.get(Lakehouse) is None:
            raise ConfigError("cnai:layers.feast.offlineStore: trino needs the lakehouse layer "
                              "(cnai:layers.lakehouse.enabled: true)")
        if not self.options.image:
            raise ConfigError("cnai:layers.feast.offlineStore: trino needs cnai:layers.feast.image built from "
                              "images/feast (the upstream feature server has no Trino client)")

    def lakehouse_namespaces(self) -> tuple[str, ...]:
        return (FEAST_SCHEMA,) if self.options.offlineStore == "trino" else ()

    def _trino_store(self) -> str:
        """The offline store's feature_store.yaml section: Iceberg tables of the lake catalog through Trino;
        Feast keeps its temporary tables in the catalog's `feast` namespace."""
        lakehouse = self.peers.need(Lakehouse)
        url = lakehouse.trino_uri.removeprefix("http://")
        host, port = url.rsplit(":", 1)
        return yaml.safe_dump({"host": host, "port": int(port), "http-scheme": "http", "catalog": lakehouse.warehouse,
                               "user": "feast", "dataset": FEAST_SCHEMA,
                               "connector": {"type": "iceberg", "file_format": "parquet"}}, sort_keys=True)

    def _env(self) -> dict[str, Any]:
        pg = self.peers.need(Database)
        store = self._store()
        env: dict[str, Any] = {
            "POSTGRES_HOST": pg.host, "POSTGRES_PORT": str(pg.port), "POSTGRES_DB": "feast",
            "POSTGRES_USER": "feast", "POSTGRES_PASSWORD": pg.password("feast"),
            **store.env(),
        }
        return env

    def _server(self) -> dict[str, Any]:
        server: dict[str, Any] = {"envFrom": [{"secretRef": {"name": ENV_SECRET}}],
                                  "resources": resources(*_SERVER[self.profile.size])}
        if self.options.image:
            server["image"] = self.options.image
        return server

    def objects(self) -> list[KubeObject]:
        ns, labels = self.namespace, dict(MANAGED_BY)
        env = secret(ENV_SECRET, ns, self._env())
        data = {"sql": _REGISTRY, "postgres": _ONLINE}
        if self.options.offlineStore == "trino":
            data["trino"] = self._trino_store()
        stores = secret(STORES_SECRET, ns, data)
        services: dict[str, Any] = {
            "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
            "registry": {"local": {
                "persistence": {"store": {"type": "sql", "secretRef": {"name": STORES_SECRET}}},
                "server": self._server()}},
            "onlineStore": {
                "persistence": {"store": {"type": "postgres", "secretRef": {"name": STORES_SECRET}}},
                "server": self._server()},
            "offlineStore": {"persistence": self._offline_persistence(), "server": self._server()},
        }
        if self.options.image:  # the init containers (`feast init`, `feast apply`) too
            services["initImage"] = self.options.image
        if self.options.ui:
            services["ui"] = self._server()
        store = self._store()
        meta: dict[str, Any] = {"name": STORE, "namespace": ns, "labels": labels}
        feature_store = {
            "apiVersion": API, "kind": "FeatureStore", "metadata": meta,
            "spec": {
                "feastProject": PROJECT,
                "feastProjectDir": {"init": {}},
                # In-cluster clients (notebooks, pipelines) reach the servers without tokens; the
                # namespace's NetworkPolicies and the platform's RBAC are the boundary.
                "authz": {"noAuth": True},
                "replicas": self.profile.replicas,
                "services": services,
            },
        }
        out = [KubeObject(env), KubeObject(stores)]
        if store.annotations:
            # Workload identity: the operator runs the servers as ServiceAccount feast-<name>.
            out.append(KubeObject({"apiVersion": "v1", "kind": "ServiceAccount",
                                   "metadata": {"name": f"feast-{STORE}", "namespace": ns, "labels": labels,
                                                "annotations": dict(store.annotations)}}))
        out.append(KubeObject(feature_store, phase="after-install", wait_for=tuple(o.ref for o in out)))
        return out

    def _offline_persistence(self) -> dict[str, Any]:
        if self.options.offlineStore == "trino":
            return {"store": {"type": "trino", "secretRef": {"name": STORES_SECRET}}}
        return {"file": {"type": "dask"}}

    def workloads(self) -> list[Workload]:
        cpu, mem, _ = _SERVER[self.profile.size]
        servers = 3 + (1 if self.options.ui else 0)
        # The operator comes from its install manifest; it creates the servers from the FeatureStore.
        return [Workload("feast-operator", "10m", "64Mi", rendered=False),
                Workload(f"feast-{STORE}", f"{servers * int(cpu[:-1])}m", f"{servers * int(mem[:-2])}Mi",
                         self.profile.replicas, rendered=False)]

    def outputs(self) -> dict[str, Any]:
        ns, store = self.namespace, self._store()
        out = {"clientConfigMap": f"feast-{STORE}-client",
                "onlineUrl": f"http://feast-{STORE}-online.{ns}.svc.cluster.local",
                "registry": f"feast-{STORE}-registry.{ns}.svc.cluster.local:80",
                "offlineBucket": store.url("feast")}
        if store.endpoint:  # pyarrow (schema inference in `feast apply`) ignores AWS_ENDPOINT_URL
            out["fileSourceS3EndpointOverride"] = store.endpoint
        if self.options.ui:
            out["ui"] = f"kubectl -n {ns} port-forward svc/feast-{STORE}-ui 8888:80, then http://localhost:8888"
        return out
