"""NVIDIA GPU Operator: driver, container toolkit, device plugin, GFD, MIG manager and DCGM exporter.

Values follow the cluster's capabilities: where the node image (or kind passthrough) already provides
the driver or the container toolkit, the operator does not install them again. GPU sharing comes from
`cnai:gpu.sharing`: a time-slicing or MPS config for the device plugin, or a MIG strategy and profile.
With `cnai:gpu.allocation: dra` the operator's device plugin is off and NVIDIA's DRA driver for GPUs
(second release) publishes the GPUs as devices of DeviceClass `gpu.nvidia.com`; every namespace whose
pods ask for GPUs gets a ResourceClaimTemplate `gpu` for one whole GPU.
"""

from __future__ import annotations

from typing import Any

import yaml
from pydantic import Field

from addons.base import Layer
from modules.clusters.contract import GPU_RESOURCE, GPU_TAINT, GpuDevices, Request
from modules.shared.config import LayerOptions
from modules.shared.gpus import DRA_GPU_CLASS, GPU_CLAIM_TEMPLATE, MIG_CONFIG_LABEL
from modules.shared.k8s import resources
from modules.shared.labels import MANAGED_BY
from modules.shared.parts import KubeObject, Release, Workload

DEVICE_PLUGIN_CONFIG = "device-plugin-config"  # time-slicing or MPS (the device plugin's sharing config)
DRA_RELEASE = "dra-driver"
DRA_API = "resource.k8s.io/v1"
# Required affinity; Helm merges it with the charts' default control-plane *preference*, which it overrides.
_NOT_CONTROL_PLANE = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
    {"matchExpressions": [{"key": "node-role.kubernetes.io/control-plane", "operator": "DoesNotExist"}]}]}}}

# requests per pod: (cpu, memory, memory limit). Operands run once per GPU node.
_SIZES = {
    "small": {
        "operator": ("50m", "96Mi", "350Mi"), "nfd-master": ("10m", "64Mi", "512Mi"),
        "nfd-worker": ("5m", "32Mi", "256Mi"), "nfd-gc": ("5m", "32Mi", "256Mi"),
        "device-plugin": ("10m", "32Mi", "256Mi"), "gfd": ("5m", "32Mi", "128Mi"),
        "dcgm-exporter": ("50m", "256Mi", "1Gi"), "validator": ("5m", "32Mi", "128Mi"),
        "toolkit": ("10m", "64Mi", "256Mi"), "mig-manager": ("10m", "64Mi", "256Mi"),
        "driver": ("100m", "512Mi", "4Gi"), "mps-control-daemon": ("10m", "32Mi", "128Mi"),
        "dra-kubelet-plugin": ("10m", "64Mi", "256Mi"),
    },
    "large": {
        "operator": ("200m", "128Mi", "512Mi"), "nfd-master": ("100m", "128Mi", "4Gi"),
        "nfd-worker": ("5m", "64Mi", "512Mi"), "nfd-gc": ("10m", "128Mi", "1Gi"),
        "device-plugin": ("50m", "64Mi", "512Mi"), "gfd": ("10m", "64Mi", "256Mi"),
        "dcgm-exporter": ("100m", "512Mi", "2Gi"), "validator": ("10m", "64Mi", "256Mi"),
        "toolkit": ("50m", "128Mi", "512Mi"), "mig-manager": ("50m", "128Mi", "512Mi"),
        "driver": ("250m", "1Gi", "8Gi"), "mps-control-daemon": ("10m", "64Mi", "256Mi"),
        "dra-kubelet-plugin": ("50m", "128Mi", "512Mi"),
    },
}


class GpuOperatorOptions(LayerOptions):
    dcgmExporter: bool = Field(
        True,
        description="run the DCGM exporter and its ServiceMonitor (GPU metrics for Prometheus)")


