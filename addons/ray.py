"""ray: the KubeRay operator; teams run RayClusters, RayJobs and RayServices in their namespaces, queued by Kueue.

- The pinned `kuberay-operator` chart (CRDs from the chart's `crds/`, the operator in `ray-system`) with
  explicit requests, replicas from the profile (leader election is on) and, with the observability layer,
  the chart's ServiceMonitor.
- The operator's structured configuration (`configuration.enabled`) injects `defaultContainerEnvs` into
  the Ray container of every head and worker pod it creates (KubeRay v1.7.0 `setContainerEnvVars`): the
  MLflow tracking URI, the object store endpoint and the Iceberg catalog settings (`Lakehouse.client_env()`,
  credentials by `secretKeyRef` to the namespace's client Secret, optional). Never a key in plain text; on
  EKS/GKE pods reach storage through the lakehouse client ServiceAccount's workload identity.
- ClusterRole `cnai-ray-edit`, aggregated into `edit`: team groups manage Ray resources in their namespaces.
- With `example: true`: RayJob `example-ray` in the first team's namespace, labelled for the team's Kueue
  LocalQueue (created suspended; Kueue admits it through the team's ClusterQueue), restricted-compliant head,
  worker and submitter pods, whose driver prints one `RAY-EXAMPLE-RESULT {json}` line.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

import yaml
from pydantic import Field

from addons.base import Layer
from modules.shared.config import ConfigError, LayerOptions
from modules.shared.gpus import GPU_CLAIM_TEMPLATE
from modules.shared.k8s import edit_role, resources
from modules.shared.labels import MANAGED_BY
from modules.shared.offers import BucketStore, Lakehouse, Metrics, Queueing, RayRuntime, Tracking
from modules.shared.parts import KubeObject, Workload
from modules.shared.versions import VERSIONS

API = "ray.io/v1"
OPERATOR = "kuberay-operator"  # the chart's fullnameOverride: Deployment, Service, ConfigMap `<name>-config`
EXAMPLE = "example-ray"
DASHBOARD_PORT = 8265
RAY_UID = 1000  # rayproject/ray: USER 1000 (numeric, so runAsNonRoot can be checked)
RESULT_MARKER = "RAY-EXAMPLE-RESULT "
CONFIG_HASH = "platform.cnai.dev/config-sha256"  # operator pod annotation: a changed env restarts it
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Operator (cpu, memory, memory limit). The chart's default limits (100m CPU, 512Mi) stay in its values under
# Helm's merge, so the layer sets the CPU limit itself: 1 CPU, above every request here.
_SIZES = {"small": ("50m", "128Mi", "512Mi"), "large": ("200m", "512Mi", "2Gi")}
_CPU_LIMIT = "1"
# The example's pods (cpu, memory, memory limit): Kueue counts head, worker and submitter PodSets.
_HEAD = ("500m", "1Gi", "2Gi")
_WORKER = ("500m", "1Gi", "1536Mi")
_SUBMITTER = ("100m", "256Mi", "768Mi")
# The example's driver (runs on the head): ten Ray tasks, then one JSON line. The program is passed as
# `python -c "..."` through two shells (KubeRay's submitter, then Ray's job runner), so it holds no
# double quote, dollar sign, backquote or backslash (tests/test_ray.py checks).
_PROGRAM = """import json, os, socket
import ray
PREFIXES = ('MLFLOW_', 'PYICEBERG_', 'LAKEHOUSE_', 'AWS_')
def seen():
    return sorted(k for k in os.environ if k.startswith(PREFIXES))
ray.init()
@ray.remote
def square(x):
    return x * x, socket.gethostname(), seen()
results = ray.get([square.remote(i) for i in range(10)])
total = sum(r[0] for r in results)
nodes = [n for n in ray.nodes() if n['Alive']]
print('@MARKER@' + json.dumps({'sum': total, 'expected': 285, 'nodes': len(nodes),
    'hosts': sorted({r[1] for r in results}), 'driver_env': seen(),
    'task_env': sorted({k for r in results for k in r[2]}),
    'mlflow': os.environ.get('MLFLOW_TRACKING_URI', '')}))
