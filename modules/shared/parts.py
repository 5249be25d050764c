"""The parts a layer is made of: Helm releases, Kubernetes objects (each in a deploy phase) and the pods it
runs (for footprint figures). Plain values; the engine turns them into resources."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal

from modules.shared import k8s
from modules.shared.versions import VERSIONS, ChartSource

# When an object a layer creates directly is registered, relative to the rest of the layer:
# - before-install: before the layer's charts and manifests, which read it (config, credentials);
# - with-namespace: as soon as its namespace exists (the default);
# - after-install: after the layer's charts and manifests (it needs their CRDs or webhooks);
# - after-peers: after the layers the layer is ordered `after` (team namespaces, MLflow, ...);
# - after-all: after both its install and those layers.
Phase = Literal["before-install", "with-namespace", "after-install", "after-peers", "after-all"]
PHASES: tuple[Phase, ...] = ("before-install", "with-namespace", "after-install", "after-peers", "after-all")

# What of a layer waits for a layer it is ordered `after` (soft dependency, only when that layer is on):
# its per-team/peer objects only (phases after-peers and after-all), or also its install (a chart that
# renders objects of the other layer's CRDs, e.g. a ServiceMonitor).
AfterScope = Literal["objects", "install"]


@dataclass(frozen=True)
class KubeObject:
    """A Kubernetes object a layer creates directly, and when (see `Phase`)."""

    manifest: dict[str, Any]
    phase: Phase = "with-namespace"
    wait_for: tuple[str, ...] = ()  # `ref`s of other objects of this layer created first (e.g. a seeding Job)
    protect: bool = False  # stateful: `pulumi destroy` refuses until unprotected
    ignore_changes: tuple[str, ...] = ()  # fields controllers own after creation (e.g. Kueue's suspend)
    # A server-side apply patch of an object an upstream manifest owns (only the fields given).
    patch: bool = False

    def __post_init__(self) -> None:
        if self.phase not in PHASES:
            raise ValueError(f"KubeObject {ref(self.manifest)}: phase {self.phase!r} is not one of {', '.join(PHASES)}")

    @property
    def ref(self) -> str:
        return ref(self.manifest)


@dataclass(frozen=True)
class Release:
    """One Helm release of a layer: the chart's key in versions.yaml, the release name, its values, and
    the objects created right after it (before the layer's next release, which waits for them)."""

    chart: str
    name: str
    values: dict[str, Any]
    namespace: str | None = None  # default: the layer's namespace
    then: tuple[dict[str, Any], ...] = ()

    @property
    def source(self) -> ChartSource:
        return VERSIONS.chart(self.chart)


@dataclass(frozen=True)
class Workload:
    """Pods a layer runs: `count` pods (replicas, or one per node for DaemonSets), each requesting cpu/memory."""

    name: str
    cpu: str
    memory: str
    count: int = 1
    # Pods the layer's Helm releases render (`make render` sums them and must agree); False for pods an
    # operator, a custom resource or an install manifest creates.
    rendered: bool = True

    @property
    def cpu_cores(self) -> Decimal:
        return k8s.cpu(self.cpu) * self.count

    @property
    def memory_mib(self) -> Decimal:
        return k8s.mib(self.memory) * self.count


def ref(manifest: dict[str, Any]) -> str:
    """`Kind/namespace/name` of an object, as `KubeObject.wait_for` names it."""
    meta = manifest["metadata"]
    return f"{manifest['kind']}/{meta.get('namespace', '')}/{meta['name']}"


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out
