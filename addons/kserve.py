"""kserve: model serving (KServe), Standard (raw Deployment) mode by default.

Three upstream charts in order: `kserve-crd`, `kserve-resources` (controller, webhooks and the
`inferenceservice-config`), `kserve-runtime-configs` (ClusterServingRuntimes, applied once the
controller's webhooks answer). Standard mode needs only cert-manager; no Ingress is created (models
are reached through their cluster Service), so no ingress controller or Gateway API is required.

Storage: every team namespace (and the example namespace) gets ServiceAccount `kserve-models`, which
InferenceServices name in `spec.predictor.serviceAccountName`: on kind/existing it carries generated,
read-only S3 keys for the platform's buckets; on the clouds, the workload identity annotations.

Knative mode (`deploymentMode: Knative`, scale-to-zero) adds its prerequisites in the same layer: the
Knative Operator chart (namespace `knative-operator`) and a `KnativeServing` with Kourier as the
networking layer (namespace `knative-serving`, cluster-internal Service), Ready before KServe's
controller starts.

Example (`example: true`): a Job trains a small scikit-learn model, logs it to MLflow and publishes it
in MLflow's layout; an InferenceService serves it with the MLServer runtime (protocol v2).

Over 300 lines: a layer is one file, and this one installs three charts in order, supports two
serving modes (Standard, Knative) and ships the example model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from addons.base import Layer
from modules.shared.config import ConfigError, LayerOptions
from modules.shared.k8s import edit_role, resources, secret
from modules.shared.labels import MANAGED_BY
from modules.shared.offers import Access, BucketStore, Metrics, ModelServing, Tracking
from modules.shared.parts import KubeObject, Release, Workload, ref
from modules.shared.versions import VERSIONS

SERVICE_ACCOUNT = "kserve-models"
MLSERVER_METRICS_PORT = 8082
S3_SECRET = "kserve-s3"
EXAMPLE = "example-iris"
EXAMPLE_NAMESPACE = "kserve-examples"
EXAMPLE_MODEL_PATH = "examples/iris"
MLSERVER_UID = 1000  # USER of the MLServer image
SCRIPT = Path(__file__).parent / "assets" / "kserve-example-model.py"

_CONTROLLER = {"small": ("50m", "128Mi", "300Mi"), "large": ("100m", "300Mi", "1Gi")}
# The controller pod's kube-rbac-proxy sidecar (the chart's default asks for 100m / 300Mi).
_RBAC_PROXY = {"small": ("10m", "32Mi", "64Mi"), "large": ("50m", "64Mi", "128Mi")}
_PREDICTOR = {"small": ("100m", "512Mi", "1Gi"), "large": ("500m", "1Gi", "2Gi")}


KNATIVE_OPERATOR_NAMESPACE = "knative-operator"
KNATIVE_NAMESPACE = "knative-serving"
# Knative Serving deployments (name, container) -> laptop/production requests (cpu, memory, memory limit)
_KNATIVE = {
    ("activator", "activator"): {"small": ("20m", "64Mi", "256Mi"), "large": ("300m", "60Mi", "600Mi")},
    ("autoscaler", "autoscaler"): {"small": ("20m", "64Mi", "256Mi"), "large": ("100m", "100Mi", "1000Mi")},
    ("controller", "controller"): {"small": ("20m", "64Mi", "256Mi"), "large": ("100m", "100Mi", "1000Mi")},
    ("webhook", "webhook"): {"small": ("20m", "64Mi", "256Mi"), "large": ("100m", "100Mi", "500Mi")},
    ("net-kourier-controller", "controller"): {"small": ("20m", "64Mi", "256Mi"),
                                               "large": ("200m", "200Mi", "500Mi")},
    ("3scale-kourier-gateway", "kourier-gateway"): {"small": ("50m", "64Mi", "256Mi"),
                                                    "large": ("200m", "200Mi", "500Mi")},
}
_KNATIVE_OPERATOR = {"small": ("20m", "64Mi", "512Mi"), "large": ("100m", "100Mi", "1000Mi")}


class KServeOptions(LayerOptions):
    deploymentMode: Literal["Standard", "Knative"] = Field(
        "Standard", description="Standard: raw Deployments; Knative: Knative Serving (scale to zero) with Kourier")
    example: bool = Field(True, description="train, log and serve the example model (needs mlflow and object-store)")


class KServe(Layer):
    name = "kserve"
    component = "KServe"
    description = "Model serving: InferenceServices with runtimes for scikit-learn, MLflow, Hugging Face and more."
    core = True
    requires = ("cert-manager",)
    # KServe's controller watches KEDA's ScaledObjects only if their CRD exists when it starts: after keda.
    after = {"object-store": "objects", "mlflow": "objects", "teams": "objects", "observability": "objects",
             "keda": "install"}
    buckets = {"mlflow": "ro"}
    offers = (ModelServing,)
    extra_charts = ("kserve-crd", "kserve-resources", "kserve-runtime-configs", "knative-operator")
    Options = KServeOptions
    default_namespace = "kserve"

    def validate(self) -> None:
        if self.options.example:
            missing = [n for n, offer in (("mlflow", Tracking), ("object-store", BucketStore))
                       if self.peers.get(offer) is None]
            if missing:
                raise ConfigError(f"cnai:layers.kserve.example: the example model needs layer {missing[0]}, which is "
                                  f"disabled (enable it or set example: false)")

    def service_accounts(self) -> tuple[tuple[str, str], ...]:
        return tuple((ns, SERVICE_ACCOUNT) for ns in self.serving_namespaces())

    def serving_namespaces(self) -> list[str]:
        """Namespaces that get the `kserve-models` ServiceAccount: the example's and every team's."""
        return ([EXAMPLE_NAMESPACE] if self.options.example else []) + [t.namespace for t in self.teams()]

    # -- releases --------------------------------------------------------------------------------
    @property
    def knative(self) -> bool:
        return self.options.deploymentMode == "Knative"

    def releases(self) -> list[Release]:
        out = [Release("kserve-crd", "kserve-crd", {})]
        if self.knative:
            # KnativeServing right after its operator; KServe's controller waits until it is Ready.
            out.append(Release("knative-operator", "knative-operator", self._knative_operator_values(),
                               namespace=KNATIVE_OPERATOR_NAMESPACE, then=(self._knative_serving(),)))
        return out + [
            Release("kserve-resources", "kserve-resources", self._controller_values()),
            Release("kserve-runtime-configs", "kserve-runtime-configs", self._runtime_values()),
        ]

    def _knative_operator_values(self) -> dict[str, Any]:
        res = resources(*_KNATIVE_OPERATOR[self.profile.size])
        return {"knative_operator": {"knative_operator": {"resources": res}, "operator_webhook": {"resources": res}}}

    def _knative_serving(self) -> dict[str, Any]:
        workloads = [{"name": name, "resources": [{"container": container, **resources(*sizes[self.profile.size])}]}
                     for (name, container), sizes in _KNATIVE.items()]
        return {
            "apiVersion": "operator.knative.dev/v1beta1", "kind": "KnativeServing",
            # Pulumi waits until Knative's CRDs and webhooks are up before KServe's controller starts.
            "metadata": {"name": "knative-serving", "namespace": KNATIVE_NAMESPACE, "labels": dict(MANAGED_BY),
                         "annotations": {"pulumi.com/waitFor": "condition=Ready"}},
            "spec": {
                "version": VERSIONS.components["knative-serving"],
                # Kourier behind a ClusterIP Service: models stay cluster-internal unless exposed on purpose.
                "ingress": {"kourier": {"enabled": True, "service-type": "ClusterIP"}},
                "config": {"network": {"ingress-class": "kourier.ingress.networking.knative.dev"}},
                "high-availability": {"replicas": self.profile.replicas},
                "workloads": workloads,
            },
        }
    def _controller_values(self) -> dict[str, Any]:
        values: dict[str, Any] = {"kserve": {
            "controller": {
                "deploymentMode": self.options.deploymentMode,
                "gateway": {
                    # Models are reached through their cluster Service; nothing needs an ingress controller
                    # (in Knative mode, through Kourier's; no Istio VirtualService either).
                    "disableIngressCreation": True,
                    "disableIstioVirtualHost": True,
                    "urlScheme": "http",
                    "ingressGateway": {"enableGatewayApi": False, "createGateway": False},
                },
                "imagePullPolicy": "IfNotPresent",
                "resources": resources(*_CONTROLLER[self.profile.size]),
                "rbacProxy": {"resources": resources(*_RBAC_PROXY[self.profile.size])},
            },
            "localmodel": {"enabled": False},
        }}
        store = self._store()
        if store and store.endpoint:
            # Cluster-wide defaults for S3 secrets without annotations.
            tls = "1" if store.tls else "0"
            values["kserve"]["storage"] = {"s3": {
                "endpoint": store.host, "useHttps": tls, "verifySSL": tls, "region": store.region}}
        return values

    def _runtime_values(self) -> dict[str, Any]:
        # The chart's MLServer tag (1.5.0) lags the release manifests (1.7.1), which serve MLflow models.
        image, tag = VERSIONS.images["mlserver"].rsplit(":", 1)
        vllm, vllm_tag = VERSIONS.images["vllm"].rsplit(":", 1)  # the chart's default tag is `latest`
        return {"kserve": {"servingruntime": {"enabled": True, "mlserver": {"image": image, "tag": tag},
                                              "vllmserver": {"image": vllm, "tag": vllm_tag}},
                           "llmisvcConfigs": {"enabled": False}}}

    # -- metrics ---------------------------------------------------------------------------------
    @property
    def scraped(self) -> bool:
        """Model servers are scraped when the observability layer runs. In Knative mode the
        queue-proxy owns the pod's single port, so only Standard mode declares the metrics port."""
        return self.peers.get(Metrics) is not None and not self.knative

    @staticmethod
    def _pod_monitor(ns: str) -> dict[str, Any]:
        """Scrape the `metrics` port of every predictor in a serving namespace. KServe's runtimes
        declare no container ports, so InferenceServices declare `metrics` (MLServer: 8082) themselves,
        as the example does."""
        return {"apiVersion": "monitoring.coreos.com/v1", "kind": "PodMonitor",
                "metadata": {"name": "kserve-predictors", "namespace": ns, "labels": dict(MANAGED_BY)},
                "spec": {"selector": {"matchLabels": {"component": "predictor"},
                                      "matchExpressions": [{"key": "serving.kserve.io/inferenceservice",
                                                            "operator": "Exists"}]},
                         "podMetricsEndpoints": [{"port": "metrics", "path": "/metrics", "interval": "30s"}]}}

    # -- storage wiring --------------------------------------------------------------------------
    def _store(self) -> Access | None:
        store = self.peers.get(BucketStore)
        return store.access(self.name) if store else None

    def _storage_objects(self, ns: str) -> list[KubeObject]:
        store = self._store()
        if store is None:
            return []
        labels = dict(MANAGED_BY)
        sa: dict[str, Any] = {"apiVersion": "v1", "kind": "ServiceAccount",
                              "metadata": {"name": SERVICE_ACCOUNT, "namespace": ns, "labels": labels,
                                           "annotations": dict(store.annotations)}}
        out = []
        if store.kind == "s3":
            annotations = {"serving.kserve.io/s3-region": store.region}
            if store.endpoint:
                tls = "1" if store.tls else "0"
                annotations.update({"serving.kserve.io/s3-endpoint": store.host, "serving.kserve.io/s3-usehttps": tls,
                                    "serving.kserve.io/s3-verifyssl": tls})
            if store.static_keys:
                keys = {"AWS_ACCESS_KEY_ID": store.access_key, "AWS_SECRET_ACCESS_KEY": store.secret_key}
                out.append(KubeObject(secret(S3_SECRET, ns, keys, annotations=annotations), phase="after-peers"))
                sa["secrets"] = [{"name": S3_SECRET}]
            else:  # workload identity: KServe reads the S3 settings from the ServiceAccount
                sa["metadata"]["annotations"].update(annotations)
        out.append(KubeObject(sa, phase="after-peers", wait_for=tuple(o.ref for o in out)))
        return out

    # -- objects ---------------------------------------------------------------------------------
    def objects(self) -> list[KubeObject]:
        out: list[KubeObject] = [KubeObject(edit_role(
            "cnai-kserve-edit", "serving.kserve.io",
            ["inferenceservices", "inferencegraphs", "servingruntimes", "trainedmodels"], ["inferenceservices"]),
            phase="after-install")]
        if self.knative:
            # The operator's pods and Kourier's Envoy set no seccomp profile: baseline, not restricted.
            for ns in (KNATIVE_OPERATOR_NAMESPACE, KNATIVE_NAMESPACE):
                out.append(KubeObject(self.platform_namespace(
                    ns, "baseline", reason="the Knative operator's pods and Kourier's Envoy set no seccomp profile"),
                    phase="before-install"))
        if self.options.example:
            out.append(KubeObject(self.platform_namespace(EXAMPLE_NAMESPACE, "restricted")))
        for ns in self.serving_namespaces():
            out += self._storage_objects(ns)
            if self.scraped:
                out.append(KubeObject(self._pod_monitor(ns), phase="after-peers"))
        if self.options.example:
            out += self._example()
        return out

    def _example(self) -> list[KubeObject]:
        ns, labels = EXAMPLE_NAMESPACE, dict(MANAGED_BY)
        store = self._store()
        mlflow = self.peers.need(Tracking)
        image = VERSIONS.images["mlserver"]
        restricted = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}
        script = {"apiVersion": "v1", "kind": "ConfigMap",
                  "metadata": {"name": f"{EXAMPLE}-train", "namespace": ns, "labels": labels},
                  "data": {"train.py": SCRIPT.read_text()}}
        job = {
            "apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": f"{EXAMPLE}-train", "namespace": ns, "labels": labels},
            "spec": {
                "backoffLimit": 3,
                "template": {"spec": {
                    "restartPolicy": "OnFailure",
                    "securityContext": {"runAsNonRoot": True, "runAsUser": MLSERVER_UID,
                                        "seccompProfile": {"type": "RuntimeDefault"}},
                    "containers": [{
                        "name": "train", "image": image,
                        "command": ["python", "/scripts/train.py"],
                        "env": [{"name": "MLFLOW_TRACKING_URI", "value": mlflow.tracking_uri},
                                {"name": "MODEL_PATH", "value": EXAMPLE_MODEL_PATH},
                                {"name": "HOME", "value": "/tmp"}],
                        "resources": resources("200m", "512Mi", "1Gi"),
                        "securityContext": restricted,
                        "volumeMounts": [{"name": "script", "mountPath": "/scripts"},
                                         {"name": "tmp", "mountPath": "/tmp"}],
                    }],
                    "volumes": [{"name": "script", "configMap": {"name": f"{EXAMPLE}-train"}},
                                {"name": "tmp", "emptyDir": {}}],
                }},
            },
        }
        isvc = {
            "apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceService",
            "metadata": {"name": EXAMPLE, "namespace": ns, "labels": labels,
                         "annotations": self._example_annotations()},
            "spec": {"predictor": {
                "serviceAccountName": SERVICE_ACCOUNT,
                "minReplicas": 1,
                "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
                "model": {
                    "modelFormat": {"name": "mlflow"},
                    "protocolVersion": "v2",
                    "runtime": "kserve-mlserver",
                    "storageUri": store.url("mlflow", EXAMPLE_MODEL_PATH),
                    "resources": resources(*_PREDICTOR[self.profile.size]),
                    **({"env": [{"name": "MLSERVER_TRACING_SERVER", "value": self._otlp}]} if self._otlp else {}),
                    # The first port is the one KServe's Service targets; MLServer serves metrics on 8082.
                    **({"ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"},
                                  {"name": "metrics", "containerPort": MLSERVER_METRICS_PORT, "protocol": "TCP"}]}
                       if self.scraped else {}),
                },
            }},
        }
        sa = {"kind": "ServiceAccount", "metadata": {"name": SERVICE_ACCOUNT, "namespace": ns}}
        out = [KubeObject(script)]
        admin_password = mlflow.admin_password()
        if admin_password:  # the Job logs to MLflow as its admin
            creds = secret(f"{EXAMPLE}-mlflow", ns, {"MLFLOW_TRACKING_USERNAME": "admin",
                                                     "MLFLOW_TRACKING_PASSWORD": admin_password})
            job["spec"]["template"]["spec"]["containers"][0]["envFrom"] = [{"secretRef": {"name": f"{EXAMPLE}-mlflow"}}]
            out.append(KubeObject(creds, phase="after-peers"))
        return out + [
            # The Job talks to MLflow: it waits for the mlflow layer (after) and for its own script.
            KubeObject(job, phase="after-peers", wait_for=tuple(o.ref for o in out)),
            # Served once the model exists (the Job is awaited until it completes).
            KubeObject(isvc, phase="after-all", wait_for=(ref(job), ref(sa))),
        ]

    @property
    def _otlp(self) -> str | None:
        """MLServer exports a span per request over OTLP gRPC when the collector runs (settings.tracing_server)."""
        metrics = self.peers.get(Metrics)
        return metrics.otlp_endpoint if metrics is not None else None

    # -- what it offers (ModelServing) --------------------------------------------------------------
    @property
    def model_service_account(self) -> str:
        return SERVICE_ACCOUNT

    def model_uri(self, path: str) -> str:
        store = self._store()
        if store is None:
            raise LookupError("no object store: KServe reads models from the MLflow bucket")
        return store.url("mlflow", path)

    def example_annotations(self) -> dict[str, str]:
        return self._example_annotations()

    def _example_annotations(self) -> dict[str, str]:
        if self.knative:  # Knative's autoscaler; keep one replica so the smoke test needs no cold start
            return {"serving.kserve.io/deploymentMode": "Knative", "autoscaling.knative.dev/min-scale": "1"}
        # no HPA: the example runs one replica (kind has no metrics-server)
        return {"serving.kserve.io/deploymentMode": "Standard", "serving.kserve.io/autoscalerClass": "none"}

    def workloads(self) -> list[Workload]:
        cpu, mem, _ = _CONTROLLER[self.profile.size]
        out = [Workload("kserve-controller-manager", cpu, mem),
               Workload("kserve-rbac-proxy", *_RBAC_PROXY[self.profile.size][:2])]
        if self.knative:
            op = _KNATIVE_OPERATOR[self.profile.size]
            out.append(Workload("knative-operator", op[0], op[1], 2))
            out += [Workload(f"knative-{name}", *sizes[self.profile.size][:2], self.profile.replicas, rendered=False)
                    for (name, _), sizes in _KNATIVE.items()]
        if self.options.example:
            out.append(Workload(f"{EXAMPLE}-predictor", *_PREDICTOR[self.profile.size][:2], rendered=False))
        return out

    def outputs(self) -> dict[str, Any]:
        out: dict[str, Any] = {"serviceAccount": SERVICE_ACCOUNT}
        if self.options.example:
            out["exampleUrl"] = (f"http://{EXAMPLE}-predictor.{EXAMPLE_NAMESPACE}.svc.cluster.local"
                                 f"/v2/models/{EXAMPLE}/infer")
        return out