assert total == 285, total
""".replace("@MARKER@", RESULT_MARKER)


class RayOptions(LayerOptions):
    example: bool = Field(
        True, description="submit the example RayJob (a few Ray tasks on CPU, through Kueue) in the first team's "
                          "namespace")
    env: dict[str, str] = Field(
        default_factory=dict,
        description="extra environment variables every Ray container gets (plain values, never credentials); "
                    "names the platform injects (MLFLOW_TRACKING_URI, AWS_ENDPOINT_URL, the lakehouse's) are refused")


def _image() -> tuple[str, str]:
    """The pinned Ray image and its version (`rayVersion` must match the image)."""
    image = VERSIONS.images["ray"]
    return image, image.rsplit(":", 1)[1].split("-", 1)[0]


def container_security() -> dict[str, Any]:
    """Pod Security `restricted` for a container of the Ray image (KubeRay copies it into the init containers
    it injects)."""
    return {"runAsNonRoot": True, "runAsUser": RAY_UID, "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"}}


def _container(name: str, size: tuple[str, str, str], **extra: Any) -> dict[str, Any]:
    image, _ = _image()
    return {"name": name, "image": image, "imagePullPolicy": "IfNotPresent", "resources": resources(*size),
            "securityContext": container_security(), **extra}


class Ray(Layer):
    name = "ray"
    component = "Ray"
    description = "KubeRay: RayClusters, RayJobs and RayServices in team namespaces, queued by Kueue."
    chart = "kuberay-operator"
    # The example lands in a team namespace and queue; the chart renders a ServiceMonitor when the Prometheus
    # CRDs exist. Not after lakehouse: that layer comes after this one (its example is a RayJob), so the
    # lakehouse-client ServiceAccount the example runs as may appear a moment after it (KubeRay retries).
    after = {"teams": "objects", "kueue": "objects", "observability": "install"}
    offers = (RayRuntime,)
    Options = RayOptions
    default_namespace = "ray-system"

    # -- what it offers ----------------------------------------------------------------------------
    @property
    def ray_image(self) -> str:
        return _image()[0]

    # -- what every Ray container gets -------------------------------------------------------------
    def platform_env(self) -> list[dict[str, Any]]:
        """EnvVars the platform injects: the tracking URI, the lakehouse's client settings (credentials by
        optional secretKeyRef), and the in-cluster object store endpoint (the notebooks' variable)."""
        env: list[dict[str, Any]] = []
        tracking = self.peers.get(Tracking)
        if tracking:
            env.append({"name": "MLFLOW_TRACKING_URI", "value": tracking.tracking_uri})
        lakehouse = self.peers.get(Lakehouse)
        if lakehouse:
            env += [dict(e) for e in lakehouse.client_env()]
        store = self.peers.get(BucketStore)
        if store is not None and store.client_endpoint and not any(e["name"] == "AWS_ENDPOINT_URL" for e in env):
            env.append({"name": "AWS_ENDPOINT_URL", "value": store.client_endpoint})
        return env

    def default_env(self) -> list[dict[str, Any]]:
        """`configuration.defaultContainerEnvs`: the platform's env, then the stack's `env`."""
        return self.platform_env() + [{"name": k, "value": v} for k, v in sorted(self.options.env.items())]

    def validate(self) -> None:
        taken = {e["name"] for e in self.platform_env()}
        for name in sorted(self.options.env):
            if not ENV_NAME.match(name):
                raise ConfigError(f"cnai:layers.ray.env.{name}: not an environment variable name "
                                  "(letters, digits, underscores; not starting with a digit)")
            if name in taken:
                raise ConfigError(f"cnai:layers.ray.env.{name}: the platform already injects {name}; remove it")

    # -- the chart ---------------------------------------------------------------------------------
    def values(self) -> dict[str, Any]:
        cpu, memory, memory_limit = _SIZES[self.profile.size]
        res = resources(cpu, memory, memory_limit)
        res["limits"]["cpu"] = _CPU_LIMIT
        env = self.default_env()
        digest = hashlib.sha256(json.dumps(env, sort_keys=True, default=str).encode()).hexdigest()
        return {
            "replicas": self.profile.replicas,
            "resources": res,
            "metrics": {"serviceMonitor": {"enabled": self.peers.get(Metrics) is not None}},
            # The operator reads its ConfigMap once at start; the digest rolls it when the env changes.
            "annotations": {CONFIG_HASH: digest},
            "configuration": {"enabled": True, "defaultContainerEnvs": env},
        }

    def workloads(self) -> list[Workload]:
        cpu, memory, _ = _SIZES[self.profile.size]
        return [Workload(OPERATOR, cpu, memory, self.profile.replicas)]

    # -- objects -----------------------------------------------------------------------------------
    def _pod(self, container: dict[str, Any], identity: bool = True) -> dict[str, Any]:
        pod: dict[str, Any] = {"containers": [container],
                               "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}}
        lakehouse = self.peers.get(Lakehouse)
        if lakehouse and identity:  # the client identity on clouds; the Secret's keys elsewhere
            pod["serviceAccountName"] = lakehouse.client_service_account
        return pod

    def gpu_worker_group(self, name: str = "gpu", gpus: int = 1, replicas: int = 1, cpu: str = "1",
                         memory: str = "4Gi") -> dict[str, Any]:
        """A RayCluster worker group of `replicas` pods with `gpus` GPUs each, as a team writes it: the GPU
        resource the nodes advertise (or claims from the namespace's `gpu` ResourceClaimTemplate under DRA),
        and the GPU nodes' selector and tolerations (Kueue's GPU flavor adds the same on admission)."""
        c = self.caps
        container = _container("ray-worker", (cpu, memory, memory))
        pod = self._pod(container)
        if c.gpu_allocation == "dra":
            claims = [f"gpu-{i}" for i in range(gpus)]
            pod["resourceClaims"] = [{"name": n, "resourceClaimTemplateName": GPU_CLAIM_TEMPLATE} for n in claims]
            container["resources"]["claims"] = [{"name": n} for n in claims]
        else:
            container["resources"]["limits"][c.gpu_resource] = str(gpus)
        if c.gpu_node_selector:
            pod["nodeSelector"] = dict(c.gpu_node_selector)
        if c.gpu_tolerations:
            pod["tolerations"] = [dict(t) for t in c.gpu_tolerations]
        return {"groupName": name, "replicas": replicas, "minReplicas": replicas, "maxReplicas": replicas,
                "rayStartParams": {}, "template": {"spec": pod}}

    def example_job(self, namespace: str) -> dict[str, Any]:
        """The example RayJob: head, one CPU worker, and a compliant submitter (KubeRay's default has no
        securityContext)."""
        _, version = _image()
        queueing = self.peers.get(Queueing)
        labels = {**MANAGED_BY, **(queueing.workload_labels() if queueing else {})}
        submitter = _container("ray-job-submitter", _SUBMITTER)
        return {
            "apiVersion": API, "kind": "RayJob",
            "metadata": {"name": EXAMPLE, "namespace": namespace, "labels": labels},
            "spec": {
                "entrypoint": f'python -c "{_PROGRAM}"',
                # Kueue requires it: the RayCluster is deleted when the job ends, giving the quota back.
                "shutdownAfterJobFinishes": True,
                # Created suspended; Kueue un-suspends it when the team's queue admits it.
                "suspend": queueing is not None,
                "submitterPodTemplate": {"spec": {
                    "restartPolicy": "Never", "containers": [submitter],
                    "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}}},
                "rayClusterSpec": {
                    "rayVersion": version,
                    "headGroupSpec": {"rayStartParams": {},
                                      "template": {"spec": self._pod(_container("ray-head", _HEAD), False)}},
                    "workerGroupSpecs": [{
                        "groupName": "cpu", "replicas": 1, "minReplicas": 1, "maxReplicas": 1, "rayStartParams": {},
                        "template": {"spec": self._pod(_container("ray-worker", _WORKER), False)}}],
                },
            },
        }

    def iceberg_runtime_env(self) -> str:
        """`runtimeEnvYAML` that installs the pinned PyIceberg for a RayJob (needs egress to PyPI: the team's
        `allowInternetEgress`, or bake it into the image instead)."""
        pin = VERSIONS.components["pyiceberg"]
        return yaml.safe_dump({"pip": [f"pyiceberg[pyarrow]=={pin}"]}, sort_keys=False)

    def objects(self) -> list[KubeObject]:
        kinds = ["rayclusters", "rayjobs", "rayservices"]
        out = [KubeObject(edit_role("cnai-ray-edit", "ray.io", kinds, kinds), phase="after-install")]
        ns = self.first_team_namespace()
        if self.options.example and ns:
            # Kueue owns suspend (and adds its flavor's placement to the pod templates while admitted).
            out.append(KubeObject(self.example_job(ns), phase="after-all", ignore_changes=("spec.suspend",)))
        return out

    # -- outputs -----------------------------------------------------------------------------------
    def outputs(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "operatorNamespace": self.namespace,
            # A RayJob's or RayService's head Service is named after it, not after its generated RayCluster.
            "dashboard": f"kubectl -n <team-namespace> port-forward svc/<raycluster|rayjob>-head-svc "
                         f"{DASHBOARD_PORT}:{DASHBOARD_PORT}, then http://localhost:{DASHBOARD_PORT}",
        }
        ns = self.first_team_namespace()
        if self.options.example and ns:
            out["exampleRayJob"] = f"{ns}/{EXAMPLE}"
            out["exampleDashboard"] = (f"kubectl -n {ns} port-forward svc/{EXAMPLE}-head-svc "
                                       f"{DASHBOARD_PORT}:{DASHBOARD_PORT} (while the job runs), then "
                                       f"http://localhost:{DASHBOARD_PORT}")
        return out
