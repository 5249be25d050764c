"""trainer: Kubeflow Trainer v2 (TrainJob), with JobSet, the ClusterTrainingRuntimes and Kueue admission.

The chart (CRDs as templates, the controller, the JobSet subchart) goes into `kubeflow-system`; the
runtimes (torch, DeepSpeed, MLX, JAX, XGBoost, torchtune) are applied explicitly from the release's
kustomize overlay instead of the chart's hook Job (which runs as root and installs kubectl from the
internet at install time). TrainJobs in team namespaces that carry `kueue.x-k8s.io/queue-name` are
suspended by Kueue until its quota admits them; team groups may create TrainJobs (the `edit` role
aggregates them). The example TrainJob trains a tiny PyTorch model on CPU in the first team's namespace.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from addons.base import Layer
from modules.shared.config import LayerOptions
from modules.shared.k8s import edit_role, resources
from modules.shared.labels import MANAGED_BY
from modules.shared.offers import Queueing
from modules.shared.parts import KubeObject, Workload

API = "trainer.kubeflow.org/v1alpha1"
EXAMPLE = "example-torch"
RUNTIME = "torch-distributed"
_MANAGER = {"small": ("50m", "128Mi", "512Mi"), "large": ("100m", "300Mi", "1Gi")}
_JOBSET = ("500m", "128Mi")  # the JobSet subchart's own default requests
# Trains y = Xw + b with gloo on one CPU process; prints the final loss (read by the smoke test).
_SCRIPT = """import torch, torch.distributed as dist
dist.init_process_group(backend="gloo")
torch.manual_seed(0)
x = torch.randn(256, 4); y = x @ torch.tensor([1.0, -2.0, 3.0, 0.5]) + 0.1
model = torch.nn.Linear(4, 1); opt = torch.optim.SGD(model.parameters(), lr=0.1)
for step in range(50):
    opt.zero_grad(); loss = torch.nn.functional.mse_loss(model(x).squeeze(-1), y); loss.backward(); opt.step()
print(f"rank={dist.get_rank()} world={dist.get_world_size()} loss={loss.item():.4f}")
dist.destroy_process_group()
"""


class TrainerOptions(LayerOptions):
    example: bool = Field(
        True,
        description="submit the example PyTorch TrainJob (through Kueue) in the first team's namespace")


class Trainer(Layer):
    name = "trainer"
    component = "Trainer"
    description = ("Kubeflow Trainer: TrainJobs on ClusterTrainingRuntimes (PyTorch, DeepSpeed, JAX...), "
                   "queued by Kueue.")
    core = True
    chart = "kubeflow-trainer"
    manifests = ("trainer-runtimes",)
    after = {"teams": "objects", "kueue": "objects"}
    Options = TrainerOptions
    default_namespace = "kubeflow-system"

    def values(self) -> dict[str, Any]:
        return {
            "manager": {"replicas": self.profile.replicas, "resources": resources(*_MANAGER[self.profile.size])},
            "jobset": {"install": True},
            "crds": {"enabled": True},
            # Runtimes come from the pinned overlay, not from the chart's installer hook.
            "runtimes": {"defaultEnabled": False},
        }

    def objects(self) -> list[KubeObject]:
        out = [KubeObject(edit_role("cnai-trainer-edit", "trainer.kubeflow.org", ["trainjobs", "trainingruntimes"],
                                 ["trainjobs"]), phase="after-install")]
        ns = self.first_team_namespace()
        if not (self.options.example and ns):
            return out
        queueing = self.peers.get(Queueing)
        labels = {**MANAGED_BY, **(queueing.workload_labels() if queueing else {})}
        job = {
            "apiVersion": API, "kind": "TrainJob",
            "metadata": {"name": EXAMPLE, "namespace": ns, "labels": labels},
            "spec": {
                "runtimeRef": {"apiGroup": "trainer.kubeflow.org", "kind": "ClusterTrainingRuntime", "name": RUNTIME},
                # Created suspended; Kueue un-suspends it when the team's queue admits it.
                "suspend": queueing is not None,
                "trainer": {
                    "numNodes": 1, "numProcPerNode": 1,
                    "command": ["torchrun", "--no-python", "python3", "-c", _SCRIPT],
                    "resourcesPerNode": {"requests": {"cpu": "1", "memory": "2Gi"},
                                         "limits": {"cpu": "1", "memory": "2Gi"}},
                },
            },
        }
        # Kueue owns suspend and adds its placement as a runtime patch after admission.
        out.append(KubeObject(job, phase="after-all",
                              ignore_changes=("spec.suspend", "spec.runtimePatches")))
        return out

    def workloads(self) -> list[Workload]:
        cpu, mem, _ = _MANAGER[self.profile.size]
        return [Workload("trainer-controller-manager", cpu, mem, self.profile.replicas),
                Workload("jobset-controller-manager", *_JOBSET)]

    def outputs(self) -> dict[str, Any]:
        ns = self.first_team_namespace()
        return {"exampleTrainJob": f"{ns}/{EXAMPLE}"} if self.options.example and ns else {}
