"""Kubernetes building blocks shared by layers: object registration, manifest builders, resource maths."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from modules.shared.config import quantity
from modules.shared.labels import MANAGED_BY

_TYPED = {
    ("v1", "Namespace"): k8s.core.v1.Namespace,
    ("v1", "ConfigMap"): k8s.core.v1.ConfigMap,
    ("v1", "Secret"): k8s.core.v1.Secret,
    ("v1", "ServiceAccount"): k8s.core.v1.ServiceAccount,
    ("batch/v1", "Job"): k8s.batch.v1.Job,
    ("v1", "ResourceQuota"): k8s.core.v1.ResourceQuota,
    ("v1", "LimitRange"): k8s.core.v1.LimitRange,
    ("networking.k8s.io/v1", "NetworkPolicy"): k8s.networking.v1.NetworkPolicy,
    ("rbac.authorization.k8s.io/v1", "Role"): k8s.rbac.v1.Role,
    ("rbac.authorization.k8s.io/v1", "RoleBinding"): k8s.rbac.v1.RoleBinding,
    ("rbac.authorization.k8s.io/v1", "ClusterRole"): k8s.rbac.v1.ClusterRole,
}
# Server-side apply patches of objects another tool owns (an upstream manifest's Deployment).
_PATCHES = {("apps/v1", "Deployment"): k8s.apps.v1.DeploymentPatch, ("v1", "Node"): k8s.core.v1.NodePatch}
_SNAKE = {"roleRef": "role_ref", "aggregationRule": "aggregation_rule", "stringData": "string_data",
          "automountServiceAccountToken": "automount_service_account_token", "imagePullSecrets": "image_pull_secrets"}


class CustomObject(pulumi.CustomResource):
    """A custom resource with any top-level fields.

    `pulumi_kubernetes.apiextensions.CustomResource` only carries `spec`; kinds such as Kueue's
    WorkloadPriorityClass keep their fields at the top level. Registered under the same type token.
    """

    def __init__(self, name: str, manifest: dict[str, Any], opts: pulumi.ResourceOptions | None = None):
        opts = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(version=k8s._utilities.get_version()))
        super().__init__(f"kubernetes:{manifest['apiVersion']}:{manifest['kind']}", name, dict(manifest), opts)


def resource_name(manifest: dict[str, Any]) -> str:
    """A stable Pulumi name for an object: kind, namespace and name."""
    meta = manifest["metadata"]
    parts = [manifest["kind"].lower(), meta.get("namespace"), meta["name"]]
    return "-".join(p for p in parts if p)


def apply(manifest: dict[str, Any], opts: pulumi.ResourceOptions, patch: bool = False) -> pulumi.CustomResource:
    """Register one Kubernetes object: typed class for built-in kinds, CustomObject otherwise; with
    `patch`, a server-side apply patch of just the fields given."""
    key = (manifest["apiVersion"], manifest["kind"])
    cls = _PATCHES[key] if patch else _TYPED.get(key)
    name = resource_name(manifest) + ("-patch" if patch else "")
    if cls is None:
        return CustomObject(name, manifest, opts)
    args = {_SNAKE.get(k, k): v for k, v in manifest.items() if k not in ("apiVersion", "kind")}
    return cls(name, opts=opts, **args)


def namespace(name: str, labels: dict[str, str], annotations: dict[str, str] | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "labels": {**MANAGED_BY, **labels}}
    if annotations:
        meta["annotations"] = annotations
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": meta}


def secret(name: str, namespace: str, data: dict[str, Any], type_: str = "Opaque",
           labels: dict[str, str] | None = None, annotations: dict[str, str] | None = None) -> dict[str, Any]:
    """A Secret manifest; `data` values may be Generated/Template markers (resolved as Pulumi secrets)."""
    meta: dict[str, Any] = {"name": name, "namespace": namespace, "labels": {**MANAGED_BY, **(labels or {})}}
    if annotations:
        meta["annotations"] = annotations
    return {"apiVersion": "v1", "kind": "Secret", "type": type_, "metadata": meta, "stringData": data}


def edit_role(name: str, api_group: str, resources: list[str], status: list[str]) -> dict[str, Any]:
    """A ClusterRole aggregated into the built-in `edit` and `admin` roles (which team groups hold in
    their namespaces): full control of `resources`, read access to the `status` subresources of `status`."""
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "metadata": {"name": name, "labels": {**MANAGED_BY, "rbac.authorization.k8s.io/aggregate-to-edit": "true",
                                              "rbac.authorization.k8s.io/aggregate-to-admin": "true"}},
        "rules": [{"apiGroups": [api_group], "resources": resources,
                   "verbs": ["get", "list", "watch", "create", "update", "patch", "delete", "deletecollection"]},
                  {"apiGroups": [api_group], "resources": [f"{r}/status" for r in status],
                   "verbs": ["get", "list", "watch"]}],
    }


def pod_security(level: str) -> dict[str, str]:
    """Pod Security Admission labels: enforce `level`, warn and audit at restricted."""
    return {
        "pod-security.kubernetes.io/enforce": level,
        "pod-security.kubernetes.io/warn": "restricted",
        "pod-security.kubernetes.io/audit": "restricted",
    }


def resources(cpu: str, memory: str, memory_limit: str | None = None) -> dict[str, Any]:
    """A container `resources` block: requests, and a memory limit (CPU is left unthrottled)."""
    return {"requests": {"cpu": cpu, "memory": memory}, "limits": {"memory": memory_limit or memory}}


def cpu(value: str) -> Decimal:
    return quantity(value)


def mib(value: str) -> Decimal:
    return quantity(value) / (1 << 20)

