"""katib: Kubeflow Katib hyperparameter tuning (standalone install) in the shared `kubeflow` namespace.

Installed from the release's `katib-standalone` kustomization (controller, DB manager, UI, MySQL on a
PVC of the default StorageClass) through a local kustomization that leaves the Namespace to the
platform. The controller's webhook injects the metrics collector into trial pods in namespaces
labelled `katib.kubeflow.org/metrics-collector-injection: enabled`: the kubeflow namespace and, via
the teams layer, every team namespace. Installed after Trainer when both are on, so Katib's
controller sees the TrainJob kind and accepts TrainJob trials. The example Experiment (two random-search
trials of a one-line busybox "training") runs in the first team's namespace.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from addons.base import KubeObject, Layer, Workload
from modules import k8s as kube
from modules.config import LayerOptions
from modules.k8s import MANAGED_BY

INJECTION_LABEL = "katib.kubeflow.org/metrics-collector-injection"
EXAMPLE = "example-random"
BUSYBOX = "registry.k8s.io/e2e-test-images/busybox:1.36.1-1"


class KatibOptions(LayerOptions):
    example: bool = Field(True, description="run the example Experiment (2 trials) in the first team's namespace")


class Katib(Layer):
    name = "katib"
    component = "Katib"
    description = "Hyperparameter tuning: Experiments whose trials run as Jobs or TrainJobs, results in MySQL."
    manifests = ("katib",)
    after = ("teams", "trainer")
    install_after = ("trainer",)  # the controller registers TrainJob trials only if the CRD exists when it starts
    Options = KatibOptions
    default_namespace = "kubeflow"
    pod_security = "baseline"
    pod_security_reason = "suggestion pods and the injected metrics-collector sidecar set no securityContext"

    def namespace_manifest(self) -> dict[str, Any] | None:
        labels = {kube.PLATFORM_LABEL: self.name, **kube.pod_security(self.pod_security), INJECTION_LABEL: "enabled"}
        return kube.namespace(self.namespace, labels)

    def _edit_role(self) -> KubeObject:
        """Aggregated into `edit`, which team groups hold in their namespaces."""
        return KubeObject({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": "cnai-katib-edit", "labels": {
                **MANAGED_BY, "rbac.authorization.k8s.io/aggregate-to-edit": "true",
                "rbac.authorization.k8s.io/aggregate-to-admin": "true"}},
            "rules": [{"apiGroups": ["kubeflow.org"], "resources": ["experiments", "trials", "suggestions"],
                       "verbs": ["get", "list", "watch", "create", "update", "patch", "delete", "deletecollection"]},
                      {"apiGroups": ["kubeflow.org"], "resources": ["experiments/status", "trials/status"],
                       "verbs": ["get", "list", "watch"]}],
        }, needs_chart=True)

    def example_namespace(self) -> str | None:
        return self.spec.teams[0].namespace if self.spec.teams and "teams" in self.peers else None

    def objects(self) -> list[KubeObject]:
        out = [self._edit_role()]
        ns = self.example_namespace()
        if not (self.options.example and ns):
            return out
        # One shell line: Katib wraps the command to capture stdout for its metrics collector.
        command = ("awk 'BEGIN { lr = ${trialParameters.learningRate}; "
                   "printf \"loss=%.6f\\n\", (lr - 0.05) * (lr - 0.05) }'")
        trial_job = {
            "apiVersion": "batch/v1", "kind": "Job",
            "spec": {"backoffLimit": 0, "template": {"spec": {
                "restartPolicy": "Never",
                "containers": [{"name": "training-container", "image": BUSYBOX, "command": ["sh", "-c", command],
                                "resources": {"requests": {"cpu": "50m", "memory": "32Mi"},
                                              "limits": {"memory": "64Mi"}}}],
            }}},
        }
        experiment = {
            "apiVersion": "kubeflow.org/v1beta1", "kind": "Experiment",
            "metadata": {"name": EXAMPLE, "namespace": ns, "labels": dict(MANAGED_BY)},
            "spec": {
                "objective": {"type": "minimize", "objectiveMetricName": "loss"},
                "algorithm": {"algorithmName": "random"},
                "maxTrialCount": 2, "parallelTrialCount": 2, "maxFailedTrialCount": 1,
                "metricsCollectorSpec": {"collector": {"kind": "StdOut"}},
                "parameters": [{"name": "lr", "parameterType": "double",
                                "feasibleSpace": {"min": "0.01", "max": "0.1"}}],
                "trialTemplate": {
                    "primaryContainerName": "training-container",
                    "trialParameters": [{"name": "learningRate", "description": "Learning rate", "reference": "lr"}],
                    "trialSpec": trial_job,
                },
            },
        }
        out.append(KubeObject(experiment, needs_chart=True, needs_after=True))
        return out

    def workloads(self) -> list[Workload]:
        # The standalone manifests set no requests; these are the pods it runs.
        return [Workload(n, "0", "0") for n in ("katib-controller", "katib-db-manager", "katib-ui", "katib-mysql")]

    def outputs(self) -> dict[str, Any]:
        return {"ui": f"kubectl -n {self.namespace} port-forward svc/katib-ui 8081:80, then http://localhost:8081/katib/"}
