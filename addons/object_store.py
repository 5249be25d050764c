"""object-store: the platform's S3-compatible buckets and who may use them.

On clusters without cloud storage (kind, existing) the layer runs SeaweedFS (Apache-2.0, images on
Docker Hub and GHCR, actively released) from its upstream chart: one all-in-one pod on the laptop
profile, separate master/volume/filer/S3 pods on production. MinIO is not used: its community
edition is source-only and unmaintained since 2025-12 (docs/layers/object-store.md).

Buckets are what the enabled layers declare (`Layer.buckets`), created by the chart's post-install
Job. Every consuming layer gets its own generated S3 identity, allowed only on its buckets.

On cloud clusters (`Capabilities.cloud_storage`) nothing is installed: the cluster module created the
buckets, and each layer reaches them through its workload identity, never static keys.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import Field

from addons.base import Layer
from modules.shared.config import ConfigError, LayerOptions, Quantity, Strict
from modules.shared.k8s import resources, secret
from modules.shared.markers import Generated, Template
from modules.shared.offers import Access, BucketStore
from modules.shared.parts import KubeObject, Release, Workload

RELEASE = "object-store"
CONFIG_SECRET = "object-store-s3-config"  # SeaweedFS identities (key seaweedfs_s3_config)
S3_PORT = 8333
REGION = "us-east-1"  # SeaweedFS ignores the region; S3 clients need one
UID = 1000  # the `seaweed` user of the upstream image

# (cpu, memory, memory limit) per pod, by profile size. Profiles without `ha` run the all-in-one pod,
# HA profiles the master/volume/filer/S3 topology.
_DISTRIBUTED = {"master": ("100m", "256Mi", "512Mi"), "volume": ("250m", "512Mi", "2Gi"),
                "filer": ("250m", "512Mi", "2Gi"), "s3": ("250m", "256Mi", "1Gi")}
_SIZES = {
    "small": {"all-in-one": ("100m", "256Mi", "1Gi"), **_DISTRIBUTED},
    "large": {"all-in-one": ("500m", "1Gi", "4Gi"), **_DISTRIBUTED},
}
_ACTIONS = {"rw": ("Read", "Write", "List", "Tagging"), "ro": ("Read", "List")}


class ExternalS3(Strict):
    """An S3-compatible service the platform uses instead of running a store (buckets must exist)."""

    endpoint: str = Field(pattern=r"^https?://[^/\s]+$", description="S3 API URL, e.g. https://s3.example.com")
    region: str = "us-east-1"
    accessKeyId: str = Field(min_length=1)
    bucketPrefix: str = Field("", pattern=r"^[a-z0-9.-]*$", description="prefix of the bucket names")


class ObjectStoreOptions(LayerOptions):
    size: Quantity | None = Field(
        None,
        description="data volume size of the in-cluster store (null: 10Gi laptop, 100Gi per volume server "
                    "production)")
    storageClass: str = Field("", description="StorageClass of the data volumes (empty: the cluster's default)")
    external: ExternalS3 | None = Field(
        None,
        description="use an S3-compatible service instead of SeaweedFS: `endpoint` (`https://…`), `region` "
                    "(`us-east-1`), `accessKeyId`, `bucketPrefix` (`\"\"`). The buckets (`<prefix>mlflow`, "
                    "`<prefix>feast`, `<prefix>postgres-backups`) must exist; the secret key goes in "
                    "`cnai:objectStoreSecretAccessKey`. Not on eks/gke")


class ObjectStore(Layer):
    name = "object-store"
    component = "ObjectStore"
    description = "S3-compatible buckets for artifacts, models and features, one identity per consuming layer."
    core = True
    offers = (BucketStore,)
    Options = ObjectStoreOptions
    default_namespace = "object-store"
    chart = "seaweedfs"

    def validate(self) -> None:
        opts, caps, spec = self.options, self.caps, self.spec
        if caps.cloud_storage and (opts.size or opts.storageClass):
            raise ConfigError("cnai:layers.object-store.size: this cluster's buckets are cloud buckets; "
                              "size and storageClass apply only to the in-cluster store")
        if caps.cloud_storage and opts.external:
            raise ConfigError("cnai:layers.object-store.external: this cluster's buckets are cloud buckets, "
                              "reached through workload identity; remove external")
        if opts.external and spec.objectStoreSecretAccessKey is None:
            raise ConfigError("cnai:objectStoreSecretAccessKey: is required with cnai:layers.object-store.external "
                              "(`pulumi config set --secret objectStoreSecretAccessKey ...`)")

    # -- what other layers read ------------------------------------------------------------------
    @property
    def in_cluster(self) -> bool:
        return self.caps.cloud_storage is None and self.options.external is None

    def consumers(self) -> dict[str, dict[str, str]]:
        """Identities that use buckets (a layer's own, or one it hands to other namespaces) -> {bucket: access}."""
        identities = [i for layer in self.peers for i in layer.identities() if i.buckets]
        return {i.layer: dict(i.buckets) for i in sorted(identities, key=lambda i: i.layer)}

    def bucket_names(self) -> list[str]:
        return sorted({b for buckets in self.consumers().values() for b in buckets})

    @property
    def endpoint(self) -> str:
        """The in-cluster store's S3 API: the all-in-one pod, or the S3 gateways of the HA topology."""
        svc = f"{RELEASE}-seaweedfs-s3" if self.profile.ha else f"{RELEASE}-seaweedfs-all-in-one"
        return f"http://{svc}.{self.namespace}.svc.cluster.local:{S3_PORT}"

    @property
    def client_endpoint(self) -> str | None:
        if self.caps.cloud_storage:
            return None
        return self.options.external.endpoint if self.options.external else self.endpoint

    def access(self, layer: str) -> Access:
        wanted = self.consumers().get(layer, {})
        cloud = self.caps.cloud_storage
        if cloud:
            return Access(kind=cloud.kind, region=cloud.region,
                          buckets={b: cloud.buckets[b] for b in wanted},
                          annotations=dict(cloud.identities.get(layer, {})))
        ext = self.options.external
        if ext:  # one identity for every layer: the platform cannot mint keys on a foreign service
            return Access(kind="s3", region=ext.region, buckets={b: f"{ext.bucketPrefix}{b}" for b in wanted},
                          endpoint=ext.endpoint, access_key=ext.accessKeyId,
                          secret_key=Generated(self.name, "external-secret-key"))
        return Access(kind="s3", region=REGION, buckets={b: b for b in wanted}, endpoint=self.endpoint,
                      access_key=f"cnai-{layer}", secret_key=Generated(self.name, f"{layer}-secret-key"))

    # -- deployment ------------------------------------------------------------------------------
    def credentials(self) -> list[str]:
        return [f"{layer}-secret-key" for layer in self.consumers()] if self.in_cluster else []

    def provided_credentials(self) -> dict[str, str]:
        key = self.spec.objectStoreSecretAccessKey
        return {"external-secret-key": key.get_secret_value()} if self.options.external and key else {}

    def releases(self) -> list[Release]:
        return [Release(self.chart, RELEASE, self.values())] if self.in_cluster else []

    def _security(self) -> dict[str, Any]:
        return {
            "podSecurityContext": {"enabled": True, "runAsNonRoot": True, "runAsUser": UID, "runAsGroup": UID,
                                   "fsGroup": UID, "seccompProfile": {"type": "RuntimeDefault"}},
            "containerSecurityContext": {"enabled": True, "allowPrivilegeEscalation": False,
                                         "capabilities": {"drop": ["ALL"]}},
        }

    def values(self) -> dict[str, Any]:
        sizes = _SIZES[self.profile.size]
        single = not self.profile.ha  # one all-in-one pod instead of master/volume/filer/S3
        size = self.options.size or ("100Gi" if self.profile.ha else "10Gi")
        pvc = {"type": "persistentVolumeClaim", "size": size, "storageClass": self.options.storageClass}
        buckets = [{"name": b} for b in self.bucket_names()]
        s3 = {"enabled": True, "port": S3_PORT, "enableAuth": True, "existingConfigSecret": CONFIG_SECRET}
        # A new bucket claims 7 volumes by default; one keeps a small disk from running out of slots.
        growth = {"WEED_MASTER_VOLUME_GROWTH_COPY_1": "1"}
        values: dict[str, Any] = {
            # The chart's default ClusterRole lets the store delete pods cluster-wide; not needed here.
            "global": {"seaweedfs": {"createClusterRole": False}},
        }
        if single:
            values["master"] = {"enabled": False}
            values["volume"] = {"enabled": False}
            # Disabled, but the bucket-creation hook Job takes its security contexts from filer.*.
            values["filer"] = {"enabled": False, **self._security()}
            values["allInOne"] = {
                "enabled": True, "data": pvc, "resources": resources(*sizes["all-in-one"]),
                "s3": {**s3, "createBuckets": buckets}, "extraEnvironmentVars": growth, **self._security(),
            }
            return values
        small = {"type": "persistentVolumeClaim", "size": "10Gi", "storageClass": self.options.storageClass}
        values["master"] = {"replicas": 3, "data": small, "logs": {"type": ""}, "extraEnvironmentVars": growth,
                            "resources": resources(*sizes["master"]), **self._security()}
        values["volume"] = {"replicas": 2, "dataDirs": [{"name": "data1", "maxVolumes": 0, **pvc}],
                            "resources": resources(*sizes["volume"]), **self._security()}
        values["filer"] = {"replicas": 1, "data": small, "logs": {"type": ""},
                           "resources": resources(*sizes["filer"]), **self._security()}
        values["s3"] = {**s3, "replicas": 2, "logs": {"type": ""}, "createBuckets": buckets,
                        "resources": resources(*sizes["s3"]), **self._security()}
        return values

    def workloads(self) -> list[Workload]:
        if not self.in_cluster:
            return []
        sizes = _SIZES[self.profile.size]
        if not self.profile.ha:
            cpu, mem, _ = sizes["all-in-one"]
            return [Workload("seaweedfs-all-in-one", cpu, mem)]
        counts = {"master": 3, "volume": 2, "filer": 1, "s3": 2}
        return [Workload(f"seaweedfs-{part}", *sizes[part][:2], count) for part, count in counts.items()]

    def objects(self) -> list[KubeObject]:
        if not self.in_cluster:
            return []
        identities, refs = [], {}
        for i, (layer, buckets) in enumerate(self.consumers().items()):
            access = self.access(layer)
            refs[f"k{i}"] = access.secret_key
            identities.append({
                "name": layer,
                "credentials": [{"accessKey": access.access_key, "secretKey": f"${{k{i}}}"}],
                "actions": [f"{a}:{b}" for b, mode in sorted(buckets.items()) for a in _ACTIONS[mode]],
            })
        config = json.dumps({"identities": identities}, indent=1, sort_keys=True)
        identities_secret = secret(CONFIG_SECRET, self.namespace, {"seaweedfs_s3_config": Template.of(config, **refs)})
        return [KubeObject(identities_secret, phase="before-install")]

    def outputs(self) -> dict[str, Any]:
        if self.options.external:
            return {"kind": "s3", "endpoint": self.options.external.endpoint,
                    "buckets": [f"{self.options.external.bucketPrefix}{b}" for b in self.bucket_names()]}
        if not self.in_cluster:
            cloud = self.caps.cloud_storage
            return {"kind": cloud.kind, "buckets": dict(cloud.buckets)}
        return {"kind": "s3", "endpoint": self.endpoint, "buckets": self.bucket_names()}
