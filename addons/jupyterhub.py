"""jupyterhub: JupyterLab for every user through JupyterHub (Zero to JupyterHub chart).

- JupyterLab is the default UI; users pick a profile: small CPU, large CPU, one GPU, and a shared
  GPU slice when time-slicing is on (GPU profiles select GPU nodes, tolerate the GPU taint and
  limit `nvidia.com/gpu`).
- Notebooks already know the platform: `MLFLOW_TRACKING_URI` (artifacts go through MLflow, so no
  storage keys in notebooks), the object store endpoint, and a Feast client config
  (`FEAST_FS_YAML_FILE_PATH`) pointing at the FeatureStore's registry, online and offline servers.
- Home directories are PVCs on the default StorageClass; idle servers are culled.
- Authentication: `native` (users sign up, the configured admins approve; no password in config) or
  `oidc` (any OpenID Connect provider; client secret from `cnai:oidcClientSecret`, a secret config
  value, handed to the hub as an environment variable).
- The proxy is a ClusterIP Service (the chart's default is a LoadBalancer): reach it with a
  port-forward or an ingress you add on purpose.
- Teams: a user in a team's group (`cnai:teams[].group`; JupyterHub groups come from the identity
  provider with `oidc`, or an admin fills the pre-created groups with `native`) gets a `team` choice on
  every profile, and the server runs in that team's namespace: its quota, Kueue queue, network
  policies and (with the Kubeflow platform) profile. Users in no team run in the hub's namespace.

Over 300 lines: a layer is one file, and this one builds two authenticators, the profile list and
per-team spawning, all of which meet in the chart's values.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import Field

from addons.base import Layer
from modules.shared.config import ConfigError, DnsLabel, LayerOptions, Quantity, Strict
from modules.shared.gpus import GPU_CLAIM_TEMPLATE
from modules.shared.k8s import resources, secret
from modules.shared.labels import MANAGED_BY, PLATFORM_LABEL, TEAM_LABEL
from modules.shared.markers import Generated
from modules.shared.offers import (
    BucketStore,
    FeatureClient,
    Lakehouse,
    LlmServing,
    Metrics,
    PipelinesApi,
    Queueing,
    RayRuntime,
    Tracking,
    VectorStore,
)
from modules.shared.parts import KubeObject, Workload

FEAST_CONFIG = "feast-client"
OIDC_SECRET = "hub-oidc"
FEAST_PATH = "/etc/feast/feature_store.yaml"
SPAWNER_ROLE = "jupyterhub-spawner"
HUB_SERVICE_ACCOUNT = "hub"  # the chart's name for its ServiceAccount and Service (fullnameOverride "")
# hub.extraConfig snippet (runs at the end of the chart's jupyterhub_config.py); @TEAMS@ is JSON.
_TEAM_CONFIG = """\
import copy, json

_cnai_teams = json.loads(@TEAMS@)
_cnai_profiles = c.KubeSpawner.profile_list
# Servers in team namespaces cannot resolve the chart's short name `hub`.
c.JupyterHub.hub_connect_url = "@HUB_URL@"


def _cnai_team_profiles(spawner):
    groups = {g.name for g in spawner.user.groups}
    teams = [t for t in _cnai_teams if t["group"] in groups]
    profiles = copy.deepcopy(_cnai_profiles)
    if not teams:
        return profiles
    choices = {t["name"]: {"display_name": "Team %s (namespace %s)" % (t["name"], t["namespace"]),
                           "default": i == 0, "kubespawner_override": {"namespace": t["namespace"]}}
               for i, t in enumerate(teams)}
    for profile in profiles:
        profile.setdefault("profile_options", {})["team"] = {"display_name": "Team", "choices": copy.deepcopy(choices)}
    return profiles


