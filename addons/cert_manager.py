"""cert-manager: X.509 certificates for webhooks and services (upstream chart, CRDs included)."""

from __future__ import annotations

from typing import Any

from addons.base import Layer
from modules.shared.k8s import resources
from modules.shared.parts import Workload

# requests per pod: (cpu, memory, memory limit)
_SIZES = {
    "small": {"controller": ("10m", "48Mi", "128Mi"), "webhook": ("5m", "24Mi", "64Mi"),
               "cainjector": ("5m", "48Mi", "128Mi"), "startupapicheck": ("5m", "32Mi", "64Mi")},
    "large": {"controller": ("50m", "128Mi", "512Mi"), "webhook": ("20m", "64Mi", "128Mi"),
                   "cainjector": ("20m", "128Mi", "512Mi"), "startupapicheck": ("10m", "32Mi", "64Mi")},
}


class CertManager(Layer):
    name = "cert-manager"
    component = "CertManager"
    description = "Issues and renews X.509 certificates (webhook serving certs for KServe and others)."
    core = True
    chart = "cert-manager"
    default_namespace = "cert-manager"

    def _size(self, part: str) -> dict[str, Any]:
        return resources(*_SIZES[self.profile.size][part])

    def values(self) -> dict[str, Any]:
        replicas = self.profile.replicas
        pdb = {"enabled": replicas > 1, "minAvailable": 1} if replicas > 1 else {"enabled": False}
        return {
            # CRDs come with the release; keep them on uninstall so certificates survive a reinstall.
            "crds": {"enabled": True, "keep": True},
            "replicaCount": replicas,
            "resources": self._size("controller"),
            "podDisruptionBudget": pdb,
            "webhook": {"replicaCount": replicas, "resources": self._size("webhook"), "podDisruptionBudget": pdb},
            "cainjector": {"replicaCount": replicas, "resources": self._size("cainjector"), "podDisruptionBudget": pdb},
            # The post-install check waits until the webhook answers, so layers that create
            # Certificates right after this release do not race the webhook.
            "startupapicheck": {"enabled": True, "resources": self._size("startupapicheck")},
        }

    def workloads(self) -> list[Workload]:
        sizes = _SIZES[self.profile.size]
        return [Workload(f"cert-manager-{part}", sizes[part][0], sizes[part][1], self.profile.replicas)
                for part in ("controller", "webhook", "cainjector")]
