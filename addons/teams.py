"""Teams: one namespace per team with quota, limit range, network isolation and RBAC.

Each team in `cnai:teams` gets namespace `team-<name>` (Pod Security `baseline`) with
- a ResourceQuota (cpu/memory requests, GPUs, pods, storage) from the team's quota;
- a LimitRange giving containers default requests and limits from the profile;
- NetworkPolicies: deny all by default, then allow traffic inside the namespace, to and from the
  platform's namespaces, DNS, and (opt-in per team) egress to the internet;
- a RoleBinding of the `edit` ClusterRole to the team's identity-provider group.
With the kubeflow-platform layer the namespace is also labelled and annotated as a Kubeflow profile
namespace (sidecar injection, PodDefaults, `owner`), so that layer's Profile adopts it.
Other layers add their per-team objects (a Kueue LocalQueue, ...) ordered after this layer.
"""

from __future__ import annotations

from typing import Any

from addons.base import Layer
from modules.shared.config import ConfigError, Team
from modules.shared.gpus import DRA_GPU_CLASS
from modules.shared.k8s import namespace, pod_security
from modules.shared.labels import MANAGED_BY, PLATFORM_LABEL, TEAM_LABEL
from modules.shared.offers import Queueing, TeamDirectory
from modules.shared.parts import KubeObject

_PRIVATE_RANGES = ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16"]


class Teams(Layer):
    name = "teams"
    component = "Teams"
    description = "Namespace per team with quota, limits, default-deny networking and RBAC for the team's group."
    core = True
    offers = (TeamDirectory,)

    def all_teams(self) -> tuple[Team, ...]:
        return tuple(self.spec.teams)

    def validate(self) -> None:
        spec = self.spec
        seen: set[str] = set()
        for i, team in enumerate(spec.teams):
            if team.name in seen:
                raise ConfigError(f"cnai:teams[{i}].name: team {team.name!r} is declared twice; names must be unique")
            seen.add(team.name)
            if (team.quota.gpu or team.quota.gpuResources) and not spec.gpu.enabled:
                raise ConfigError(f"cnai:teams[{i}].quota.gpu: {team.quota.gpu} GPU(s) requested but "
                                  "cnai:gpu.enabled is false; set the GPU quota to 0 or enable GPUs")
            self.caps.check_gpu_resources(f"cnai:teams[{i}].quota.gpuResources", team.quota.gpuResources)
            if team.quota.gpu and self.caps.gpu_resource in team.quota.gpuResources:
                raise ConfigError(f"cnai:teams[{i}].quota: gpu and gpuResources both set "
                                  f"{self.caps.gpu_resource}; give it once")

    def objects(self) -> list[KubeObject]:
        out: list[KubeObject] = []
        for team in self.spec.teams:
            out += [KubeObject(m) for m in self.team_objects(team)]
        return out

    def _gpu_quota_key(self, resource: str) -> str:
        """The ResourceQuota key of a GPU resource: device-plugin resources by name; with DRA, devices of
        NVIDIA's GPU DeviceClass (ResourceQuota counts claimed devices per class)."""
        if self.caps.gpu_allocation == "dra":
            return f"{DRA_GPU_CLASS}.deviceclass.resource.k8s.io/devices"
        return f"requests.{resource}"

    def _peer_metadata(self, team: Team) -> tuple[dict[str, str], dict[str, str]]:
        """Labels and annotations other layers need on the team's namespace (`Layer.team_namespace`:
        Kueue admits from it, Katib injects its collector, the Kubeflow platform adopts it as a profile)."""
        labels: dict[str, str] = {}
        annotations: dict[str, str] = {}
        for layer in self.peers:
            more_labels, more_annotations = layer.team_namespace(team)
            labels.update(more_labels)
            annotations.update(more_annotations)
        return labels, annotations

    def team_objects(self, team: Team) -> list[dict[str, Any]]:
        ns = team.namespace
        labels = {**MANAGED_BY, TEAM_LABEL: team.name}

        def meta(name: str) -> dict[str, Any]:
            return {"name": name, "namespace": ns, "labels": labels}

        q = team.quota
        peer_labels, peer_annotations = self._peer_metadata(team)
        hard = {"requests.cpu": q.cpu, "requests.memory": q.memory, "limits.memory": q.memory,
                "pods": str(q.pods), "requests.storage": q.storage,
                **{self._gpu_quota_key(r): str(n) for r, n in self.caps.gpu_quota(q).items()}}
        queueing = self.peers.get(Queueing)
        if queueing is not None:
            # The namespace's ceiling is what the team's queue can hold with borrowing: Kueue decides who
            # gets idle capacity; a lower ceiling would refuse borrowed capacity after Kueue admitted it.
            ceiling = queueing.team_ceiling(team)
            hard.update({"requests.cpu": ceiling["cpu"], "requests.memory": ceiling["memory"],
                         "limits.memory": ceiling["memory"]})
            hard.update({self._gpu_quota_key(r): ceiling[r] for r in self.caps.gpu_quota(q)})
        p = self.profile
        objs: list[dict[str, Any]] = [
            namespace(ns, {TEAM_LABEL: team.name, **pod_security("baseline"), **peer_labels}, peer_annotations or None),
            {"apiVersion": "v1", "kind": "ResourceQuota", "metadata": meta("team-quota"), "spec": {"hard": hard}},
            {"apiVersion": "v1", "kind": "LimitRange", "metadata": meta("container-defaults"),
             "spec": {"limits": [{"type": "Container", "defaultRequest": dict(p.container_request),
                                  "default": dict(p.container_limit)}]}},
            self._policy(meta("default-deny"), {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}),
            self._policy(meta("allow-same-namespace"), {
                "podSelector": {}, "policyTypes": ["Ingress", "Egress"],
                "ingress": [{"from": [{"podSelector": {}}]}], "egress": [{"to": [{"podSelector": {}}]}]}),
            self._policy(meta("allow-platform"), {
                "podSelector": {}, "policyTypes": ["Ingress", "Egress"],
                "ingress": [{"from": [{"namespaceSelector": self._platform()}]}],
                "egress": [{"to": [{"namespaceSelector": self._platform()}]}]}),
            self._policy(meta("allow-dns"), {
                "podSelector": {}, "policyTypes": ["Egress"],
                "egress": [{"to": [{"namespaceSelector": {"matchLabels": {
                                        "kubernetes.io/metadata.name": "kube-system"}},
                                    "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}],
                            "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]}]}),
            {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": meta("team-edit"),
             "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "edit"},
             "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": team.rbac_group}]},
        ]
        if team.allowInternetEgress:
            objs.append(self._policy(meta("allow-internet-egress"), {
                "podSelector": {}, "policyTypes": ["Egress"],
                "egress": [{"to": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": _PRIVATE_RANGES}}]}]}))
        return objs

    @staticmethod
    def _platform() -> dict[str, Any]:
        return {"matchExpressions": [{"key": PLATFORM_LABEL, "operator": "Exists"}]}

    @staticmethod
    def _policy(meta: dict[str, Any], spec: dict[str, Any]) -> dict[str, Any]:
        return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": meta, "spec": spec}
