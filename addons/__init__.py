"""Platform layers. Each module declares one Layer; this registry is the list the program resolves."""

from addons.base import Layer
from addons.cert_manager import CertManager
from addons.cluster_autoscaler import ClusterAutoscaler
from addons.feast import Feast
from addons.gpu_operator import GpuOperator
from addons.jupyterhub import JupyterHub
from addons.katib import Katib
from addons.kserve import KServe
from addons.kubeflow_platform import KubeflowPlatform
from addons.kueue import Kueue
from addons.mlflow import Mlflow
from addons.object_store import ObjectStore
from addons.observability import Observability
from addons.pipelines import Pipelines
from addons.postgres import Postgres
from addons.teams import Teams
from addons.trainer import Trainer

LAYERS: dict[str, type[Layer]] = {
    cls.name: cls for cls in (CertManager, ClusterAutoscaler, GpuOperator, Kueue, ObjectStore, Postgres, Mlflow, KServe, Feast, JupyterHub, Trainer, Katib, Pipelines, KubeflowPlatform, Observability, Teams)
}
