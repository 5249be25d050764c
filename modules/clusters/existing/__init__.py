"""existing cluster module: adopt a cluster created elsewhere (on-prem, or managed) from a kubeconfig.

Nothing is created; the capabilities the layers read come from `cnai:existing` (driver and toolkit
on the node image? GPU node labels and taint? default storage class? LoadBalancer support?).
"""

from __future__ import annotations

import os

import pulumi
import pulumi_kubernetes as k8s

from modules.clusters.contract import GPU_TAINT, Capabilities, Cluster, ClusterRequests
from modules.shared.config import ConfigError, PlatformSpec


def validate(spec: PlatformSpec, requests: ClusterRequests) -> None:
    e = spec.existing
    if spec.gpu.enabled and e.gpuNodes == 0:
        raise ConfigError("cnai:existing.gpuNodes: must be at least 1 when cnai:gpu.enabled is true")
    if e.gpuNodeNames and len(e.gpuNodeNames) != e.gpuNodes:
        raise ConfigError(f"cnai:existing.gpuNodeNames: names {len(e.gpuNodeNames)} nodes but gpuNodes is "
                          f"{e.gpuNodes}; list every GPU node")
    if spec.gpu.enabled and spec.gpu.sharing.mode == "mig" and not e.gpuNodeNames:
        raise ConfigError("cnai:existing.gpuNodeNames: MIG is applied through the nvidia.com/mig.config label of "
                          "each GPU node; list the GPU nodes so the platform labels them")


def capabilities(spec: PlatformSpec, requests: ClusterRequests) -> Capabilities:
    e, gpu = spec.existing, spec.gpu
    return Capabilities(
        nodes=e.nodes,
        gpu_nodes=e.gpuNodes if gpu.enabled else 0,
        gpus_per_node=gpu.count if gpu.enabled else 0,
        gpu_drivers_preinstalled=e.gpuDriversPreinstalled,
        gpu_toolkit_preinstalled=e.gpuToolkitPreinstalled,
        gpu_node_selector=dict(e.gpuNodeSelector),
        gpu_node_names=tuple(e.gpuNodeNames) if gpu.enabled else (),
        gpu_tolerations=(GPU_TAINT,) if e.gpuTaint else (),
        default_storage_class=e.storageClass,
        load_balancer=e.loadBalancer,
        mig_supported=True,
        gpu_toleration_injected=e.gpuTolerationInjected,
        cni_bin_dir=e.cniBinDir,
    )


class ExistingCluster(pulumi.ComponentResource):
    """A Kubernetes provider for a cluster reached through a kubeconfig file and context."""

    def __init__(self, spec: PlatformSpec, opts: pulumi.ResourceOptions | None = None):
        super().__init__("cnai:modules:ExistingCluster", spec.stack, None, opts)
        e = spec.existing
        # The provider reads the file when it runs; the path (not its credentials) goes to state.
        path = os.path.expanduser(e.kubeconfig)
        self.kubeconfig = pulumi.Output.secret(path)
        self.provider = k8s.Provider(
            "existing", kubeconfig=self.kubeconfig, context=e.context or None,
            enable_server_side_apply=True, opts=pulumi.ResourceOptions(parent=self),
        )
        self.register_outputs({"kubeconfig": self.kubeconfig, "context": e.context})


def create(spec: PlatformSpec, requests: ClusterRequests, caps: Capabilities) -> Cluster:
    c = ExistingCluster(spec)
    return Cluster(name=spec.existing.context or spec.stack, provider=c.provider, kubeconfig=c.kubeconfig,
                   capabilities=caps, outputs={"context": spec.existing.context})
