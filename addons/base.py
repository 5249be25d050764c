"""The layer contract: every addon module declares one `Layer` subclass with the same shape.

A layer declares
- `name`, `component` (its ComponentResource type is `cnai:addons:<component>`), `description`;
- `requires`: layers that must be enabled and Ready first (hard dependency, checked in config);
- `after`: layers it is ordered after *when they are enabled* (for per-team objects), never the chart;
- `chart`: the key of its pinned upstream chart in `versions.yaml` (None for platform-native layers);
- `Options`: its config model (`cnai:layers.<name>`), a `LayerOptions` subclass;
- `values()`: chart values from the cluster's capabilities, the profile and its options;
- `workloads()`: the pods it runs and what they request, from the same tables as `values()`;
- `objects()`: Kubernetes objects it creates directly, each marked with what it must wait for.
`deploy()` turns that into resources; layers never branch on the environment's name.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, ClassVar

import pulumi
import pulumi_kubernetes as k8s

from modules import k8s as kube
from modules.cluster import Capabilities, Cluster
from modules.config import ConfigError, LayerOptions, PlatformSpec
from modules.profiles import PROFILES, Profile
from modules.versions import VERSIONS, ChartSource


@dataclass(frozen=True)
class Workload:
    """Pods a layer runs: `count` pods (replicas, or one per node for DaemonSets), each requesting cpu/memory."""

    name: str
    cpu: str
    memory: str
    count: int = 1

    @property
    def cpu_cores(self) -> Decimal:
        return kube.cpu(self.cpu) * self.count

    @property
    def memory_mib(self) -> Decimal:
        return kube.mib(self.memory) * self.count


@dataclass(frozen=True)
class KubeObject:
    """A Kubernetes object a layer creates directly.

    `needs_chart`: created after the layer's release (its CRDs and webhooks); `before_chart`: the
    release waits for it (configuration the chart's pods read); `needs_after`: created after the
    layers named in `Layer.after` (per-team objects in team namespaces).
    """

    manifest: dict[str, Any]
    needs_chart: bool = False
    needs_after: bool = False
    before_chart: bool = False


def resources(cpu: str, memory: str, memory_limit: str | None = None) -> dict[str, Any]:
    """A container `resources` block: requests, and a memory limit (CPU is left unthrottled)."""
    return {"requests": {"cpu": cpu, "memory": memory}, "limits": {"memory": memory_limit or memory}}


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


class Layer:
    name: ClassVar[str]
    component: ClassVar[str]
    description: ClassVar[str]
    requires: ClassVar[tuple[str, ...]] = ()
    after: ClassVar[tuple[str, ...]] = ()
    chart: ClassVar[str | None] = None
    Options: ClassVar[type[LayerOptions]] = LayerOptions
    default_namespace: ClassVar[str | None] = None
    pod_security: ClassVar[str] = "restricted"
    pod_security_reason: ClassVar[str] = ""

    def __init__(self, spec: PlatformSpec, caps: Capabilities):
        self.spec = spec
        self.caps = caps
        self.profile: Profile = PROFILES[spec.profile]
        self.options = spec.layer(self.name)

    # -- declaration ---------------------------------------------------------------------------
    @classmethod
    def validate(cls, spec: PlatformSpec, caps: Capabilities) -> None:
        """Cross-field checks beyond the Options model; raise ConfigError with one line."""

    @property
    def source(self) -> ChartSource | None:
        return VERSIONS.chart(self.chart) if self.chart else None

    @property
    def namespace(self) -> str | None:
        return self.options.namespace or self.default_namespace

    def values(self) -> dict[str, Any]:
        return {}

    def workloads(self) -> list[Workload]:
        return []

    def objects(self) -> list[KubeObject]:
        return []

    def release_timeout(self) -> int:
        return self.profile.helm_timeout

    def outputs(self) -> dict[str, Any]:
        return {}

    # -- derived -------------------------------------------------------------------------------
    def final_values(self) -> dict[str, Any]:
        """Built values with the stack's `cnai:layers.<name>.values` overrides merged on top."""
        return deep_merge(self.values(), self.options.values)

    def namespace_manifest(self) -> dict[str, Any] | None:
        if not self.namespace:
            return None
        labels = {kube.PLATFORM_LABEL: self.name, **kube.pod_security(self.pod_security)}
        return kube.namespace(self.namespace, labels)

    def all_objects(self) -> list[KubeObject]:
        ns = self.namespace_manifest()
        return ([KubeObject(ns)] if ns else []) + self.objects()


class LayerComponent(pulumi.ComponentResource):
    """One deployed layer: its namespace, its Helm release and the objects it creates directly."""

    def __init__(self, layer: Layer, cluster: Cluster, requires: list[pulumi.Resource],
                 after: list[pulumi.Resource]):
        super().__init__(f"cnai:addons:{layer.component}", layer.name, None,
                         pulumi.ResourceOptions(provider=cluster.provider))
        self.layer = layer
        child = pulumi.ResourceOptions(parent=self)
        created: dict[str, pulumi.Resource] = {}

        def register(o: KubeObject, deps: list[pulumi.Resource]) -> pulumi.Resource:
            ns = o.manifest["metadata"].get("namespace")
            if ns in created:
                deps = deps + [created[ns]]
            res = kube.apply(o.manifest, pulumi.ResourceOptions.merge(child, pulumi.ResourceOptions(depends_on=deps)))
            if o.manifest["kind"] == "Namespace":
                created[o.manifest["metadata"]["name"]] = res
            return res

        first = list(cluster.ready) + list(requires)
        ns_manifest = layer.namespace_manifest()
        base = [register(KubeObject(ns_manifest), first)] if ns_manifest else first
        objects = layer.objects()
        prereqs = [register(o, list(base)) for o in objects if o.before_chart]
        self.release: k8s.helm.v3.Release | None = None
        src = layer.source
        if src:
            self.release = k8s.helm.v3.Release(
                layer.name,
                name=layer.name,
                chart=src.ref,
                version=src.version,
                repository_opts=None if src.oci else k8s.helm.v3.RepositoryOptsArgs(repo=src.repo),
                namespace=layer.namespace,
                create_namespace=False,
                values=layer.final_values(),
                timeout=layer.release_timeout(),
                max_history=5,
                cleanup_on_fail=True,
                opts=pulumi.ResourceOptions.merge(child, pulumi.ResourceOptions(depends_on=base + prereqs)),
            )
        for o in objects:
            if o.before_chart:
                continue
            deps = list(base)
            if o.needs_chart and self.release is not None:
                deps.append(self.release)
            if o.needs_after:
                deps += after
            register(o, deps)
        out = {"namespace": layer.namespace or "", **layer.outputs()}
        if self.release is not None:
            out["release"] = self.release.status.apply(lambda s: s.name if s else None)
        self.outputs = out
        self.register_outputs(out)


def check_requirements(spec: PlatformSpec, registry: dict[str, type[Layer]]) -> None:
    for name in spec.enabled_layers():
        for req in registry[name].requires:
            if not spec.layer(req).enabled:
                raise ConfigError(
                    f"cnai:layers.{name}.enabled: layer {name} requires {req}, which is disabled "
                    f"(enable cnai:layers.{req} or disable {name})")


def ordered(spec: PlatformSpec, registry: dict[str, type[Layer]]) -> list[str]:
    """Enabled layers in dependency order (requires and enabled `after`), ties broken by name."""
    enabled = set(spec.enabled_layers())
    deps = {n: {d for d in registry[n].requires + registry[n].after if d in enabled} for n in enabled}
    out: list[str] = []
    while deps:
        ready = sorted(n for n, d in deps.items() if not d - set(out))
        if not ready:
            raise ConfigError(f"cnai:layers: dependency cycle among {', '.join(sorted(deps))}")
        out.append(ready[0])
        del deps[ready[0]]
    return out


def waves(spec: PlatformSpec, registry: dict[str, type[Layer]]) -> int:
    """Longest chain of layers that must be Ready before the next starts."""
    enabled = set(spec.enabled_layers())
    depth: dict[str, int] = {}
    for name in ordered(spec, registry):
        before = [d for d in registry[name].requires + registry[name].after if d in enabled]
        depth[name] = 1 + max((depth[d] for d in before), default=0)
    return max(depth.values(), default=0)


__all__ = ["Layer", "LayerComponent", "KubeObject", "Workload", "resources", "deep_merge"]
