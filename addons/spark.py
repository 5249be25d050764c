"""spark: the Kubeflow Spark Operator, running SparkApplications in team namespaces, queued by Kueue.

The pinned chart (controller and webhook, CRDs from its `crds/`) goes into `spark-operator` and watches the
team namespaces (`spark.jobNamespaces`): there it renders the job ServiceAccount's Role (pods, services,
ConfigMaps, PVCs: the driver creates its executors) and the controller's Role. The job ServiceAccount is
the lakehouse's client ServiceAccount when that layer is on (its cloud identity reaches the `lake` bucket),
else the chart's `spark-operator-spark`.
Kueue 0.19 admits SparkApplications behind the alpha gate `SparkApplicationIntegration` (framework
`sparkoperator.k8s.io/sparkapplication`): the kueue layer turns both on while this layer is enabled
(`queue_frameworks`, `queue_feature_gates`). Kueue accepts only `mode: cluster` and no dynamic allocation,
and counts each pod's `coreRequest` and `memory` (not Spark's memory overhead): the namespace's
ResourceQuota still bounds what the pods really request (docs/layers/spark.md).
Team groups may manage SparkApplications (the `edit` role aggregates them); drivers may reach the
Kubernetes API through the team's default-deny NetworkPolicies (`apiServerCidrs`). The example is SparkPi in
Python in the first team's namespace, with the Iceberg catalog settings when the lakehouse is on
(`iceberg_conf()`); `image` names a Spark image with the Iceberg runtime, built from `images/spark`.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from pydantic import Field

from addons.base import Layer
from modules.shared.config import OPTIONAL_IMAGE_REF, ConfigError, LayerOptions
from modules.shared.k8s import edit_role, resources
from modules.shared.labels import MANAGED_BY
from modules.shared.offers import Lakehouse, Metrics, Queueing, Tracking
from modules.shared.parts import KubeObject, Workload
from modules.shared.versions import VERSIONS

API = "sparkoperator.k8s.io/v1beta2"
GROUP = "sparkoperator.k8s.io"
FRAMEWORK = "sparkoperator.k8s.io/sparkapplication"  # Kueue's integration
FEATURE_GATE = "SparkApplicationIntegration"  # alpha, off by default in Kueue 0.19
FULLNAME = "spark-operator"  # chart fullnameOverride: release `spark` would otherwise be `spark-spark-operator`
CHART_JOB_SA = f"{FULLNAME}-spark"  # the chart's job ServiceAccount (templates/spark/_helpers.tpl)
EXAMPLE = "example-spark-pi"
# The operator's UI Service `<app>-ui-svc` and its port (pkg/util GetDefaultUIServiceName, DefaultSparkWebUIPort).
UI_PORT = 4040
SPARK_UID = 185  # `spark` in apache/spark images, a name there: runAsNonRoot needs the id
DRIVER_POLICY = "allow-spark-driver-api"
DRIVER_LABELS = {"spark-role": "driver", "sparkoperator.k8s.io/launched-by-spark-operator": "true"}
ICEBERG_EXTENSIONS = "org.apache.iceberg.spark.extensions.IcebergSparkSessionExtensions"
FILE_IO = {"s3": "org.apache.iceberg.aws.s3.S3FileIO", "gcs": "org.apache.iceberg.gcp.gcs.GCSFileIO"}
# Iceberg catalog properties the REST catalog reads from the pod's environment (Iceberg's EnvironmentUtil
# resolves values `env:NAME`; Spark passes catalog options through unresolved), when `client_env()` sets them.
_S3_ENV = {"client.region": "LAKEHOUSE_S3_REGION", "s3.endpoint": "LAKEHOUSE_S3_ENDPOINT",
           "s3.access-key-id": "LAKEHOUSE_S3_ACCESS_KEY_ID", "s3.secret-access-key": "LAKEHOUSE_S3_SECRET_ACCESS_KEY"}
_PRIVATE = ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"]

# (cpu, memory, memory limit): the controller also runs spark-submit (a JVM) for every submission.
_CONTROLLER = {"small": ("100m", "256Mi", "1Gi"), "large": ("250m", "512Mi", "2Gi")}
_WEBHOOK = {"small": ("50m", "64Mi", "256Mi"), "large": ("100m", "128Mi", "512Mi")}
# The example's driver and executor: what Kueue counts (coreRequest, memory) and the JVM's overhead on top.
_POD = {"cores": 1, "coreRequest": "250m", "memory": "512m", "memoryOverhead": "384m",
        # Kubeflow profile namespaces inject Istio sidecars, which would keep a finished driver's pod (and the
        # quota it holds) running; Spark's driver and executors talk to each other by pod IP.
        "annotations": {"sidecar.istio.io/inject": "false"}}
_CONTAINER_SC = {"runAsUser": SPARK_UID, "runAsGroup": SPARK_UID, "runAsNonRoot": True,
                 "allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]},
                 "seccompProfile": {"type": "RuntimeDefault"}}
_POD_SC = {"runAsUser": SPARK_UID, "runAsGroup": SPARK_UID, "runAsNonRoot": True, "fsGroup": SPARK_UID,
           "seccompProfile": {"type": "RuntimeDefault"}}
# What Kueue writes into an admitted SparkApplication (suspend, and the admission's placement per role).
_KUEUE_OWNED = ("spec.suspend", "spec.nodeSelector") + tuple(
    f"spec.{role}.{field}" for role in ("driver", "executor")
    for field in ("labels", "annotations", "nodeSelector", "tolerations", "template"))


class SparkOptions(LayerOptions):
    example: bool = Field(
        True, description="submit the example SparkPi SparkApplication (through Kueue) in the first team's namespace")
    image: str = Field(
        "", pattern=OPTIONAL_IMAGE_REF,
        description="Spark image of the example (and the `image` output) with the Iceberg Spark runtime and its "
                    "AWS/GCP bundles, built from `images/spark` (`make image-spark REGISTRY=…`); empty: the pinned "
                    "upstream `apache/spark` image, which has no Iceberg jars")
    apiServerCidrs: list[str] = Field(
        default_factory=lambda: list(_PRIVATE),
        description="CIDRs Spark drivers in team namespaces may reach on TCP 443 and 6443 (the Kubernetes API, to "
                    "create executors) through the teams' default-deny NetworkPolicies; default the private ranges "
                    "(the API's Service IP and endpoints on kind, EKS and private GKE); empty: no such policy")


class Spark(Layer):
    name = "spark"
    component = "Spark"
    description = "Spark Operator: SparkApplications in team namespaces, queued by Kueue, Iceberg via the lakehouse."
    chart = "spark-operator"
    # The chart renders Roles into team namespaces (they must exist); the PodMonitor waits for the Prometheus
    # CRDs, the example for the team's LocalQueue and the lakehouse's client ServiceAccount and Secret.
    after = {"teams": "install", "observability": "objects", "kueue": "objects", "lakehouse": "objects"}
    queue_frameworks = (FRAMEWORK,)
    queue_feature_gates = (FEATURE_GATE,)
    Options = SparkOptions
    default_namespace = "spark-operator"

    # -- what other code reads -------------------------------------------------------------------
    @property
    def image(self) -> str:
        """The Spark image the example runs (the layer's `image`, else the pinned upstream one)."""
        return self.options.image or VERSIONS.images["spark"]

    @property
    def spark_version(self) -> str:
        return VERSIONS.images["spark"].split("@", 1)[0].rsplit(":", 1)[1]  # the tag, not the digest

    @property
    def job_service_account(self) -> str:
        """The ServiceAccount drivers and executors run as in team namespaces."""
        lakehouse = self.peers.get(Lakehouse)
        return lakehouse.client_service_account if lakehouse else CHART_JOB_SA

    def job_namespaces(self) -> list[str]:
        return [t.namespace for t in self.teams()]

    def iceberg_conf(self) -> dict[str, str]:
        """sparkConf for the lakehouse's Iceberg REST catalog (empty without the lakehouse layer): catalog
        `<warehouse>`, the team principal's credential and the store's keys by environment reference only."""
        lakehouse = self.peers.get(Lakehouse)
        if lakehouse is None:
            return {}
        c = f"spark.sql.catalog.{lakehouse.warehouse}"
        conf = {
            "spark.sql.extensions": ICEBERG_EXTENSIONS,
            c: "org.apache.iceberg.spark.SparkCatalog",
            f"{c}.type": "rest",
            f"{c}.uri": lakehouse.catalog_uri,
            f"{c}.warehouse": lakehouse.warehouse,
            f"{c}.credential": "env:LAKEHOUSE_CREDENTIAL",
            f"{c}.scope": "PRINCIPAL_ROLE:ALL",
        }
        store = self.caps.cloud_storage.kind if self.caps.cloud_storage else "s3"  # None: the in-cluster S3 store
        conf[f"{c}.io-impl"] = FILE_IO[store]
        if store == "s3":
            env = {e["name"] for e in lakehouse.client_env()}
            conf.update({f"{c}.{prop}": f"env:{var}" for prop, var in _S3_ENV.items() if var in env})
            if "LAKEHOUSE_S3_ENDPOINT" in env:  # an S3-compatible store in the cluster: path-style URLs
                conf[f"{c}.s3.path-style-access"] = "true"
        return conf

    def job_env(self) -> list[dict[str, Any]]:
        """EnvVars of the example's driver and executors: MLflow's URI, the lakehouse client settings."""
        env: list[dict[str, Any]] = []
        tracking = self.peers.get(Tracking)
        if tracking:
            env.append({"name": "MLFLOW_TRACKING_URI", "value": tracking.tracking_uri})
        lakehouse = self.peers.get(Lakehouse)
        if lakehouse:
            env += [dict(e) for e in lakehouse.client_env()]
        return env

    # -- checks ----------------------------------------------------------------------------------
    def validate(self) -> None:
        if not self.teams():
            raise ConfigError("cnai:layers.spark.enabled: the Spark Operator runs SparkApplications in team "
                              "namespaces; enable the teams layer and list at least one team in cnai:teams")
        for i, cidr in enumerate(self.options.apiServerCidrs):
            try:
                ipaddress.ip_network(cidr)
            except ValueError:
                raise ConfigError(f"cnai:layers.spark.apiServerCidrs[{i}]: {cidr!r} is not a network such as "
                                  "10.0.0.0/8") from None

    # -- the chart -------------------------------------------------------------------------------
    def values(self) -> dict[str, Any]:
        replicas, size = self.profile.replicas, self.profile.size
        lakehouse = self.peers.get(Lakehouse)
        metrics = self.peers.get(Metrics) is not None
        pdb = {"enable": replicas > 1, "minAvailable": 1}
        return {
            "fullnameOverride": FULLNAME,
            "controller": {"replicas": replicas, "resources": resources(*_CONTROLLER[size]),
                           "podDisruptionBudget": pdb},
            "webhook": {"replicas": replicas, "resources": resources(*_WEBHOOK[size]), "podDisruptionBudget": pdb},
            "spark": {
                "jobNamespaces": self.job_namespaces(),
                # The lakehouse creates its client ServiceAccount in every team namespace; the chart's Role
                # (pods, services, ConfigMaps, PVCs) is bound to that name either way.
                "serviceAccount": ({"create": False, "name": lakehouse.client_service_account} if lakehouse
                                   else {"create": True}),
                "rbac": {"create": True},
            },
            # The chart's PodMonitor `fail`s to render unless the API already exists (helm template, first
            # installs): the layer creates its own PodMonitor after the observability layer instead.
            "prometheus": {"metrics": {"enable": metrics}, "podMonitor": {"create": False}},
        }

    def workloads(self) -> list[Workload]:
        replicas, size = self.profile.replicas, self.profile.size
        # SparkApplications' drivers and executors are transient and count against their team's quota.
        return [Workload(f"{FULLNAME}-controller", *_CONTROLLER[size][:2], replicas),
                Workload(f"{FULLNAME}-webhook", *_WEBHOOK[size][:2], replicas)]

    # -- objects ---------------------------------------------------------------------------------
    def driver_policy(self, namespace: str) -> dict[str, Any]:
        """Egress from Spark drivers to the Kubernetes API (the teams' NetworkPolicies deny it otherwise)."""
        return {
            "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": DRIVER_POLICY, "namespace": namespace, "labels": dict(MANAGED_BY)},
            "spec": {"podSelector": {"matchLabels": dict(DRIVER_LABELS)}, "policyTypes": ["Egress"],
                     "egress": [{"to": [{"ipBlock": {"cidr": c}} for c in self.options.apiServerCidrs],
                                 "ports": [{"protocol": "TCP", "port": 443}, {"protocol": "TCP", "port": 6443}]}]},
        }

    def pod_monitor(self) -> dict[str, Any]:
        """Prometheus scrapes the controller's and the webhook's `metrics` port (the chart's selector labels)."""
        return {"apiVersion": "monitoring.coreos.com/v1", "kind": "PodMonitor",
                "metadata": {"name": FULLNAME, "namespace": self.namespace, "labels": dict(MANAGED_BY)},
                "spec": {"selector": {"matchLabels": {"app.kubernetes.io/name": self.chart,  # the chart's name
                                                      "app.kubernetes.io/instance": self.name}},
                         "podMetricsEndpoints": [{"port": "metrics", "path": "/metrics", "interval": "30s"}]}}

    def example(self, namespace: str) -> dict[str, Any]:
        queueing = self.peers.get(Queueing)
        env = self.job_env()
        role: dict[str, Any] = {**_POD, "serviceAccount": self.job_service_account,
                                "securityContext": dict(_CONTAINER_SC), "podSecurityContext": dict(_POD_SC)}
        if env:
            role["env"] = env
        spec: dict[str, Any] = {
            "type": "Python", "pythonVersion": "3", "mode": "cluster",  # Kueue admits cluster mode only
            "image": self.image, "imagePullPolicy": "IfNotPresent",
            "mainApplicationFile": "local:///opt/spark/examples/src/main/python/pi.py", "arguments": ["10"],
            "sparkVersion": self.spark_version,
            # Created suspended; Kueue un-suspends it when the team's queue admits driver and executor.
            "suspend": queueing is not None,
            "restartPolicy": {"type": "Never"},
            "driver": dict(role),
            "executor": {**role, "instances": 1},
        }
        conf = self.iceberg_conf()
        if conf:
            spec["sparkConf"] = conf
        return {"apiVersion": API, "kind": "SparkApplication",
                "metadata": {"name": EXAMPLE, "namespace": namespace,
                             "labels": {**MANAGED_BY, **(queueing.workload_labels() if queueing else {})}},
                "spec": spec}

    def objects(self) -> list[KubeObject]:
        kinds = ["sparkapplications", "scheduledsparkapplications"]
        out = [KubeObject(edit_role("cnai-spark-edit", GROUP, kinds, kinds), phase="after-install")]
        if self.peers.get(Metrics):
            out.append(KubeObject(self.pod_monitor(), phase="after-peers"))
        if self.options.apiServerCidrs:
            out += [KubeObject(self.driver_policy(ns), phase="after-peers") for ns in self.job_namespaces()]
        ns = self.first_team_namespace()
        if self.options.example and ns:
            # Kueue owns suspend and the admission's placement; the operator re-runs an app whose spec changes.
            out.append(KubeObject(self.example(ns), phase="after-all", ignore_changes=_KUEUE_OWNED))
        return out

    def outputs(self) -> dict[str, Any]:
        out: dict[str, Any] = {"operatorNamespace": self.namespace, "jobNamespaces": self.job_namespaces(),
                               "jobServiceAccount": self.job_service_account, "image": self.image}
        ns = self.first_team_namespace()
        if self.options.example and ns:
            out["exampleSparkApplication"] = f"{ns}/{EXAMPLE}"
            out["sparkUi"] = (f"while it runs: kubectl -n {ns} port-forward svc/{EXAMPLE}-ui-svc {UI_PORT}:{UI_PORT}, "
                              f"then http://localhost:{UI_PORT}")
        return out
