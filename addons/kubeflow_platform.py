"""kubeflow-platform: the Kubeflow central dashboard, profiles, notebooks (v1) and their web apps, behind
Istio, Dex and oauth2-proxy, from the Kubeflow community distribution at its pinned release.

Optional and off by default (about 1 CPU and 3.5 GiB requested, most of it Istio). Installed as two
local kustomizations over the distribution's paths (addons/kustomize/kubeflow-istio[-gke],
addons/kustomize/kubeflow-platform): Istio first (the GKE variant when the cluster keeps CNI plugins in
/home/kubernetes/bin), then the platform. The layer itself creates
- the `istio-system`, `auth` and `oauth2-proxy` namespaces with the platform's labels (team network
  policies admit the ingress gateway through them);
- every credential, from pulumi-random: the OIDC client secret Dex and oauth2-proxy share, the
  oauth2-proxy cookie secret, and one Dex password per user (Dex gets only its bcrypt hash);
- Dex's configuration: one static user per team owner and member (emails from `cnai:teams`), and a
  patch that restarts Dex when that list changes;
- per team: a Profile named after the team namespace (the profile controller adopts the namespace the
  teams layer made, because that layer annotates it with the owner), and for each member the
  RoleBinding and AuthorizationPolicy Kubeflow's access management would create for a contributor;
  an AuthorizationPolicy that keeps in-cluster callers from platform namespaces (JupyterHub,
  Prometheus, Kubeflow's own controllers), which have no sidecar, able to reach the team's services;
  the team NetworkPolicies already limit who those callers are.
The shared `kubeflow` namespace is not labelled for sidecar injection (standalone Pipelines and Katib run
there without sidecars): the platform's Deployments ask for their sidecar per pod.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

import yaml

from addons.base import Layer
from modules.shared.config import ConfigError, LayerOptions, Team
from modules.shared.k8s import secret
from modules.shared.labels import KUBEFLOW_PROFILE_LABELS, MANAGED_BY
from modules.shared.markers import BCRYPT, Generated
from modules.shared.parts import KubeObject, Workload

DEX_NS = "auth"
OAUTH2_PROXY_NS = "oauth2-proxy"
ISTIO_NS = "istio-system"
OIDC_CLIENT_ID = "kubeflow-oidc-authservice"
USERID_HEADER = "kubeflow-userid"  # set by the ingress gateway from the Dex JWT's email claim
GATEWAY_PRINCIPAL = "cluster.local/ns/istio-system/sa/istio-ingressgateway-service-account"
KFP_UI_PRINCIPAL = "cluster.local/ns/kubeflow/sa/ml-pipeline-ui"
ISTIO_VARIANTS = {"/opt/cni/bin": "kubeflow-istio", "/home/kubernetes/bin": "kubeflow-istio-gke"}


class KubeflowPlatformOptions(LayerOptions):
    """Opt-in (about 1 CPU / 3.5 GiB): the production example stacks turn it on."""


def dex_env(email: str) -> str:
    """The environment variable that carries a user's password hash into Dex (one per user)."""
    return "DEX_HASH_" + re.sub(r"[^A-Z0-9]+", "_", email.upper()).strip("_")


def user_credential(email: str) -> str:
    return "user-" + re.sub(r"[^a-z0-9]+", "-", email.lower()).strip("-")


def contributor_binding_name(email: str) -> str:
    """The name Kubeflow access management (KFAM) gives a contributor's RoleBinding and policy."""
    return re.sub(r"[^a-z0-9]+", "-", f"user-{email.lower()}-clusterrole-edit")


