"""kind cluster module: a local Kubernetes cluster in Docker, created and deleted through the kind CLI.

The kind config is generated: pinned node image (by digest) for the stack's Kubernetes version,
CPU workers from the profile, host images from `loadImages` loaded into the nodes, and with
`cnai:gpu.enabled` one GPU worker with nvkind-style device
passthrough (host `/dev/null` mounted at `/var/run/nvidia-container-devices/<index>`), labelled and
tainted like a cloud GPU node, then set up inside by `gpu-node.sh`. `preflight.sh` checks the host.
"""

from __future__ import annotations

import hashlib
import json
import shlex
from pathlib import Path
from typing import Any

import pulumi
import pulumi_command as command
import pulumi_kubernetes as k8s
import yaml

from modules.clusters.contract import GPU_RESOURCE, GPU_TAINT, Capabilities, Cluster, ClusterRequests
from modules.shared.config import ConfigError, PlatformSpec
from modules.shared.profiles import PROFILES
from modules.shared.versions import VERSIONS

HERE = Path(__file__).resolve().parent
GPU_NODE_LABELS = {"nvidia.com/gpu.present": "true", "platform.cnai.dev/pool": "gpu"}


def validate(spec: PlatformSpec, requests: ClusterRequests) -> None:
    if spec.kubernetesVersion not in VERSIONS.kind_node_images:
        raise ConfigError(f"cnai:kubernetesVersion: no pinned kind node image for {spec.kubernetesVersion}")
    if spec.kind.simulateGpus and not spec.gpu.enabled:
        raise ConfigError("cnai:kind.simulateGpus: needs cnai:gpu.enabled: true (the GPUs to simulate)")
    if spec.kind.simulateGpus and requests.gpu_devices:
        raise ConfigError("cnai:kind.simulateGpus: simulated GPUs have no device for the GPU operator; "
                          "set cnai:layers.gpu-operator.enabled: false")


def capabilities(spec: PlatformSpec, requests: ClusterRequests) -> Capabilities:
    gpu = spec.gpu
    return Capabilities(
        nodes=cpu_workers(spec) + (1 if gpu.enabled else 0),
        gpu_nodes=1 if gpu.enabled else 0,
        gpus_per_node=gpu.count if gpu.enabled else 0,
        # The host driver is passed through and gpu-node.sh installs the toolkit in the node.
        gpu_drivers_preinstalled=True,
        gpu_toolkit_preinstalled=True,
        gpu_node_selector={"nvidia.com/gpu.present": "true"},
        gpu_tolerations=(GPU_TAINT,),
        gpu_nodes_labelled=True,
        default_storage_class="standard",
        load_balancer=False,
        mig_supported=False,
        gpu_toleration_injected=True,
    )


def cpu_workers(spec: PlatformSpec) -> int:
    return spec.kind.workers if spec.kind.workers is not None else PROFILES[spec.profile].kind_workers


def node_image(spec: PlatformSpec) -> str:
    return VERSIONS.kind_node_images[spec.kubernetesVersion]


def worker_name(cluster: str, index: int) -> str:
    """kind names workers <cluster>-worker, <cluster>-worker2, ... in config order (1-based)."""
    return f"{cluster}-worker" + (str(index) if index > 1 else "")


# kubeadm's own default is NodeRestriction; ExtendedResourceToleration lets GPU pods tolerate the
# GPU taint without each workload spelling it out (as on EKS and GKE).
ADMISSION_PLUGINS = "NodeRestriction,ExtendedResourceToleration"


def api_server_patch(spec: PlatformSpec) -> str:
    """kubeadm ClusterConfiguration patch; kind v0.32 renders kubeadm v1beta4 (extraArgs as a list)
    from Kubernetes 1.36 and v1beta3 (extraArgs as a map) before."""
    minor = int(spec.kubernetesVersion.split(".")[1])
    args: Any = ([{"name": "enable-admission-plugins", "value": ADMISSION_PLUGINS}] if minor >= 36
                 else {"enable-admission-plugins": ADMISSION_PLUGINS})
    return yaml.safe_dump({"kind": "ClusterConfiguration", "apiServer": {"extraArgs": args}}, sort_keys=False)


def kind_config(spec: PlatformSpec) -> dict[str, Any]:
    image = node_image(spec)
    nodes: list[dict[str, Any]] = [{"role": "control-plane", "image": image,
                                    "kubeadmConfigPatches": [api_server_patch(spec)]}]
    nodes += [{"role": "worker", "image": image, "labels": {"platform.cnai.dev/pool": "cpu"}}
              for _ in range(cpu_workers(spec))]
    if spec.gpu.enabled:
        taint = {"key": GPU_RESOURCE, "value": "present", "effect": GPU_TAINT["effect"]}
        join = {"kind": "JoinConfiguration", "nodeRegistration": {"taints": [taint]}}
        worker: dict[str, Any] = {"role": "worker", "image": image, "labels": dict(GPU_NODE_LABELS),
                                  "kubeadmConfigPatches": [yaml.safe_dump(join, sort_keys=False)]}
        if not spec.kind.simulateGpus:
            worker["extraMounts"] = [{"hostPath": "/dev/null",
                                      "containerPath": f"/var/run/nvidia-container-devices/{i}"}
                                     for i in range(spec.gpu.count)]
        nodes.append(worker)
    return {"kind": "Cluster", "apiVersion": "kind.x-k8s.io/v1alpha4", "name": spec.kind.clusterName, "nodes": nodes}


