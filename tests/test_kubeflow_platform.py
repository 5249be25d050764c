"""The optional Kubeflow platform layer: pinned distribution paths, Istio variant by capability, every
credential generated, Dex's users from the teams, and one adopted Profile per team."""

from __future__ import annotations

import pytest
import yaml

from addons.kubeflow_platform import contributor_binding_name, dex_env
from modules.shared.config import ConfigError
from modules.shared.versions import ROOT, VERSIONS
from tests.conftest import evaluate, secret_data
from tools.harness import mock_bcrypt, mock_password, normalize

DIRECTORY = "kubernetes:kustomize/v2:Directory"
TEAMS = [{"name": "research", "group": "research", "owner": "Lead@example.com",
          "members": ["alice@example.com", "bob@example.com"]},
         {"name": "vision", "owner": "vision-lead@example.com"}]
ON = {"cnai:layers": {"kubeflow-platform": {"enabled": True}}, "cnai:teams": TEAMS}


def platform(stack: str = "kind", extra: dict | None = None):
    return evaluate(stack, {**ON, **(extra or {})})


def test_off_on_the_laptop_stacks_on_in_the_production_examples():
    assert "kubeflow-platform" not in evaluate("kind").spec.enabled_layers()
    assert "kubeflow-platform" not in evaluate("kind-gpu").spec.enabled_layers()
    for stack in ("gke", "existing"):
        rec = evaluate(stack)
        assert rec.spec.profile == "production" and "kubeflow-platform" in rec.spec.enabled_layers()


@pytest.mark.parametrize("stack,istio", [("kind", "kubeflow-istio"), ("gke", "kubeflow-istio-gke")])
def test_istio_first_with_the_cni_path_of_the_cluster_then_the_platform(stack, istio):
    rec = platform(stack)
    dirs = {r.name: r for r in rec.by_type(DIRECTORY) if r.name.startswith("kubeflow-")}
    assert set(dirs) == {istio, "kubeflow-platform"}
    assert dirs[istio].inputs["directory"] == f"addons/kustomize/{istio}"
    assert dirs[istio].urn in dirs["kubeflow-platform"].depends_on
    cert_manager = "kubernetes:helm.sh/v3:Release::cert-manager"
    assert cert_manager in {rec.label(u) for u in rec.waits_for(dirs[istio])}


def test_existing_clusters_choose_the_cni_path():
    existing = yaml.safe_load((ROOT / "stacks" / "Pulumi.existing.yaml").read_text())["config"]["cnai:existing"]
    rec = evaluate("existing", {"cnai:existing": {**existing, "cniBinDir": "/home/kubernetes/bin"}})
    assert rec.get(DIRECTORY, "kubeflow-istio-gke")
    assert evaluate("existing").get(DIRECTORY, "kubeflow-istio")
    with pytest.raises(ConfigError, match=r"^cnai:existing.cniBinDir: "):
        evaluate("existing", {"cnai:existing": {**existing, "cniBinDir": "/usr/lib/cni"}})


def test_kustomizations_replace_every_published_credential_and_namespace():
    """The distribution's example credentials and namespaces are deleted; the layer creates its own."""
    deleted = set()
    for key in ("kubeflow-istio", "kubeflow-platform"):
        doc = yaml.safe_load((ROOT / VERSIONS.manifest(key).url / "kustomization.yaml").read_text())
        for p in doc.get("patches", []):
            body = yaml.safe_load(p["patch"])
            if isinstance(body, dict) and body.get("$patch") == "delete":
                deleted.add((body["kind"], body["metadata"].get("namespace", ""), body["metadata"]["name"]))
        assert all("26.03.1-rc.2" in r for r in doc["resources"] if r.startswith("https://"))
    assert {("Secret", "auth", "dex-passwords"), ("Secret", "auth", "dex-oidc-client"),
            ("Secret", "oauth2-proxy", "oauth2-proxy"), ("ConfigMap", "auth", "dex")} <= deleted
    rec = platform()
    created = {(o["kind"], o["metadata"].get("namespace", ""), o["metadata"]["name"]) for o in rec.objects()}
    assert deleted <= created
    for ns in ("istio-system", "auth", "oauth2-proxy"):
        labels = next(o for o in rec.objects() if o["kind"] == "Namespace"
                      and o["metadata"]["name"] == ns)["metadata"]["labels"]
        assert labels["platform.cnai.dev/part-of"] == "kubeflow-platform"  # team NetworkPolicies admit it
        assert labels["pod-security.kubernetes.io/enforce"] == "restricted"


