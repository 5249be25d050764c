"""The platform program: read and check the config, resolve layers and capabilities once, deploy.

    load()  stack config -> PlatformSpec -> layers -> cluster requests -> capabilities -> checks
    build() cluster module creates (or adopts) the cluster; each layer deploys in dependency order

Everything that can refuse a stack refuses in `load()`, before any resource is registered.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import pulumi

from addons.base import Layer, Peers
from engine.deploy import Deployment
from engine.graph import check_requirements, ordered, share_namespaces
from engine.registry import CLUSTERS, LAYERS, SpecModel
from modules.clusters.contract import Capabilities, ClusterRequests, with_gpu_sharing
from modules.shared import overrides as chart_overrides
from modules.shared import upstream
from modules.shared.config import ConfigError, PlatformSpec, parse_spec, read_config


@dataclass
class Platform:
    """A checked stack: its spec, what the layers ask of the cluster, the capabilities (computed once)
    and the enabled layers in dependency order, capabilities bound."""

    spec: PlatformSpec
    requests: ClusterRequests
    caps: Capabilities
    layers: list[Layer]
    warnings: list[str] = field(default_factory=list)  # shown by `pulumi up` and the offline plan

    @property
    def cluster_module(self) -> ModuleType:
        return CLUSTERS[self.spec.environment]

    def enabled_layer(self, name: str) -> Layer | None:
        return next((layer for layer in self.layers if layer.name == name), None)


DRA_CHART = "dra-driver-nvidia-gpu"


def load_spec(raw: dict[str, Any] | None = None, stack: str | None = None,
              secret_keys: list[str] | None = None) -> PlatformSpec:
    """Read and validate the stack config model. The one place the program reads configuration."""
    if raw is None:
        from pulumi.runtime import config as rc

        raw = {**rc.get_config_env(), **rc.CONFIG.get()}
        secret_keys = [k for k in raw if rc.is_config_secret(k) or k in rc.get_config_secret_keys_env()]
    return parse_spec(read_config(raw, secret_keys), SpecModel, stack or pulumi.get_stack())


def resolve(spec: PlatformSpec, caps: Capabilities | None = None) -> Platform:
    """The enabled layers (dependency order, peers set), their cluster requests, and the cluster's
    capabilities (or the given ones) bound to every layer."""
    check_requirements(spec, LAYERS)
    layers = [LAYERS[name](spec) for name in ordered(spec, LAYERS)]
    peers = Peers(tuple(layers))
    for layer in layers:
        layer.peers = peers
    requests = ClusterRequests.of([r for layer in layers for r in layer.cluster_requests()])
    module = CLUSTERS[spec.environment]
    if caps is None:
        if hasattr(module, "validate"):
            module.validate(spec, requests)
        caps = with_gpu_sharing(module.capabilities(spec, requests), spec.gpu, f"a {spec.environment} cluster",
                                spec.kubernetesVersion)
    for layer in layers:
        layer.caps = caps
    share_namespaces(layers)
    return Platform(spec, requests, caps, layers)


def check(platform: Platform) -> None:
    """Every layer's own checks, capabilities bound, before any resource exists; then every values
    builder runs (and may refuse), and the stack's chart value overrides are checked against the pinned
    charts (where the upstream copy is at hand; without it, a warning says they were not)."""
    if platform.caps.gpu_allocation == "dra" and not any(
            DRA_CHART in layer.chart_keys() for layer in platform.layers):
        owners = [cls.name for cls in LAYERS.values() if DRA_CHART in cls.chart_keys()]
        raise ConfigError(f"cnai:gpu.allocation: dra needs the {' or '.join(owners)} layer (it installs NVIDIA's DRA "
                          "driver for GPUs)")
    for layer in platform.layers:
        layer.check_namespace()
        layer.validate()
    unchecked = []
    for layer in platform.layers:
        for release, where, overrides in layer.value_overrides():
            if not overrides:
                continue
            if upstream.chart_facts(release.chart) is None:
                unchecked.append(where)
                continue
            problem = chart_overrides.check_overrides(where, release.chart, release.values, overrides)
            if problem:
                raise ConfigError(problem)
    if unchecked:
        platform.warnings.append(f"{', '.join(unchecked)}: not checked against the charts (no upstream copy: "
                                 "run `make upstream`)")


def load(raw: dict[str, Any] | None = None, stack: str | None = None,
         secret_keys: list[str] | None = None) -> Platform:
    """The checked platform of a stack config (the engine's config when `raw` is None)."""
    spec = load_spec(raw, stack, secret_keys)
    gpu = spec.gpu
    if not gpu.enabled and gpu.sharing.mode != "none":  # before the cluster module reads the sharing mode
        raise ConfigError(f"cnai:gpu.sharing.mode: {gpu.sharing.mode} needs cnai:gpu.enabled: true")
    platform = resolve(spec)
    check(platform)
    return platform


def build(platform: Platform) -> dict[str, Any]:
    """Register every resource of a checked platform; returns the stack outputs."""
    spec = platform.spec
    for warning in platform.warnings:
        pulumi.log.warn(warning)
    cluster = platform.cluster_module.create(spec, platform.requests, platform.caps)
    deployment = Deployment(cluster)
    for layer in platform.layers:
        deployment.deploy(layer)
    outputs = {
        "environment": spec.environment,
        "cluster": cluster.name,
        "kubeconfig": cluster.kubeconfig,
        "layers": [layer.name for layer in platform.layers],
        **cluster.outputs,
        **{f"layer:{name}": comp.outputs for name, comp in deployment.components.items()},
    }
    for key, value in outputs.items():
        pulumi.export(key, value)
    return outputs
