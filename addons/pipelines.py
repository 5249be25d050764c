"""pipelines: Kubeflow Pipelines 2.17 standalone (single user) in the shared `kubeflow` namespace.

Installed from the release's kustomizations in two steps: the cluster-scoped resources (CRDs for
pipelines and Argo Workflows v4.0.5, cache-deployer RBAC), then `env/platform-agnostic` (API server,
UI, persistence agent, scheduled workflows, metadata, cache, Argo's workflow controller, and the
release's own MySQL and SeaweedFS on PVCs of the default StorageClass). The release's manifests do
not take an external database or object store without patching several hard-coded endpoints, so
Pipelines keeps its own (docs/layers/pipelines.md). Notebooks get `KF_PIPELINES_ENDPOINT`.
"""

from __future__ import annotations

from typing import Any

from addons.base import Layer
from modules.shared.offers import PipelinesApi
from modules.shared.parts import Workload

API_PORT = 8888


class Pipelines(Layer):
    name = "pipelines"
    component = "Pipelines"
    description = "Kubeflow Pipelines: ML workflows on Argo, with its own MySQL and artifact store."
    core = True
    manifests = ("pipelines-cluster", "pipelines")
    offers = (PipelinesApi,)
    default_namespace = "kubeflow"
    namespace_fixed = "Pipelines' install manifests put every object in namespace kubeflow"
    pod_security = "baseline"
    pod_security_reason = "pipeline run pods set no securityContext unless every pipeline sets one"

    @property
    def endpoint(self) -> str:
        return f"http://ml-pipeline.{self.namespace}.svc.cluster.local:{API_PORT}"

    def workloads(self) -> list[Workload]:
        # Requests of the release's manifests (platform-agnostic), summed from its Deployments.
        return [Workload("ml-pipeline", "250m", "500Mi", rendered=False),
                Workload("mysql", "100m", "800Mi", rendered=False),
                Workload("ml-pipeline-persistenceagent", "120m", "500Mi", rendered=False),
                Workload("workflow-controller", "100m", "500Mi", rendered=False),
                Workload("other pipelines pods", "104m", "826Mi", rendered=False)]

    def outputs(self) -> dict[str, Any]:
        return {"endpoint": self.endpoint,
                "ui": f"kubectl -n {self.namespace} port-forward svc/ml-pipeline-ui 8080:80, then http://localhost:8080"}