def test_credentials_are_generated_and_dex_sees_only_hashes():
    rec = platform()
    users = ["alice@example.com", "bob@example.com", "lead@example.com", "vision-lead@example.com"]
    client = mock_password("kubeflow-platform-oidc-client-secret")
    assert secret_data(rec, "auth", "dex-oidc-client") == {"OIDC_CLIENT_ID": "kubeflow-oidc-authservice",
                                                           "OIDC_CLIENT_SECRET": client}
    proxy = secret_data(rec, "oauth2-proxy", "oauth2-proxy")
    assert proxy["client-secret"] == client and proxy["client-id"] == "kubeflow-oidc-authservice"
    assert proxy["cookie-secret"] == mock_password("kubeflow-platform-cookie-secret")
    pw = rec.get("random:index/randomPassword:RandomPassword", "kubeflow-platform-cookie-secret").inputs
    assert pw["length"] == 32  # oauth2-proxy takes 16, 24 or 32 bytes
    hashes = secret_data(rec, "auth", "dex-passwords")
    expected = {dex_env(u): mock_bcrypt("kubeflow-platform-user-" + u.replace("@", "-").replace(".", "-"))
                for u in users}
    assert hashes == expected
    outputs = rec.outputs["layer:kubeflow-platform"]
    assert normalize(outputs) == "[secret]"
    assert set(normalize(outputs, reveal=True)["users"]) == set(users)


def test_dex_config_lists_every_owner_and_member_and_restarts_dex_when_it_changes():
    rec = platform()
    cm = next(o for o in rec.objects() if o["kind"] == "ConfigMap" and o["metadata"]["name"] == "dex")
    config = yaml.safe_load(cm["data"]["config.yaml"])
    hashes = secret_data(rec, "auth", "dex-passwords")
    assert {u["email"] for u in config["staticPasswords"]} == {
        "alice@example.com", "bob@example.com", "lead@example.com", "vision-lead@example.com"}
    assert {u["hashFromEnv"] for u in config["staticPasswords"]} == set(hashes)
    assert len({u["userID"] for u in config["staticPasswords"]}) == 4
    assert config["staticClients"] == [{"idEnv": "OIDC_CLIENT_ID", "secretEnv": "OIDC_CLIENT_SECRET",
                                         "name": "Kubeflow", "redirectURIs": ["/oauth2/callback"]}]
    assert config["issuer"] == "http://dex.auth.svc.cluster.local:5556/dex"

    def rollout(r):
        patch = next(p for p in r.patches() if p.type == "kubernetes:apps/v1:DeploymentPatch")
        assert patch.inputs["metadata"] == {"name": "dex", "namespace": "auth"}
        assert f"{DIRECTORY}::kubeflow-platform" in {r.label(d) for d in patch.depends_on}  # Dex exists first
        return patch.inputs["spec"]["template"]["metadata"]["annotations"]["platform.cnai.dev/config-sha256"]

    fewer = [dict(TEAMS[0], members=["alice@example.com"]), TEAMS[1]]
    assert rollout(rec) != rollout(platform("kind", {"cnai:teams": fewer}))