class GpuOperator(Layer):
    name = "gpu-operator"
    component = "GpuOperator"
    description = "Makes NVIDIA GPUs schedulable: driver, toolkit, device plugin, GPU feature discovery, metrics."
    core = True
    chart = "gpu-operator"
    Options = GpuOperatorOptions
    default_namespace = "gpu-operator"
    pod_security = "privileged"
    pod_security_reason = "driver, toolkit and device-plugin DaemonSets mount host paths and run privileged"
    extra_charts = ("dra-driver-nvidia-gpu",)
    # With DRA, the ResourceClaimTemplates go into team namespaces and the notebooks namespace.
    after = {"teams": "objects", "jupyterhub": "objects"}

    def cluster_requests(self) -> list[Request]:
        return [GpuDevices()]  # it drives real devices: simulated GPUs will not do

    def _size(self, part: str) -> dict[str, Any]:
        return resources(*_SIZES[self.profile.size][part])

    def _operands(self) -> list[str]:
        c = self.caps
        dra = c.gpu_allocation == "dra"
        parts = ([] if dra else ["device-plugin"]) + ["gfd", "validator"]
        parts += ["mps-control-daemon"] if c.gpu_sharing == "mps" else []
        parts += [] if c.gpu_drivers_preinstalled else ["driver"]
        parts += [] if c.gpu_toolkit_preinstalled else ["toolkit"]
        parts += ["mig-manager"] if c.gpu_sharing == "mig" else []
        parts += ["dcgm-exporter"] if self.options.dcgmExporter else []
        return parts

    def values(self) -> dict[str, Any]:
        c = self.caps
        tolerations = list(c.gpu_tolerations) or [GPU_TAINT]
        mig = c.gpu_sharing == "mig"
        sharing = c.gpu_sharing in ("time-slicing", "mps")
        dra = c.gpu_allocation == "dra"
        toolkit: dict[str, Any] = {"enabled": not c.gpu_toolkit_preinstalled, "resources": self._size("toolkit")}
        if c.containerd_config_file:
            toolkit["env"] = [{"name": "RUNTIME_CONFIG_SOURCE", "value": "file"}]
        values: dict[str, Any] = {
            "operator": {"resources": self._size("operator"), "tolerations": [], "affinity": _NOT_CONTROL_PLANE},
            "daemonsets": {"tolerations": tolerations},
            "driver": {"enabled": not c.gpu_drivers_preinstalled, "resources": self._size("driver")},
            "toolkit": toolkit,
            # With DRA the DRA driver's kubelet plugin hands out GPUs; both on one node is not supported.
            "devicePlugin": {"enabled": not dra, "resources": self._size("device-plugin"),
                             **self._sharing_config(sharing)},
            "gfd": {"resources": self._size("gfd")},
            "validator": {"resources": self._size("validator")},
            "mig": {"strategy": c.mig_strategy if mig else "single"},
            # The ClusterPolicy takes only "all-disabled" or "" here (its CRD's enum): the MIG manager applies
            # the config each node's nvidia.com/mig.config label names, which the cloud pools set at boot or
            # this layer patches onto the listed nodes (objects()).
            "migManager": {"enabled": mig, "resources": self._size("mig-manager"),
                           "config": {"default": "all-disabled"}},
            "dcgmExporter": {"enabled": self.options.dcgmExporter, "resources": self._size("dcgm-exporter"),
                             "serviceMonitor": {"enabled": self.options.dcgmExporter}},
            "nfd": {"enabled": True},
            "node-feature-discovery": {
                "master": {"resources": self._size("nfd-master"), "tolerations": [], "affinity": _NOT_CONTROL_PLANE},
                "gc": {"resources": self._size("nfd-gc"), "tolerations": [], "affinity": _NOT_CONTROL_PLANE},
                "worker": self._nfd_worker(tolerations),
            },
        }
        if c.gpu_driver_root:  # the cloud installed the driver outside /run/nvidia/driver (GKE)
            values["hostPaths"] = {"driverInstallDir": c.gpu_driver_root}
            values["toolkit"]["installDir"] = c.gpu_driver_root
            values["cdi"] = {"enabled": True}
        return values

    @staticmethod
    def _sharing_config(sharing: bool) -> dict[str, Any]:
        # The ConfigMap is created by this layer (validated offline), not by the chart.
        return {"config": {"create": False, "name": DEVICE_PLUGIN_CONFIG, "default": "any"}} if sharing else {}

    def releases(self) -> list[Release]:
        out = [Release(self.chart, self.name, self.values())]
        if self.caps.gpu_allocation == "dra":
            out.append(Release("dra-driver-nvidia-gpu", DRA_RELEASE, self.dra_values()))
        return out

    def dra_values(self) -> dict[str, Any]:
        """NVIDIA's DRA driver for GPUs: GPU allocation only (no ComputeDomains: no multi-node NVLink here),
        on the GPU nodes, reading the driver where it is installed."""
        c = self.caps
        root = c.gpu_driver_root or ("/" if c.gpu_drivers_preinstalled else "/run/nvidia/driver")
        plugin: dict[str, Any] = {
            # GPU nodes carry the selector's label from the start (kind, cloud pools) or from GPU feature
            # discovery (existing clusters).
            "nodeSelector": dict(c.gpu_node_selector),
            "tolerations": [dict(t) for t in c.gpu_tolerations] or [GPU_TAINT],
            "containers": {"gpus": {"resources": self._size("dra-kubelet-plugin")}},
        }
        return {
            "nvidiaDriverRoot": root,
            # The chart refuses GPU allocation unless told the device plugin is off (devicePlugin.enabled).
            "gpuResourcesEnabledOverride": True,
            "resources": {"gpus": {"enabled": True}, "computeDomains": {"enabled": False}},
            "kubeletPlugin": plugin,
        }

    def _nfd_worker(self, tolerations: list[dict[str, str]]) -> dict[str, Any]:
        # Never on control-plane nodes. Where GPU nodes are labelled up front (kind, cloud node
        # pools), only there: on kind every node container sees the host's PCI bus, so discovery
        # elsewhere would mark CPU workers as GPU nodes.
        worker: dict[str, Any] = {"resources": self._size("nfd-worker"), "tolerations": tolerations}
        if self.caps.gpu_nodes_labelled:
            worker["nodeSelector"] = dict(self.caps.gpu_node_selector)
        return worker

    def objects(self) -> list[KubeObject]:
        out: list[KubeObject] = self._mig_labels()
        if self.caps.critical_pods_need_quota:
            # GKE admits system-node-critical/system-cluster-critical pods outside kube-system only
            # where a ResourceQuota scoped to those priority classes exists.
            out.append(KubeObject({
                "apiVersion": "v1", "kind": "ResourceQuota",
                "metadata": {"name": "gpu-operator-critical-pods", "namespace": self.namespace},
                "spec": {"hard": {"pods": "100"}, "scopeSelector": {"matchExpressions": [{
                    "operator": "In", "scopeName": "PriorityClass",
                    "values": ["system-node-critical", "system-cluster-critical"]}]}},
            }, phase="before-install"))
        out += self._claim_templates()
        c = self.caps
        if c.gpu_sharing not in ("time-slicing", "mps"):
            return out
        replicas = [{"name": GPU_RESOURCE, "replicas": c.gpu_replicas}]
        key = "timeSlicing" if c.gpu_sharing == "time-slicing" else "mps"
        config = {"version": "v1", "flags": {"migStrategy": "none"}, "sharing": {key: {"resources": replicas}}}
        cm = {"apiVersion": "v1", "kind": "ConfigMap",
              "metadata": {"name": DEVICE_PLUGIN_CONFIG, "namespace": self.namespace},
              "data": {"any": yaml.safe_dump(config, sort_keys=True)}}
        return out + [KubeObject(cm, phase="before-install")]

    def claim_namespaces(self) -> list[str]:
        """Namespaces whose pods ask for GPUs: the teams', and those of layers whose pods queue (notebooks)."""
        return [t.namespace for t in self.teams()] + [
            layer.namespace for layer in self.peers if layer.queue and layer.namespace]

    def _claim_templates(self) -> list[KubeObject]:
        if self.caps.gpu_allocation != "dra":
            return []
        return [KubeObject({
            "apiVersion": DRA_API, "kind": "ResourceClaimTemplate",
            "metadata": {"name": GPU_CLAIM_TEMPLATE, "namespace": ns, "labels": dict(MANAGED_BY)},
            "spec": {"spec": {"devices": {"requests": [
                {"name": "gpu", "exactly": {"deviceClassName": DRA_GPU_CLASS}}]}}},
        }, phase="after-peers") for ns in self.claim_namespaces()]

    def _mig_labels(self) -> list[KubeObject]:
        """With MIG on nodes the platform did not create, the config label the MIG manager reads, patched onto
        each listed GPU node (server-side apply: only this label is the platform's)."""
        c = self.caps
        if c.gpu_sharing != "mig" or c.mig_config_labelled:
            return []
        return [KubeObject({"apiVersion": "v1", "kind": "Node",
                            "metadata": {"name": node, "labels": {MIG_CONFIG_LABEL: c.mig_profile}}}, patch=True)
                for node in c.gpu_node_names]

    def release_timeout(self) -> int:
        # Building the driver on the node takes minutes; without it the operator is up in seconds.
        timeout = self.profile.helm_timeout
        return timeout if self.caps.gpu_drivers_preinstalled else max(timeout, 1200)

    def workloads(self) -> list[Workload]:
        sizes = _SIZES[self.profile.size]
        out = [Workload("gpu-operator", *sizes["operator"][:2]),
               Workload("nfd-master", *sizes["nfd-master"][:2]),
               Workload("nfd-gc", *sizes["nfd-gc"][:2]),
               Workload("nfd-worker", *sizes["nfd-worker"][:2],
                        count=self.caps.gpu_nodes if self.caps.gpu_nodes_labelled else self.caps.nodes)]
        if self.caps.gpu_nodes:
            # The operator creates its operands from the ClusterPolicy.
            out += [Workload(p, *sizes[p][:2], count=self.caps.gpu_nodes, rendered=False) for p in self._operands()]
            if self.caps.gpu_allocation == "dra":
                out.append(Workload("dra-kubelet-plugin", *sizes["dra-kubelet-plugin"][:2], count=self.caps.gpu_nodes))
        return out
