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

from addons.base import Layer
from modules.shared.config import LayerOptions, Team
from modules.shared.k8s import edit_role
from modules.shared.labels import KATIB_INJECTION_LABEL, MANAGED_BY
from modules.shared.parts import KubeObject, Workload

EXAMPLE = "example-random"
BUSYBOX = "registry.k8s.io/e2e-test-images/busybox:1.36.1-1"


class KatibOptions(LayerOptions):
    example: bool = Field(True, description="run the example Experiment (2 trials) in the first team's namespace")


class Katib(Layer):
    name = "katib"
    component = "Katib"
    description = "Hyperparameter tuning: Experiments whose trials run as Jobs or TrainJobs, results in MySQL."
    core = True
    manifests = ("katib",)
    # The controller registers TrainJob trials only if Trainer's CRD exists when it starts.
    after = {"teams": "objects", "trainer": "install"}
    Options = KatibOptions
    default_namespace = "kubeflow"
    namespace_fixed = "Katib's install manifests put every object in namespace kubeflow"
    pod_security = "baseline"
    pod_security_reason = "suggestion pods and the injected metrics-collector sidecar set no securityContext"

    def namespace_labels(self) -> dict[str, str]:
        return {KATIB_INJECTION_LABEL: "enabled"}

    def team_namespace(self, team: Team) -> tuple[dict[str, str], dict[str, str]]:
        return {KATIB_INJECTION_LABEL: "enabled"}, {}  # trials in team namespaces get the metrics collector

    def objects(self) -> list[KubeObject]:
        out = [KubeObject(edit_role("cnai-katib-edit", "kubeflow.org", ["experiments", "trials", "suggestions"],
                                 ["experiments", "trials"]), phase="after-install")]
        ns = self.first_team_namespace()
        if not (self.options.example and ns):
            return out
        # One shell line: Katib wraps the command to capture stdout for its metrics collector.
        command = ("awk 'BEGIN { lr = ${trialParameters.learningRate}; "
                   "printf \"loss=%.6f\\n\", (lr - 0.05) * (lr - 0.05) }'")
        trial_job = {
            "apiVersion": "batch/v1", "kind": "Job",
            # Katib's advice for trials in sidecar-injected (Kubeflow profile) namespaces: no sidecar.
            "spec": {"backoffLimit": 0, "template": {
                "metadata": {"labels": {"sidecar.istio.io/inject": "false"}}, "spec": {
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
        out.append(KubeObject(experiment, phase="after-all"))
        return out

    def workloads(self) -> list[Workload]:
        # The standalone manifests set no requests; these are the pods it runs.
        return [Workload(n, "0", "0", rendered=False)
                for n in ("katib-controller", "katib-db-manager", "katib-ui", "katib-mysql")]

    def outputs(self) -> dict[str, Any]:
        return {"ui": f"kubectl -n {self.namespace} port-forward svc/katib-ui 8081:80, then http://localhost:8081/katib/"}
