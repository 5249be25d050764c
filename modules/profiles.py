"""Size profiles: `laptop` (kind on a workstation) and `production` (HA replicas, larger quotas).

A profile is a handful of knobs; each layer keeps its own per-profile resource table next to the
values it builds, so the figures and the chart keys that carry them live together.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Profile:
    name: str
    kind_workers: int  # CPU worker nodes of a kind cluster
    replicas: int  # replicas of platform controllers that support HA
    queue_cpu: str  # ClusterQueue nominal quota when the kueue layer does not override it
    queue_memory: str
    container_request: dict[str, str]  # LimitRange defaults for team containers
    container_limit: dict[str, str]
    helm_timeout: int  # seconds Helm waits for a release to become ready


PROFILES = {
    "laptop": Profile(
        name="laptop", kind_workers=1, replicas=1, queue_cpu="4", queue_memory="8Gi",
        container_request={"cpu": "100m", "memory": "128Mi"},
        container_limit={"cpu": "1", "memory": "1Gi"}, helm_timeout=600,
    ),
    "production": Profile(
        name="production", kind_workers=3, replicas=2, queue_cpu="64", queue_memory="256Gi",
        container_request={"cpu": "250m", "memory": "256Mi"},
        container_limit={"cpu": "4", "memory": "8Gi"}, helm_timeout=1200,
    ),
}
