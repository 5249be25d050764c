"""Size profiles: `laptop` (kind on a workstation) and `production` (HA replicas, larger quotas).

A profile is a handful of settings that layers and cluster modules read; nothing compares a profile's
name. Each layer keeps its own request table per `size` next to the values it builds, so the
figures and the chart keys that carry them live together. A fork adds a profile here (a `staging`
with small requests and HA, say) without touching any layer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class Profile:
    name: str
    size: Literal["small", "large"]  # which request table layers use
    kind_workers: int  # CPU worker nodes of a kind cluster
    replicas: int  # replicas of platform controllers that support HA
    # Highly available topologies: a distributed object store, Alertmanager, JupyterHub's user
    # scheduler and image puller, a standby database in a second zone by default.
    ha: bool
    # Stateful resources (databases, buckets, the cluster itself) are protected from `pulumi destroy`
    # and the clouds' deletion protection is on.
    protect_state: bool
    queue_cpu: str  # ClusterQueue nominal quota when the kueue layer does not override it
    queue_memory: str
    container_request: dict[str, str]  # LimitRange defaults for team containers
    container_limit: dict[str, str]
    helm_timeout: int  # seconds Helm waits for a release to become ready
    # CPU a notebook is guaranteed at most (its profile's CPU is the limit); None: the profile's CPU.
    notebook_cpu_guarantee: float | None = None


PROFILES = {
    "laptop": Profile(
        name="laptop", size="small", kind_workers=1, replicas=1, ha=False, protect_state=False,
        queue_cpu="4", queue_memory="8Gi",
        container_request={"cpu": "100m", "memory": "128Mi"},
        container_limit={"cpu": "1", "memory": "1Gi"}, helm_timeout=600, notebook_cpu_guarantee=0.5,
    ),
    "production": Profile(
        name="production", size="large", kind_workers=3, replicas=2, ha=True, protect_state=True,
        queue_cpu="64", queue_memory="256Gi",
        container_request={"cpu": "250m", "memory": "256Mi"},
        container_limit={"cpu": "4", "memory": "8Gi"}, helm_timeout=1200,
    ),
}
