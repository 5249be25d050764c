"""Ordering of the layers: requirements, dependency order, deploy waves and shared namespaces."""

from __future__ import annotations

from addons.base import Layer
from modules.shared import k8s
from modules.shared.config import ConfigError, PlatformSpec
from modules.shared.labels import PLATFORM_LABEL, POD_SECURITY_REASON

_LEVELS = ["privileged", "baseline", "restricted"]


def check_requirements(spec: PlatformSpec, registry: dict[str, type[Layer]]) -> None:
    for name in spec.enabled_layers():
        for req in registry[name].requires:
            if not spec.layer(req).enabled:
                raise ConfigError(
                    f"cnai:layers.{name}.enabled: layer {name} requires {req}, which is disabled "
                    f"(enable cnai:layers.{req} or disable {name})")


def _before(cls: type[Layer], enabled: set[str]) -> set[str]:
    """The enabled layers `cls` must come after: what it requires and what it is ordered after."""
    return {d for d in (*cls.requires, *cls.after) if d in enabled}


def ordered(spec: PlatformSpec, registry: dict[str, type[Layer]]) -> list[str]:
    """Enabled layers in dependency order (requires and enabled `after`), ties broken by name."""
    enabled = set(spec.enabled_layers())
    deps = {n: _before(registry[n], enabled) for n in enabled}
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
        depth[name] = 1 + max((depth[d] for d in _before(registry[name], enabled)), default=0)
    return max(depth.values(), default=0)


def share_namespaces(layers: list[Layer]) -> None:
    """Layers that live in the same namespace get one merged Namespace: every layer's labels, the
    least strict Pod Security level among them, and the first layer as its platform owner."""
    by_ns: dict[str, list[Layer]] = {}
    for layer in layers:
        if layer.namespace:
            by_ns.setdefault(layer.namespace, []).append(layer)
    for ns, group in by_ns.items():
        if len(group) < 2:
            continue
        labels: dict[str, str] = {}
        for layer in reversed(group):
            labels.update(layer.namespace_manifest()["metadata"]["labels"])
        loosest = min(group, key=lambda layer: _LEVELS.index(layer.pod_security))
        level = loosest.pod_security
        labels.update({**k8s.pod_security(level), PLATFORM_LABEL: group[0].name})
        reason = {POD_SECURITY_REASON: loosest.pod_security_reason} if level != "restricted" else None
        merged = k8s.namespace(ns, labels, reason)
        for layer in group:
            layer.shared_namespace = merged
