"""Deploying one layer: `LayerComponent` registers its namespace, credentials, releases or manifests and
objects, each in its phase; `Deployment` holds what the layers deployed so far share."""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random

from addons.base import Layer
from modules.clusters.contract import Cluster
from modules.shared import k8s as kube
from modules.shared.markers import BCRYPT, CLUSTER_VALUES, resolve
from modules.shared.parts import KubeObject, Release
from modules.shared.versions import VERSIONS


class Deployment:
    """State the layers of one program run share, filled as they deploy in dependency order: the
    credentials each generated (and the cluster module's deploy-time values), the namespaces created
    so far (a namespace two layers live in is created once, by the first), and the components."""

    def __init__(self, cluster: Cluster):
        self.cluster = cluster
        self.generated: dict[tuple[str, str], pulumi.Output[str]] = {
            (CLUSTER_VALUES, k): v for k, v in cluster.provided.items()}
        self.namespaces: dict[str, pulumi.Resource] = {}
        self.components: dict[str, LayerComponent] = {}

    def deploy(self, layer: Layer) -> LayerComponent:
        self.components[layer.name] = LayerComponent(layer, self)
        return self.components[layer.name]

    def resolve(self, value: Any) -> Any:
        return resolve(value, self.generated)


class LayerComponent(pulumi.ComponentResource):
    """One deployed layer: namespace, generated credentials, Helm releases or install manifests (in
    order), and the objects it creates directly."""

    def __init__(self, layer: Layer, deployment: Deployment):
        super().__init__(f"cnai:addons:{layer.component}", layer.name, None,
                         pulumi.ResourceOptions(provider=deployment.cluster.provider))
        self.layer = layer
        self._deployment = deployment
        self._child = pulumi.ResourceOptions(parent=self)
        self._by_ref: dict[str, pulumi.Resource] = {}
        done = deployment.components
        peers = {name: done[name] for name in layer.after if name in done}
        self._generate_credentials()

        # Every namespace of the layer waits for the cluster and the layers it requires.
        self._first = list(deployment.cluster.ready) + [done[r] for r in layer.requires]
        ns_manifest = layer.namespace_manifest()
        base = [self._register(KubeObject(ns_manifest), [])] if ns_manifest else self._first
        objects = layer.objects()
        prepared = [self._register(o, base) for o in objects if o.phase == "before-install"]
        # The install waits for the peers it is ordered after with scope "install" (their CRDs).
        installed = [c for name, c in peers.items() if layer.after[name] == "install"]
        self.releases, installed = self._install(layer.final_releases(), base, prepared, installed)
        self.release = self.releases[-1] if self.releases else None
        for key in layer.install_manifests():
            man = VERSIONS.manifest(key)
            opts = self._opts(base + prepared + installed)
            installed = [k8s.kustomize.v2.Directory(key, directory=man.url, opts=opts) if man.kustomize
                         else k8s.yaml.v2.ConfigFile(key, file=man.url, opts=opts)]
        waits = {"with-namespace": [], "after-install": installed, "after-peers": list(peers.values()),
                 "after-all": installed + list(peers.values())}
        for o in objects:
            if o.phase != "before-install":
                self._register(o, base + waits[o.phase])

        out = {"namespace": layer.namespace or "", **deployment.resolve(layer.outputs())}
        if self.releases:
            out["releases"] = [r.status.apply(lambda s: s.name if s else None) for r in self.releases]
        self.outputs = out
        self.register_outputs(out)

    def _opts(self, depends_on: list[pulumi.Resource], **kw: Any) -> pulumi.ResourceOptions:
        return pulumi.ResourceOptions.merge(self._child, pulumi.ResourceOptions(depends_on=depends_on, **kw))

    def _generate_credentials(self) -> None:
        generated, layer = self._deployment.generated, self.layer
        for cred in layer.credentials():
            pw = random.RandomPassword(f"{layer.name}-{cred}", length=32, special=False, opts=self._child)
            generated[(layer.name, cred)] = pw.result
            generated[(layer.name, cred + BCRYPT)] = pw.bcrypt_hash  # for services that take only a hash (Dex)
        for cred, value in layer.provided_credentials().items():
            generated[(layer.name, cred)] = pulumi.Output.secret(value)

    def _install(self, releases: list[Release], base: list[pulumi.Resource], prepared: list[pulumi.Resource],
                 installed: list[pulumi.Resource]) -> tuple[list[k8s.helm.v3.Release], list[pulumi.Resource]]:
        """The layer's charts in order (CRDs before the controller, the controller before runtimes); each
        release's `then` objects follow it, and the next release waits for them."""
        out: list[k8s.helm.v3.Release] = []
        for rel in releases:
            src = rel.source
            out.append(k8s.helm.v3.Release(
                rel.name,
                name=rel.name,
                chart=src.ref,
                version=src.version,
                repository_opts=None if src.oci else k8s.helm.v3.RepositoryOptsArgs(repo=src.repo),
                namespace=rel.namespace or self.layer.namespace,
                create_namespace=False,
                values=self._deployment.resolve(rel.values),  # e.g. a managed database's address
                timeout=self.layer.release_timeout(),
                max_history=5,
                cleanup_on_fail=True,
                opts=self._opts(base + prepared + installed),
            ))
            installed = [out[-1]]
            installed += [self._register(KubeObject(m), base + [out[-1]]) for m in rel.then]
        return out, installed[:1] if out else installed

    def _register(self, o: KubeObject, deps: list[pulumi.Resource]) -> pulumi.Resource:
        created = self._deployment.namespaces
        meta = o.manifest["metadata"]
        if o.manifest["kind"] == "Namespace" and meta["name"] in created:
            return created[meta["name"]]
        if meta.get("namespace") in created:
            deps = deps + [created[meta["namespace"]]]
        deps = deps + [self._by_ref[r] for r in o.wait_for]
        if o.manifest["kind"] == "Namespace":
            deps = deps + self._first
        res = kube.apply(self._deployment.resolve(o.manifest), self._opts(
            deps, protect=o.protect, ignore_changes=list(o.ignore_changes) or None), patch=o.patch)
        if o.manifest["kind"] == "Namespace":
            created[meta["name"]] = res
        self._by_ref[o.ref] = res
        return res
