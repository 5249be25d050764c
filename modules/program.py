"""The platform program: read the spec, create or adopt the cluster, deploy the enabled layers."""

from __future__ import annotations

from typing import Any

import pulumi

from addons import LAYERS
from addons.base import Layer, LayerComponent, check_requirements, ordered, share_namespaces
from modules import eks, existing, gke, kind
from modules.config import ConfigError, PlatformSpec, parse_spec, read_config, spec_model
from modules.cluster import CLUSTER_VALUES, Capabilities, WorkloadIdentity
from modules.versions import VERSIONS

CLUSTERS = {"kind": kind, "existing": existing, "eks": eks, "gke": gke}
SpecModel = spec_model({name: cls.Options for name, cls in LAYERS.items()})


def load_spec(raw: dict[str, Any] | None = None, stack: str | None = None,
              secret_keys: list[str] | None = None) -> PlatformSpec:
    """Read and validate the stack config. The one place the program reads configuration."""
    if raw is None:
        from pulumi.runtime import config as rc

        raw = {**rc.get_config_env(), **rc.CONFIG.get()}
        secret_keys = [k for k in raw if rc.is_config_secret(k) or k in rc.get_config_secret_keys_env()]
    spec = parse_spec(read_config(raw, secret_keys), SpecModel, stack or pulumi.get_stack())
    validate(spec)
    return spec


def validate(spec: PlatformSpec) -> None:
    """Cross-layer rules, checked before any resource exists."""
    check_requirements(spec, LAYERS)
    gpu = spec.gpu
    if not gpu.enabled and gpu.sharing.mode != "none":
        raise ConfigError(f"cnai:gpu.sharing.mode: {gpu.sharing.mode} needs cnai:gpu.enabled: true")
    if spec.environment == "kind" and spec.kubernetesVersion not in VERSIONS.kind_node_images:
        raise ConfigError(f"cnai:kubernetesVersion: no pinned kind node image for {spec.kubernetesVersion}")
    if spec.environment == "existing" and gpu.enabled and spec.existing.gpuNodes == 0:
        raise ConfigError("cnai:existing.gpuNodes: must be at least 1 when cnai:gpu.enabled is true")
    module = CLUSTERS[spec.environment]
    if hasattr(module, "validate"):
        module.validate(spec)
    caps = module.capabilities(spec, identities(spec))
    for name in spec.enabled_layers():
        LAYERS[name].validate(spec, caps)
    for layer in resolve(spec)[1]:  # every values builder runs (and may refuse) before any resource exists
        layer.final_releases()


def identities(spec: PlatformSpec) -> tuple[WorkloadIdentity, ...]:
    """What each enabled layer's pods need from a cloud (buckets, permissions) and who they run as."""
    return tuple(i for name in spec.enabled_layers() if (i := LAYERS[name].identity(spec)))


def resolve(spec: PlatformSpec, caps: Capabilities | None = None) -> tuple[Capabilities, list[Layer]]:
    """The cluster's capabilities (or the given ones) and the enabled layers, in dependency order."""
    caps = caps or CLUSTERS[spec.environment].capabilities(spec, identities(spec))
    layers = [LAYERS[name](spec, caps) for name in ordered(spec, LAYERS)]
    peers = {layer.name: layer for layer in layers}
    for layer in layers:
        layer.peers = peers
    share_namespaces(layers)
    return caps, layers


def build(spec: PlatformSpec | None = None) -> dict[str, Any]:
    """Register every resource of the platform for a spec from `load_spec` (already validated)."""
    spec = spec or load_spec()
    _, planned = resolve(spec)
    cluster = CLUSTERS[spec.environment].create(spec, identities(spec))
    deployed: dict[str, LayerComponent] = {}
    # credentials, filled as layers deploy; the cluster's own deploy-time values first
    generated: dict[tuple[str, str], pulumi.Output[str]] = {(CLUSTER_VALUES, k): v for k, v in cluster.provided.items()}
    namespaces: dict[str, pulumi.Resource] = {}  # created once, shared by the layers that live there
    for layer in planned:
        requires = [deployed[r] for r in layer.requires]
        after = {a: deployed[a] for a in layer.after if a in deployed}
        deployed[layer.name] = LayerComponent(layer, cluster, requires, after, generated, namespaces)
    outputs = {
        "environment": spec.environment,
        "cluster": cluster.name,
        "kubeconfig": cluster.kubeconfig,
        "layers": [layer.name for layer in planned],
        **cluster.outputs,
        **{f"layer:{name}": comp.outputs for name, comp in deployed.items()},
    }
    for key, value in outputs.items():
        pulumi.export(key, value)
    return outputs