class KindCluster(pulumi.ComponentResource):
    """Creates the kind cluster (and GPU passthrough) and exposes a Kubernetes provider for it."""

    def __init__(self, spec: PlatformSpec, opts: pulumi.ResourceOptions | None = None):
        super().__init__("cnai:modules:KindCluster", spec.kind.clusterName, None, opts)
        name = spec.kind.clusterName
        config = yaml.safe_dump(kind_config(spec), sort_keys=False)
        real_gpus = spec.gpu.enabled and not spec.kind.simulateGpus
        env = {"KIND_VERSION": VERSIONS.tools["kind"], "GPU": str(real_gpus).lower(),
               "GPU_COUNT": str(spec.gpu.count)}
        child = pulumi.ResourceOptions(parent=self)
        kubeconfig_flag = f" --kubeconfig {spec.kind.kubeconfigPath}" if spec.kind.kubeconfigPath else ""
        preflight = (HERE / "preflight.sh").read_text()
        self.create = command.local.Command(
            "kind-cluster",
            create=f"{preflight}\nkind create cluster --name {name} --config - --wait 300s{kubeconfig_flag}",
            delete=f"kind delete cluster --name {name}{kubeconfig_flag}",
            stdin=config,
            environment=env,
            interpreter=["/bin/bash", "-c"],
            # A changed node image, node list or mount means a new cluster.
            triggers=[hashlib.sha256(config.encode()).hexdigest()],
            opts=child,
        )
        self.kubeconfig_cmd = command.local.Command(
            "kind-kubeconfig",
            create=f"kind get kubeconfig --name {name}",
            logging="stderr",
            triggers=[self.create.id],
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.create], additional_secret_outputs=["stdout"]),
        )
        self.node_setup: list[command.local.Command] = []
        if spec.kind.loadImages:
            # Images built on this host (e.g. images/feast in CI) reach the nodes without a registry;
            # layers wait for this through Cluster.ready.
            images = " ".join(shlex.quote(i) for i in spec.kind.loadImages)
            self.node_setup.append(command.local.Command(
                "kind-load-images",
                create=f"kind load docker-image --name {name} {images}",
                interpreter=["/bin/bash", "-c"],
                triggers=[self.create.id, images],
                opts=pulumi.ResourceOptions(parent=self, depends_on=[self.create]),
            ))
        node = worker_name(name, cpu_workers(spec) + 1)
        if spec.gpu.enabled and spec.kind.simulateGpus:
            # Node-level extended resource: the scheduler and Kueue see GPUs; no container gets a device.
            patch = json.dumps([{"op": "add", "path": "/status/capacity/nvidia.com~1gpu",
                                 "value": str(spec.gpu.count)}])
            self.node_setup.append(command.local.Command(
                f"simulate-gpus-{node}",
                create=("command -v kubectl >/dev/null || { echo 'simulateGpus needs kubectl on PATH' >&2; exit 1; }\n"
                        f"kind get kubeconfig --name {name} > \"$TMPDIR/kind-{name}.kubeconfig\"\n"
                        f"kubectl --kubeconfig \"$TMPDIR/kind-{name}.kubeconfig\" patch node {node} "
                        f"--subresource=status --type=json -p '{patch}'"),
                environment={"TMPDIR": "/tmp"},
                interpreter=["/bin/bash", "-c"],
                triggers=[self.create.id],
                opts=pulumi.ResourceOptions(parent=self, depends_on=[self.create]),
            ))
        elif spec.gpu.enabled:
            self.node_setup.append(command.local.Command(
                f"gpu-setup-{node}",
                create=(HERE / "gpu-node.sh").read_text(),
                environment={"NODE": node, "TOOLKIT_VERSION": VERSIONS.tools["nvidia-container-toolkit"],
                             "DEVICES": " ".join(str(i) for i in range(spec.gpu.count))},
                interpreter=["/bin/bash", "-c"],
                triggers=[self.create.id],
                opts=pulumi.ResourceOptions(parent=self, depends_on=[self.create]),
            ))
        self.kubeconfig = pulumi.Output.secret(self.kubeconfig_cmd.stdout)
        self.provider = k8s.Provider(
            "kind", kubeconfig=self.kubeconfig, enable_server_side_apply=True,
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.register_outputs({"name": name, "kubeconfig": self.kubeconfig, "nodeImage": node_image(spec)})


def create(spec: PlatformSpec, requests: ClusterRequests, caps: Capabilities) -> Cluster:
    kind = KindCluster(spec)
    return Cluster(name=spec.kind.clusterName, provider=kind.provider, kubeconfig=kind.kubeconfig,
                   capabilities=caps, ready=list(kind.node_setup),
                   outputs={"nodeImage": node_image(spec), "kindContext": f"kind-{spec.kind.clusterName}"})