class KubeflowPlatform(Layer):
    name = "kubeflow-platform"
    component = "KubeflowPlatform"
    description = "Kubeflow dashboard, profiles per team and notebooks behind Istio, Dex and oauth2-proxy."
    requires = ("cert-manager",)  # the PodDefaults and PVC viewer webhooks get their certificates from it
    after = {"teams": "objects"}  # profiles adopt the team namespaces
    manifests = ("kubeflow-istio", "kubeflow-istio-gke", "kubeflow-platform")
    Options = KubeflowPlatformOptions
    default_namespace = "kubeflow"
    namespace_fixed = "the Kubeflow distribution's manifests put the platform in namespace kubeflow"
    pod_security = "restricted"

    def team_namespace(self, team: Team) -> tuple[dict[str, str], dict[str, str]]:
        # A profile namespace (sidecars, PodDefaults); the profile controller adopts an existing namespace
        # only if its `owner` annotation names the profile's owner.
        return dict(KUBEFLOW_PROFILE_LABELS), {"owner": team.owner.lower()}

    def validate(self) -> None:
        if self.caps.cni_bin_dir not in ISTIO_VARIANTS:
            raise ConfigError("cnai:layers.kubeflow-platform.enabled: no Istio CNI variant for "
                              f"{self.caps.cni_bin_dir}")
        seen: dict[str, str] = {}
        for i, team in enumerate(self.teams()):
            if not team.owner:
                raise ConfigError(f"cnai:teams[{i}].owner: the kubeflow-platform layer makes a Kubeflow profile "
                                  f"per team; set the email of the owner of team {team.name!r}")
            for email in (team.owner, *team.members):
                env = dex_env(email)
                if seen.setdefault(env, email.lower()) != email.lower():
                    raise ConfigError(f"cnai:teams[{i}].members: {email!r} and {seen[env]!r} differ only in "
                                      "punctuation; Dex needs them distinct")

    def users(self) -> list[str]:
        """Every Dex user: team owners and members, lower-cased, in a stable order."""
        return sorted({e.lower() for t in self.teams() for e in (t.owner, *t.members)})

    def install_manifests(self) -> tuple[str, ...]:
        return (ISTIO_VARIANTS[self.caps.cni_bin_dir], "kubeflow-platform")

    def credentials(self) -> list[str]:
        return ["oidc-client-secret", "cookie-secret", *(user_credential(u) for u in self.users())]

    def dex_config(self) -> str:
        """Dex's config.yaml: in-cluster storage, the password database with the platform's users (hashes
        from environment variables), and the OIDC client oauth2-proxy logs in with."""
        config = {
            "issuer": f"http://dex.{DEX_NS}.svc.cluster.local:5556/dex",
            "storage": {"type": "kubernetes", "config": {"inCluster": True}},
            "web": {"http": "0.0.0.0:5556"},
            "logger": {"level": "info", "format": "text"},
            "oauth2": {"skipApprovalScreen": True},
            "enablePasswordDB": True,
            "staticPasswords": [
                {"email": u, "hashFromEnv": dex_env(u), "username": u.split("@")[0],
                 "userID": hashlib.sha256(u.encode()).hexdigest()[:24]}
                for u in self.users()],
            "staticClients": [{"idEnv": "OIDC_CLIENT_ID", "secretEnv": "OIDC_CLIENT_SECRET",
                               "name": "Kubeflow", "redirectURIs": ["/oauth2/callback"]}],
        }
        return yaml.safe_dump(config, sort_keys=False)

    def objects(self) -> list[KubeObject]:
        def ns(name: str, extra: dict[str, str] | None = None) -> KubeObject:
            return KubeObject(self.platform_namespace(name, "restricted", extra), phase="before-install")

        client_secret = Generated(self.name, "oidc-client-secret")
        config = self.dex_config()
        out = [
            ns(ISTIO_NS, {"istio-injection": "disabled"}), ns(DEX_NS), ns(OAUTH2_PROXY_NS),
            KubeObject(secret("dex-oidc-client", DEX_NS, {"OIDC_CLIENT_ID": OIDC_CLIENT_ID,
                                                          "OIDC_CLIENT_SECRET": client_secret}),
                       phase="before-install"),
            KubeObject(secret("dex-passwords", DEX_NS, {dex_env(u): Generated(self.name, user_credential(u) + BCRYPT)
                                                        for u in self.users()}), phase="before-install"),
            KubeObject(secret("oauth2-proxy", OAUTH2_PROXY_NS, {
                "client-id": OIDC_CLIENT_ID, "client-secret": client_secret,
                "cookie-secret": Generated(self.name, "cookie-secret")}), phase="before-install"),
            KubeObject({"apiVersion": "v1", "kind": "ConfigMap",
                        "metadata": {"name": "dex", "namespace": DEX_NS, "labels": dict(MANAGED_BY)},
                        "data": {"config.yaml": config}}, phase="before-install"),
            # Dex reads its config at start: a new user list rolls it.
            KubeObject({"apiVersion": "apps/v1", "kind": "Deployment",
                        "metadata": {"name": "dex", "namespace": DEX_NS},
                        "spec": {"template": {"metadata": {"annotations": {
                            "platform.cnai.dev/config-sha256": hashlib.sha256(config.encode()).hexdigest()}}}}},
                       phase="after-install", patch=True),
        ]
        for team in self.teams():
            out += [KubeObject(m, phase="after-all") for m in self.team_objects(team)]
        return out

    def team_objects(self, team) -> list[dict[str, Any]]:
        ns = team.namespace
        labels = {**MANAGED_BY, "platform.cnai.dev/team": team.name}
        out: list[dict[str, Any]] = [
            {"apiVersion": "kubeflow.org/v1", "kind": "Profile", "metadata": {"name": ns, "labels": labels},
             "spec": {"owner": {"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": team.owner.lower()}}},
            {"apiVersion": "security.istio.io/v1", "kind": "AuthorizationPolicy",
             "metadata": {"name": "allow-platform-callers", "namespace": ns, "labels": labels},
             # Plaintext requests come from pods without a sidecar; the team's NetworkPolicies admit only
             # the platform's namespaces and the team's own.
             "spec": {"action": "ALLOW", "rules": [{"from": [{"source": {"notPrincipals": ["*"]}}]}]}},
        ]
        for email in sorted({m.lower() for m in team.members} - {team.owner.lower()}):
            name = contributor_binding_name(email)
            annotations = {"user": email, "role": "edit"}
            meta = {"name": name, "namespace": ns, "labels": labels, "annotations": annotations}
            out += [
                {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": meta,
                 "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "kubeflow-edit"},
                 "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": email}]},
                {"apiVersion": "security.istio.io/v1", "kind": "AuthorizationPolicy", "metadata": dict(meta),
                 "spec": {"rules": [{"from": [{"source": {"principals": [GATEWAY_PRINCIPAL, KFP_UI_PRINCIPAL]}}],
                                     "when": [{"key": f"request.headers[{USERID_HEADER}]", "values": [email]}]}]}},
            ]
        return out

    def workloads(self) -> list[Workload]:
        # Requests as the distribution sets them (install manifests, not Helm releases: `rendered=False`); its
        # web apps, Dex and oauth2-proxy set none. Each
        # injected pod adds an istio-proxy sidecar (10m/40Mi requested, 1Gi limit).
        sidecar = [Workload(f"{n} istio-proxy", "10m", "40Mi", rendered=False) for n in (
            "dashboard", "profiles", "jupyter-web-app", "volumes-web-app", "tensorboards-web-app",
            "notebook-controller", "tensorboard-controller", "pvcviewer-controller")]
        return [
            Workload("istiod", "500m", "2Gi", rendered=False),
            Workload("istio-ingressgateway", "100m", "128Mi", rendered=False),
            Workload("istio-cni-node", "100m", "100Mi", count=max(self.caps.nodes, 1), rendered=False),
            Workload("pvcviewer-controller", "15m", "128Mi", rendered=False),  # manager + kube-rbac-proxy
            Workload("tensorboard-controller", "15m", "128Mi", rendered=False),
            *[Workload(n, "0", "0", rendered=False) for n in (
                "dex", "oauth2-proxy", "dashboard", "profiles", "poddefaults-webhook", "jupyter-web-app",
                "volumes-web-app", "tensorboards-web-app", "notebook-controller")],
            *sidecar,
        ]

    def outputs(self) -> dict[str, Any]:
        return {
            "dashboard": "kubectl -n istio-system port-forward svc/istio-ingressgateway 8080:80, then http://localhost:8080/",
            "users": {u: Generated(self.name, user_credential(u)) for u in self.users()},
            "profiles": [t.namespace for t in self.teams()],
        }