def test_each_team_gets_a_profile_that_adopts_its_namespace():
    rec = platform()
    profiles = {r.inputs["metadata"]["name"]: r for r in rec.by_type("kubernetes:kubeflow.org/v1:Profile")}
    assert set(profiles) == {"team-research", "team-vision"}
    research = profiles["team-research"]
    assert research.inputs["spec"]["owner"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "User",
                                                "name": "lead@example.com"}
    ns = next(o for o in rec.objects() if o["kind"] == "Namespace" and o["metadata"]["name"] == "team-research")
    # The controller adopts a namespace only if `owner` names the profile's owner; it never overwrites labels.
    assert ns["metadata"]["annotations"] == {"owner": "lead@example.com"}
    assert ns["metadata"]["labels"]["app.kubernetes.io/part-of"] == "kubeflow-profile"  # PodDefaults webhook
    assert ns["metadata"]["labels"]["istio-injection"] == "enabled"
    waits = {rec.label(u) for u in rec.waits_for(research)}
    assert "kubernetes:core/v1:Namespace::namespace-team-research" in waits
    assert f"{DIRECTORY}::kubeflow-platform" in waits


def test_members_are_contributors_as_kfam_makes_them():
    rec = platform()
    research = [o for o in rec.objects() if o["metadata"].get("namespace") == "team-research"]
    name = contributor_binding_name("alice@example.com")
    assert name == "user-alice-example-com-clusterrole-edit"
    binding = next(o for o in research if o["kind"] == "RoleBinding" and o["metadata"]["name"] == name)
    assert binding["roleRef"]["name"] == "kubeflow-edit"
    assert binding["subjects"] == [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User",
                                    "name": "alice@example.com"}]
    assert binding["metadata"]["annotations"] == {"user": "alice@example.com", "role": "edit"}
    policy = next(o for o in research if o["kind"] == "AuthorizationPolicy" and o["metadata"]["name"] == name)
    assert policy["spec"]["rules"][0]["when"] == [{"key": "request.headers[kubeflow-userid]",
                                                   "values": ["alice@example.com"]}]
    # The owner gets access from the profile controller, not as a contributor.
    assert not [o for o in research if o["metadata"]["name"].startswith("user-lead-")]
    callers = next(o for o in research if o["metadata"]["name"] == "allow-platform-callers")
    assert callers["spec"]["rules"] == [{"from": [{"source": {"notPrincipals": ["*"]}}]}]


def test_without_the_platform_team_namespaces_are_not_profile_namespaces():
    ns = next(o for o in evaluate("kind").objects() if o["kind"] == "Namespace"
              and o["metadata"]["name"] == "team-research")
    assert "istio-injection" not in ns["metadata"]["labels"] and "annotations" not in ns["metadata"]
    assert ns["metadata"]["labels"]["app.kubernetes.io/part-of"] == "cnai"


@pytest.mark.parametrize("teams,error", [
    ([{"name": "research"}], r"^cnai:teams\[0\].owner: the kubeflow-platform layer makes a Kubeflow profile per team"),
    ([{"name": "research", "owner": "not-an-email"}], r"^cnai:teams\[0\].owner: must be empty or an email address"),
    ([{"name": "research", "owner": "a@example.com", "members": ["b"]}],
     r"^cnai:teams\[0\].members\[0\]: must be an email address"),
    ([{"name": "research", "owner": "a.b@example.com", "members": ["a-b@example.com"]}],
     r"^cnai:teams\[0\].members: 'a-b@example.com' and 'a.b@example.com' differ only in punctuation"),
])
def test_bad_team_identities_are_rejected_with_the_key(teams, error):
    with pytest.raises(ConfigError, match=error):
        evaluate("kind", {**ON, "cnai:teams": teams})


def test_platform_needs_cert_manager():
    from engine.registry import LAYERS

    layers = {n: {"enabled": n in ("kubeflow-platform", "teams")} for n in LAYERS}
    with pytest.raises(ConfigError,
                       match=r"^cnai:layers.kubeflow-platform.enabled: layer kubeflow-platform requires cert-manager"):
        evaluate("kind", {"cnai:teams": TEAMS, "cnai:layers": layers})


def test_footprint_counts_istio_and_the_sidecars():
    from tools.plan import plan

    doc = plan("gke")
    req = doc["requests"]["layers"]["kubeflow-platform"]
    # istiod 500m + gateway 100m + CNI 100m per node + controllers 30m + 8 sidecars x 10m
    nodes = evaluate("gke").spec.gke.systemPool.min * 3
    assert req["cpu_millicores"] == 500 + 100 + 100 * nodes + 30 + 80
