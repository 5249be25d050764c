"""What layers offer each other: small typed interfaces, so no layer imports another layer's module.

A layer declares the interfaces it implements (`Layer.offers`); another finds the enabled layer that
offers one with `self.peers.get(Interface)` (None when no such layer is on) or `self.peers.need(...)`
(for what it requires). Interfaces carry endpoints and markers, never credentials in plain text.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from modules.shared.markers import Generated

if TYPE_CHECKING:
    from modules.shared.config import Team


@dataclass(frozen=True)
class Access:
    """How one layer reaches its buckets: endpoint, bucket names and either keys or a workload identity."""

    kind: str  # "s3" (SeaweedFS or AWS S3) | "gcs"
    region: str
    buckets: dict[str, str]  # platform bucket -> actual bucket name
    endpoint: str | None = None  # S3 API URL when not AWS itself
    access_key: str | None = None  # access key id (an identifier, not a secret)
    secret_key: Generated | None = None
    annotations: dict[str, str] = field(default_factory=dict)  # ServiceAccount annotations (IRSA / WI)

    @property
    def scheme(self) -> str:
        return "gs" if self.kind == "gcs" else "s3"

    def url(self, bucket: str, path: str = "") -> str:
        return f"{self.scheme}://{self.buckets[bucket]}" + (f"/{path}" if path else "")

    @property
    def host(self) -> str | None:
        """The endpoint as host:port (KServe's s3-endpoint annotation)."""
        return self.endpoint.split("://", 1)[1] if self.endpoint else None

    @property
    def tls(self) -> bool:
        return not self.endpoint or self.endpoint.startswith("https://")

    @property
    def static_keys(self) -> bool:
        return self.secret_key is not None

    def env(self) -> dict[str, Any]:
        """AWS SDK environment for this identity (values may be Generated)."""
        if self.kind != "s3":
            return {}
        env: dict[str, Any] = {"AWS_REGION": self.region, "AWS_DEFAULT_REGION": self.region}
        if self.endpoint:
            env["AWS_ENDPOINT_URL"] = self.endpoint
        if self.secret_key is not None:
            env["AWS_ACCESS_KEY_ID"] = self.access_key
            env["AWS_SECRET_ACCESS_KEY"] = self.secret_key
        return env


class BucketStore(Protocol):
    """The platform's buckets (object-store layer): one identity per consuming layer."""

    def access(self, layer: str) -> Access:
        """How `layer` reaches the buckets it declared (`Layer.bucket_needs`)."""

    @property
    def client_endpoint(self) -> str | None:
        """The S3 API URL in-cluster clients use; None where the cloud's own endpoint applies."""


class Database(Protocol):
    """The platform's PostgreSQL (postgres layer): a role and a database per consuming layer."""

    @property
    def host(self) -> str | Generated:
        """The read-write endpoint (a marker when only known at deploy time)."""

    @property
    def port(self) -> int: ...

    def password(self, database: str) -> Generated:
        """The generated password of the role owning `database` (role name = database name)."""


class Tracking(Protocol):
    """Experiment tracking and the model registry (mlflow layer)."""

    @property
    def tracking_uri(self) -> str: ...

    def admin_password(self) -> Generated | None:
        """The admin's password when the server requires logins, else None."""


class FeatureClient(Protocol):
    """The feature store (feast layer), as clients see it."""

    def client_config(self) -> str:
        """feature_store.yaml for a remote client (registry, online and offline servers)."""


class PipelinesApi(Protocol):
    """Kubeflow Pipelines (pipelines layer)."""

    @property
    def endpoint(self) -> str: ...


class Metrics(Protocol):
    """Prometheus and the monitoring CRDs (observability layer): ServiceMonitors and PodMonitors work."""

    @property
    def prometheus_url(self) -> str: ...

    @property
    def otlp_endpoint(self) -> str | None:
        """Where workloads send OTLP, when a collector runs."""


class Lakehouse(Protocol):
    """The Iceberg REST catalog and its SQL engine (lakehouse layer), as workloads in team namespaces see them.
    Each team namespace holds the client Secret `client_secret` (its catalog principal's credential, its
    Iceberg namespace and, where the store takes keys, the client identity's S3 keys) and the ServiceAccount
    `client_service_account` (bound to the client identity on clouds)."""

    @property
    def catalog_uri(self) -> str:
        """The Iceberg REST endpoint (`.../api/catalog`); the OAuth2 token endpoint is `<uri>/v1/oauth/tokens`."""

    @property
    def warehouse(self) -> str:
        """The catalog name clients pass as `warehouse`."""

    @property
    def trino_uri(self) -> str: ...

    @property
    def client_secret(self) -> str: ...

    @property
    def client_service_account(self) -> str: ...

    def team_schema(self, team: Team) -> str:
        """The team's Iceberg namespace (a Trino schema of catalog `warehouse`)."""

    def client_env(self) -> list[dict[str, Any]]:
        """EnvVars for Iceberg clients in a team namespace: PyIceberg's catalog settings
        (`PYICEBERG_CATALOG__<warehouse>__*`) and `LAKEHOUSE_*` for other clients (Spark's `${env:...}`),
        credentials by reference to the namespace's client Secret (optional: pods elsewhere still start)."""


class RayRuntime(Protocol):
    """KubeRay (ray layer): RayJobs and RayClusters in team namespaces."""

    @property
    def ray_image(self) -> str:
        """The pinned Ray image (its tag is the Ray version RayClusters declare)."""


class ModelServing(Protocol):
    """KServe (kserve layer): InferenceServices in team namespaces, models read from the MLflow bucket."""

    @property
    def model_service_account(self) -> str:
        """The ServiceAccount in every team namespace whose identity reads models from the buckets."""

    def model_uri(self, path: str) -> str:
        """The storage URI of a model MLflow wrote at `mlflow-artifacts:/<path>`."""

    def example_annotations(self) -> dict[str, str]:
        """How a small example InferenceService deploys (mode, autoscaling) on this platform."""

    @property
    def knative(self) -> bool:
        """KServe runs in Knative mode (Knative Serving installed: scale to zero with an activator)."""


class VectorStore(Protocol):
    """Vector search for team workloads (vectors layer): a database with pgvector per team in the platform's
    PostgreSQL. Each team namespace holds Secret `client_secret` with the team's connection settings."""

    @property
    def client_secret(self) -> str: ...

    def team_database(self, team: Team) -> str:
        """The team's database (its role has the same name)."""

    def client_env(self) -> list[dict[str, Any]]:
        """EnvVars for clients in a team namespace: `PGVECTOR_HOST`, `PGVECTOR_PORT`, `PGVECTOR_DATABASE`,
        `PGVECTOR_USER`, `PGVECTOR_PASSWORD` and `PGVECTOR_URL` (postgresql://...), by reference to the namespace's
        Secret (optional: pods elsewhere still start)."""


class EventAutoscaling(Protocol):
    """KEDA (keda layer): ScaledObjects scale workloads on external metrics (Prometheus queries)."""

    @property
    def keda_namespace(self) -> str: ...


class LlmServing(Protocol):
    """LLMs served by KServe (llm layer), as clients in team namespaces see them: ConfigMap `endpoints_config`
    in each team namespace that has models holds the team's OpenAI-compatible endpoints."""

    @property
    def endpoints_config(self) -> str: ...

    def client_env(self) -> list[dict[str, Any]]:
        """EnvVars for clients: `OPENAI_BASE_URL` (the chat model's `/openai/v1`), `LLM_CHAT_MODEL`,
        `LLM_EMBEDDING_BASE_URL`, `LLM_EMBEDDING_MODEL`, by reference to the namespace's ConfigMap (optional)."""


class Queueing(Protocol):
    """Quota-based admission (kueue layer)."""

    def workload_labels(self) -> dict[str, str]:
        """Labels a workload carries to wait in its namespace's LocalQueue."""

    def queue_namespace_labels(self, queue: str) -> dict[str, str]:
        """Labels of a namespace whose workloads queue in ClusterQueue `queue` (it gets a LocalQueue)."""

    def team_ceiling(self, team: Team) -> dict[str, str]:
        """The most a team's queue can hold by resource (nominal quota plus borrowing limit)."""


class TeamDirectory(Protocol):
    """The teams (teams layer): each has a namespace with quota, policies and RBAC."""

    def all_teams(self) -> tuple[Team, ...]: ...


OFFERS: tuple[type, ...] = (BucketStore, Database, Tracking, FeatureClient, PipelinesApi, Metrics, Queueing,
                            TeamDirectory, Lakehouse, RayRuntime, ModelServing, VectorStore, EventAutoscaling,
                            LlmServing)