c.KubeSpawner.profile_list = _cnai_team_profiles
"""
_HUB = {"small": ("50m", "256Mi", "1Gi"), "large": ("200m", "512Mi", "2Gi")}
_PROXY = {"small": ("20m", "64Mi", "256Mi"), "large": ("100m", "128Mi", "512Mi")}
# HA profiles only: the user scheduler (2 replicas) and the continuous image puller (a DaemonSet whose
# one `prePuller.resources` goes on its pause container and every init container). The chart sets none.
_USER_SCHEDULER = ("50m", "256Mi", "512Mi")
_IMAGE_PULLER = ("10m", "16Mi", "64Mi")


class Profile(Strict):
    slug: DnsLabel
    displayName: str
    description: str = ""
    cpu: float = Field(1, gt=0, le=256, strict=False)
    memory: Quantity = "2Gi"
    gpus: int = Field(0, ge=0, le=16)
    gpuResource: str = Field("", description="the GPU resource `gpus` counts, where the cluster advertises several "
                                             "(MIG all-balanced: nvidia.com/mig-<profile>); default: the smallest")
    image: str = Field("", description="notebook image (default: the chart's pinned JupyterLab image)")


class Oidc(Strict):
    clientId: str = Field(min_length=1)
    authorizeUrl: str = Field(pattern=r"^https://")
    tokenUrl: str = Field(pattern=r"^https://")
    userdataUrl: str = Field(pattern=r"^https://")
    usernameClaim: str = "preferred_username"
    scopes: tuple[str, ...] = Field(("openid", "profile", "email"), strict=False)
    allowedGroups: tuple[str, ...] = Field((), strict=False, description="empty: every authenticated user")
    groupsClaim: str = "groups"


class JupyterHubOptions(LayerOptions):
    auth: Literal["native", "oidc"] = Field("native", description="`native` (users sign up, admins approve) or `oidc`")
    admins: tuple[str, ...] = Field(("admin",), strict=False, description="JupyterHub admin user names")
    oidc: Oidc | None = Field(
        None,
        description="with `auth: oidc`: `clientId`, `authorizeUrl`, `tokenUrl`, `userdataUrl` (https), "
                    "`usernameClaim` (`preferred_username`), `scopes` (`openid profile email`), `allowedGroups` "
                    "(`[]` = everyone), `groupsClaim` (`groups`). The client secret goes in `cnai:oidcClientSecret`")
    profiles: tuple[Profile, ...] | None = Field(
        None, strict=False,
        description="`{slug, displayName, description, cpu, memory, gpus, image}` (null: CPU small 1/2Gi, CPU large "
                    "4/16Gi, GPU with 1 GPU when the cluster has GPUs, shared GPU with time-slicing)")
    homeSize: Quantity = Field("10Gi", description="home volume per user")
    cullTimeout: int = Field(3600, ge=300, description="seconds of inactivity before a server is stopped (≥ 300)")
    teamNamespaces: bool = Field(
        True,
        description="members of a team's group (the JupyterHub group named like `cnai:teams[].group`) run their "
                    "servers in the team's namespace (its quota, queue and network policies)")


class JupyterHub(Layer):
    name = "jupyterhub"
    component = "JupyterHub"
    description = "JupyterLab per user with CPU/GPU profiles, wired to MLflow, Feast and the object store."
    core = True
    chart = "jupyterhub"
    Options = JupyterHubOptions
    default_namespace = "jupyterhub"
    pod_security = "baseline"
    pod_security_reason = "user notebook images run arbitrary user code and images that do not set seccomp"
    queue = "notebooks"  # GPU notebooks wait in Kueue (pod integration) when the kueue layer is on
    after = {"teams": "objects"}  # the spawner's Role and the Feast client config in each team namespace

    def namespace_labels(self) -> dict[str, str]:
        queueing = self.peers.get(Queueing)
        return queueing.queue_namespace_labels(self.queue) if queueing else {}

    def validate(self) -> None:
        opts, spec = self.options, self.spec
        if opts.auth == "oidc" and opts.oidc is None:
            raise ConfigError("cnai:layers.jupyterhub.oidc: is required with auth: oidc (clientId, authorizeUrl, "
                              "tokenUrl, userdataUrl)")
        if opts.auth == "oidc" and spec.oidcClientSecret is None:
            raise ConfigError("cnai:oidcClientSecret: is required with cnai:layers.jupyterhub.auth: oidc "
                              "(`pulumi config set --secret oidcClientSecret ...`)")
        for i, p in enumerate(opts.profiles or ()):
            if p.gpus and not spec.gpu.enabled:
                raise ConfigError(f"cnai:layers.jupyterhub.profiles[{i}].gpus: {p.gpus} GPU(s) but cnai:gpu.enabled "
                                  "is false")
            self.caps.check_gpu_resources(f"cnai:layers.jupyterhub.profiles[{i}].gpuResource",
                                          [p.gpuResource] if p.gpuResource else [])
        slugs = [p.slug for p in opts.profiles or ()]
        dup = next((s for s in slugs if slugs.count(s) > 1), None)
        if dup:
            raise ConfigError(f"cnai:layers.jupyterhub.profiles: slug {dup!r} appears twice")

    def provided_credentials(self) -> dict[str, str]:
        secret = self.spec.oidcClientSecret
        return {"oidc-client-secret": secret.get_secret_value()} if self.options.auth == "oidc" and secret else {}

    # -- profiles --------------------------------------------------------------------------------
    def profiles(self) -> list[Profile]:
        if self.options.profiles is not None:
            return list(self.options.profiles)
        out = [Profile(slug="cpu-small", displayName="CPU: small", description="1 CPU, 2 GiB", cpu=1, memory="2Gi"),
               Profile(slug="cpu-large", displayName="CPU: large", description="4 CPUs, 16 GiB", cpu=4, memory="16Gi")]
        c = self.caps
        if c.gpus and c.gpu_sharing == "mig":
            # One profile per MIG resource the nodes advertise (several with the mixed strategy's all-balanced).
            for resource in sorted(c.gpu_resources(), key=lambda r: r != c.gpu_resource):
                mig = (resource.removeprefix("nvidia.com/mig-") if c.mig_strategy == "mixed"
                       else c.mig_profile.removeprefix("all-"))
                slug = "gpu" if resource == c.gpu_resource else f"gpu-{mig.replace('.', '-')}"
                out.append(Profile(slug=slug, displayName=f"GPU: 1 MIG slice ({mig})",
                                   description=f"4 CPUs, 16 GiB, one {mig} MIG instance of a GPU", cpu=4,
                                   memory="16Gi", gpus=1, gpuResource=resource))
        elif c.gpus:
            out.append(Profile(slug="gpu", displayName="GPU: 1 GPU", description="4 CPUs, 16 GiB, one GPU",
                               cpu=4, memory="16Gi", gpus=1))
        if c.gpu_sharing in ("time-slicing", "mps"):
            kind = "time-slices" if c.gpu_sharing == "time-slicing" else "MPS shares"
            out.append(Profile(slug="gpu-shared", displayName="GPU: shared slice",
                               description=f"2 CPUs, 8 GiB, one of {c.gpu_replicas} {kind} of a GPU",
                               cpu=2, memory="8Gi", gpus=1))
        return out

    def _profile(self, p: Profile, first: bool) -> dict[str, Any]:
        override: dict[str, Any] = {
            "cpu_guarantee": min(p.cpu, self.profile.notebook_cpu_guarantee or p.cpu), "cpu_limit": p.cpu,
            "mem_guarantee": p.memory, "mem_limit": p.memory,
        }
        if p.image:
            override["image"] = p.image
        if p.gpus and self.caps.gpu_allocation == "dra":
            # DRA: the GPU comes from a claim on the namespace's ResourceClaimTemplate (the gpu-operator layer
            # creates it). KubeSpawner sets the container's resources whole, so they are restated with the claim.
            claims = [f"gpu-{i}" for i in range(p.gpus)]  # one claim (one GPU) per GPU from the template
            override["extra_pod_config"] = {"resourceClaims": [
                {"name": c, "resourceClaimTemplateName": GPU_CLAIM_TEMPLATE} for c in claims]}
            override["extra_container_config"] = {"resources": {
                "requests": {"cpu": f"{override['cpu_guarantee']:g}", "memory": p.memory},
                "limits": {"cpu": f"{p.cpu:g}", "memory": p.memory},
                "claims": [{"name": c} for c in claims]}}
        if p.gpus:
            if self.caps.gpu_allocation != "dra":
                # One GPU, or one MIG slice: the resource the device plugin advertises for the sharing mode.
                override["extra_resource_limits"] = {p.gpuResource or self.caps.gpu_resource: str(p.gpus)}
            override["node_selector"] = dict(self.caps.gpu_node_selector)
            override["tolerations"] = [dict(t) for t in self.caps.gpu_tolerations]
            # PyTorch data loaders need more shared memory than the container default.
            override["volumes"] = [{"name": "dshm", "emptyDir": {"medium": "Memory"}}]
            override["volume_mounts"] = [{"name": "dshm", "mountPath": "/dev/shm"}]
            queueing = self.peers.get(Queueing)
            if queueing:
                # Kueue's pod integration gates the notebook until the GPU quota admits it.
                override["extra_labels"] = queueing.workload_labels()
        entry = {"display_name": p.displayName, "description": p.description, "slug": p.slug,
                 "kubespawner_override": override}
        if first:
            entry["default"] = True
        return entry

    # -- wiring ----------------------------------------------------------------------------------
    def _env(self) -> dict[str, Any]:
        env: dict[str, Any] = {"JUPYTERHUB_SINGLEUSER_APP": "jupyter_server.serverapp.ServerApp"}
        tracking = self.peers.get(Tracking)
        if tracking:
            env["MLFLOW_TRACKING_URI"] = tracking.tracking_uri
        store = self.peers.get(BucketStore)
        if store is not None and store.client_endpoint:
            env["AWS_ENDPOINT_URL"] = store.client_endpoint
        if self.peers.get(FeatureClient):
            env["FEAST_FS_YAML_FILE_PATH"] = FEAST_PATH
        pipelines = self.peers.get(PipelinesApi)
        if pipelines:
            env["KF_PIPELINES_ENDPOINT"] = pipelines.endpoint
        lakehouse = self.peers.get(Lakehouse)
        if lakehouse is not None:
            # PyIceberg's catalog, Trino's address and the team's catalog credential (by reference to the team
            # namespace's client Secret, optional: the jupyterhub namespace has none).
            for var in lakehouse.client_env():
                env[var["name"]] = var["value"] if "value" in var else {"valueFrom": var["valueFrom"]}
        for offer in (LlmServing, VectorStore):
            # The team's LLM endpoints and pgvector database, by reference to its namespace's ConfigMap and Secret.
            peer = self.peers.get(offer)
            for var in peer.client_env() if peer is not None else ():
                env[var["name"]] = {"valueFrom": var["valueFrom"]}
        ray = self.peers.get(RayRuntime)
        if ray is not None:
            # The Ray image and version RayClusters a notebook starts must use (its own Ray client must match);
            # jobs go to a cluster's head: `ray job submit --address http://<cluster>-head-svc:8265 ...`.
            env["RAY_IMAGE"] = ray.ray_image
            env["RAY_VERSION"] = ray.ray_image.split("@", 1)[0].rsplit(":", 1)[1]
        metrics = self.peers.get(Metrics)
        if metrics is not None and metrics.otlp_endpoint:
            # OpenTelemetry SDKs (and MLflow tracing) export to the platform's collector over gRPC.
            env |= {"OTEL_EXPORTER_OTLP_ENDPOINT": metrics.otlp_endpoint, "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
                    "OTEL_SERVICE_NAME": "jupyter-notebook"}
            if tracking:  # MLflow sends traces to OTLP instead of its server unless told to do both
                env["MLFLOW_TRACE_ENABLE_OTLP_DUAL_EXPORT"] = "true"
        return env

    def _auth(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """hub.config and hub.extraEnv for the chosen authenticator."""
        admins = sorted(self.options.admins)
        if self.options.auth == "native":
            # Admins put users into the teams' groups (admin page or REST API).
            groups = {g: {"users": []} for g in sorted({t["group"] for t in self.team_spawns()})}
            return {"JupyterHub": {"authenticator_class": "nativeauthenticator.NativeAuthenticator",
                                   **({"load_groups": groups} if groups else {})},
                    # allow_all: NativeAuthenticator itself refuses users an admin has not approved.
                    "Authenticator": {"admin_users": admins, "allow_all": True},
                    "NativeAuthenticator": {"open_signup": False, "minimum_password_length": 12,
                                            "check_common_password": True}}, {}
        o = self.options.oidc
        generic: dict[str, Any] = {
            "client_id": o.clientId, "authorize_url": o.authorizeUrl, "token_url": o.tokenUrl,
            "userdata_url": o.userdataUrl, "username_claim": o.usernameClaim, "scope": list(o.scopes),
            "login_service": "OIDC",
        }
        # The identity provider's groups become JupyterHub groups at each login (team choices, allowedGroups).
        generic.update({"manage_groups": True, "auth_state_groups_key": f"oauth_user.{o.groupsClaim}"})
        if o.allowedGroups:
            generic["allowed_groups"] = list(o.allowedGroups)
        auth: dict[str, Any] = {"admin_users": admins}
        if not o.allowedGroups:
            auth["allow_all"] = True
        # OAuthenticator reads the client secret from OAUTH_CLIENT_SECRET; the value lives in a Secret.
        env = {"OAUTH_CLIENT_SECRET": {"valueFrom": {"secretKeyRef": {"name": OIDC_SECRET, "key": "client-secret"}}}}
        return {"JupyterHub": {"authenticator_class": "generic-oauth"}, "Authenticator": auth,
                "GenericOAuthenticator": generic}, env

    # -- teams ---------------------------------------------------------------------------------
    def team_spawns(self) -> list[dict[str, str]]:
        """Teams whose members spawn in the team namespace: name, JupyterHub group, namespace."""
        if not self.options.teamNamespaces:
            return []
        return [{"name": t.name, "group": t.rbac_group, "namespace": t.namespace} for t in self.teams()]

    def _team_config(self) -> str:
        """hub.extraConfig: wraps the static profile list in a callable that adds, for a user in team
        groups, a `team` option whose choice sets KubeSpawner's namespace (supported since KubeSpawner
        starts watching pods only after loading the user's options)."""
        return (_TEAM_CONFIG.replace("@TEAMS@", json.dumps(json.dumps(self.team_spawns())))
                .replace("@HUB_URL@", f"http://{HUB_SERVICE_ACCOUNT}.{self.namespace}.svc.cluster.local:8081"))

    def values(self) -> dict[str, Any]:
        config, hub_env = self._auth()
        profiles = self.profiles()
        storage_class = self.caps.default_storage_class
        extra_volumes, extra_mounts = [], []
        if self.peers.get(FeatureClient):
            extra_volumes.append({"name": "feast", "configMap": {"name": FEAST_CONFIG}})
            extra_mounts.append({"name": "feast", "mountPath": "/etc/feast", "readOnly": True})
        if self.peers.get(LlmServing):
            # The RAG example's notebook and documents, where the team has the example (optional elsewhere).
            extra_volumes.append({"name": "rag-example", "configMap": {"name": "rag-example", "optional": True}})
            extra_mounts.append({"name": "rag-example", "mountPath": "/opt/cnai/examples/rag", "readOnly": True})
        return {
            "hub": {
                "config": config,
                "extraEnv": hub_env,
                "resources": resources(*_HUB[self.profile.size]),
                "db": {"type": "sqlite-pvc", "pvc": {"storageClassName": storage_class}},
                "extraConfig": {"cnai-team-namespaces": self._team_config()} if self.team_spawns() else {},
                # The chart admits servers to the hub API from its own namespace only.
                "networkPolicy": {"ingress": [{
                    "from": [{"namespaceSelector": {"matchExpressions": [{"key": TEAM_LABEL, "operator": "Exists"}]},
                              "podSelector": {"matchLabels": {"hub.jupyter.org/network-access-hub": "true"}}}],
                    "ports": [{"port": "http"}]}]} if self.team_spawns() else {},
            },
            # ClusterIP: nothing is exposed outside the cluster unless someone adds an ingress.
            "proxy": {"service": {"type": "ClusterIP"}, "chp": {"resources": resources(*_PROXY[self.profile.size])}},
            "singleuser": {
                "defaultUrl": "/lab",
                "extraEnv": self._env(),
                "profileList": [self._profile(p, i == 0) for i, p in enumerate(profiles)],
                "storage": {"capacity": self.options.homeSize, "dynamic": {"storageClass": storage_class},
                            "extraVolumes": extra_volumes, "extraVolumeMounts": extra_mounts},
                # The iptables init container needs NET_ADMIN; the NetworkPolicy below blocks the
                # metadata server instead (egressAllowRules.cloudMetadataServer stays false).
                "cloudMetadata": {"blockWithIptables": False},
                "networkPolicy": {"egress": [{"to": [{"namespaceSelector": {"matchExpressions": [
                    {"key": PLATFORM_LABEL, "operator": "Exists"}]}}]}]},
            },
            "cull": {"enabled": True, "timeout": self.options.cullTimeout},
            # Image pre-pulling and placeholder pods cost a node's worth of pulls on small clusters.
            "prePuller": {"hook": {"enabled": False}, "continuous": {"enabled": self.profile.ha},
                          "resources": resources(*_IMAGE_PULLER)},
            "scheduling": {"userScheduler": {"enabled": self.profile.ha, "resources": resources(*_USER_SCHEDULER)},
                           "userPlaceholder": {"enabled": False}},
        }

    def objects(self) -> list[KubeObject]:
        out: list[KubeObject] = []
        ns = self.namespace
        if self.peers.get(FeatureClient):
            out.append(KubeObject(self._feast_config_map(ns), phase="before-install"))
        for team in self.team_spawns():
            out += [KubeObject(m, phase="after-peers") for m in self.team_objects(team["namespace"])]
        if self.options.auth == "oidc":
            client_secret = {"client-secret": Generated(self.name, "oidc-client-secret")}
            out.append(KubeObject(secret(OIDC_SECRET, ns, client_secret), phase="before-install"))
        return out

    def _feast_config_map(self, namespace: str) -> dict[str, Any]:
        return {"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": FEAST_CONFIG, "namespace": namespace, "labels": dict(MANAGED_BY)},
                "data": {"feature_store.yaml": self.peers.need(FeatureClient).client_config()}}

    def team_objects(self, namespace: str) -> list[dict[str, Any]]:
        """What the hub needs in a team namespace: the rights its chart Role gives it in its own
        namespace (servers and home volumes; no Secrets or Services: no internal TLS, no per-server
        Services), and the Feast client config the servers mount."""
        meta = {"name": SPAWNER_ROLE, "namespace": namespace, "labels": dict(MANAGED_BY)}
        out: list[dict[str, Any]] = [
            {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": meta,
             "rules": [{"apiGroups": [""], "resources": ["pods", "persistentvolumeclaims"],
                        "verbs": ["get", "watch", "list", "create", "delete"]},
                       {"apiGroups": [""], "resources": ["events"], "verbs": ["get", "watch", "list"]}]},
            {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": dict(meta),
             "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": SPAWNER_ROLE},
             "subjects": [{"kind": "ServiceAccount", "name": HUB_SERVICE_ACCOUNT, "namespace": self.namespace}]},
        ]
        if self.peers.get(FeatureClient):
            out.append(self._feast_config_map(namespace))
        return out

    def workloads(self) -> list[Workload]:
        hub, proxy = _HUB[self.profile.size], _PROXY[self.profile.size]
        out = [Workload("hub", hub[0], hub[1]), Workload("proxy", proxy[0], proxy[1])]
        if self.profile.ha:
            out += [Workload("user-scheduler", *_USER_SCHEDULER[:2], 2),
                    Workload("continuous-image-puller", *_IMAGE_PULLER[:2], max(self.caps.nodes, 1))]
        return out

    def outputs(self) -> dict[str, Any]:
        return {"ui": f"kubectl -n {self.namespace} port-forward svc/proxy-public 8000:80, then http://localhost:8000"}
