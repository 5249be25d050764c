"""JupyterHub: profiles per cluster and GPU sharing mode, wiring to the platform, exposure, authentication."""

from __future__ import annotations

import json

import pytest

from modules.shared.config import ConfigError
from tests.conftest import evaluate, values_of
from tools.harness import normalize, run


def profiles(rec) -> dict[str, dict]:
    return {p["slug"]: p for p in values_of(rec, "jupyterhub")["singleuser"]["profileList"]}


def test_cpu_only_cluster_offers_cpu_profiles_only():
    p = profiles(evaluate("kind"))
    assert list(p) == ["cpu-small", "cpu-large"] and p["cpu-small"]["default"] is True
    assert "extra_resource_limits" not in p["cpu-large"]["kubespawner_override"]


def test_gpu_profiles_follow_the_sharing_mode():
    shared = profiles(evaluate("kind-gpu"))  # one GPU, time-sliced x4
    assert set(shared) == {"cpu-small", "cpu-large", "gpu", "gpu-shared"}
    gpu = shared["gpu"]["kubespawner_override"]
    assert gpu["extra_resource_limits"] == {"nvidia.com/gpu": "1"}
    assert gpu["node_selector"] == {"nvidia.com/gpu.present": "true"}
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in gpu["tolerations"]
    assert gpu["volume_mounts"] == [{"name": "dshm", "mountPath": "/dev/shm"}]
    assert "4 time-slices" in shared["gpu-shared"]["description"]
    mig = profiles(evaluate("existing"))  # MIG: no time-slice profile
    assert "gpu" in mig and "gpu-shared" not in mig


def test_notebooks_know_mlflow_feast_and_the_object_store():
    rec = evaluate("kind")
    v = values_of(rec, "jupyterhub")
    env = v["singleuser"]["extraEnv"]
    assert env["MLFLOW_TRACKING_URI"] == "http://mlflow.mlflow.svc.cluster.local:80"
    assert env["AWS_ENDPOINT_URL"].startswith("http://object-store-seaweedfs")
    assert env["FEAST_FS_YAML_FILE_PATH"] == "/etc/feast/feature_store.yaml"
    assert not any("SECRET" in k for k in env)  # artifacts go through MLflow: no storage keys in notebooks
    cm = next(o for o in rec.objects() if o["kind"] == "ConfigMap" and o["metadata"]["name"] == "feast-client")
    assert "feast-platform-online.feast.svc.cluster.local" in cm["data"]["feature_store.yaml"]
    assert v["singleuser"]["storage"]["extraVolumeMounts"] == [
        {"name": "feast", "mountPath": "/etc/feast", "readOnly": True}]
    egress = v["singleuser"]["networkPolicy"]["egress"][0]["to"][0]["namespaceSelector"]
    assert egress == {"matchExpressions": [{"key": "platform.cnai.dev/part-of", "operator": "Exists"}]}
    # cloud: no object store endpoint (the SDK's default S3/GCS endpoints), MLflow still wired
    gke = values_of(evaluate("gke"), "jupyterhub")["singleuser"]["extraEnv"]
    assert "AWS_ENDPOINT_URL" not in gke and "MLFLOW_TRACKING_URI" in gke


def test_hub_is_jupyterlab_culled_persistent_and_not_exposed():
    v = values_of(evaluate("kind"), "jupyterhub")
    assert v["proxy"]["service"]["type"] == "ClusterIP"
    assert v["singleuser"]["defaultUrl"] == "/lab"
    assert v["cull"] == {"enabled": True, "timeout": 3600}
    assert v["singleuser"]["storage"]["dynamic"]["storageClass"] == "standard"
    assert v["singleuser"]["cloudMetadata"]["blockWithIptables"] is False
    assert values_of(evaluate("eks"), "jupyterhub")["singleuser"]["storage"]["dynamic"]["storageClass"] == "gp3"


def test_native_auth_has_no_password_in_config():
    v = values_of(evaluate("kind"), "jupyterhub")
    assert v["hub"]["config"]["JupyterHub"]["authenticator_class"] == "nativeauthenticator.NativeAuthenticator"
    assert v["hub"]["config"]["NativeAuthenticator"]["open_signup"] is False
    assert v["hub"]["config"]["Authenticator"]["admin_users"] == ["admin"]
    # JupyterHub 5 denies everyone unless allowed; NativeAuthenticator's admin approval is the gate.
    assert v["hub"]["config"]["Authenticator"]["allow_all"] is True


OIDC = {"cnai:layers": {"jupyterhub": {"auth": "oidc", "oidc": {
    "clientId": "cnai", "authorizeUrl": "https://idp.example.com/auth", "tokenUrl": "https://idp.example.com/token",
    "userdataUrl": "https://idp.example.com/userinfo", "allowedGroups": ["ml"]}}},
    "cnai:oidcClientSecret": {"secure": "v1:encrypted"}}


def test_oidc_client_secret_reaches_the_hub_only_as_a_secret():
    rec = run("eks", OIDC)
    v = values_of(rec, "jupyterhub")
    assert v["hub"]["config"]["GenericOAuthenticator"]["allowed_groups"] == ["ml"]
    assert v["hub"]["extraEnv"]["OAUTH_CLIENT_SECRET"] == {
        "valueFrom": {"secretKeyRef": {"name": "hub-oidc", "key": "client-secret"}}}
    secret = rec.get("kubernetes:core/v1:Secret", "secret-jupyterhub-hub-oidc")
    assert normalize(secret.inputs)["stringData"] == "[secret]"
    assert "offline-plan-dummy-secret" not in json.dumps([normalize(r.inputs) for r in rec.registrations])


@pytest.mark.parametrize("overrides,fragment", [
    ({"cnai:layers": {"jupyterhub": {"auth": "oidc"}}}, "cnai:layers.jupyterhub.oidc: is required"),
    ({"cnai:layers": OIDC["cnai:layers"]}, "cnai:oidcClientSecret: is required"),
    ({**OIDC, "cnai:oidcClientSecret": "plain"}, "cnai:oidcClientSecret: is a credential"),
    ({"cnai:layers": {"jupyterhub": {"profiles": [{"slug": "g", "displayName": "G", "gpus": 1}]}}},
     "cnai:layers.jupyterhub.profiles[0].gpus"),
])
def test_bad_notebook_config(overrides, fragment):
    with pytest.raises(ConfigError, match=fragment.replace("[", r"\[").replace("]", r"\]")):
        run("kind", overrides)


def test_gpu_notebooks_queue_through_kueue():
    rec = evaluate("kind-gpu")
    p = profiles(rec)
    assert p["gpu"]["kubespawner_override"]["extra_labels"] == {"kueue.x-k8s.io/queue-name": "default"}
    assert "extra_labels" not in p["cpu-small"]["kubespawner_override"]  # CPU notebooks start at once
    objects = rec.objects()
    lq = [o for o in objects if o["kind"] == "LocalQueue" and o["metadata"]["namespace"] == "jupyterhub"]
    assert lq and lq[0]["spec"]["clusterQueue"] == "notebooks"
    ns = next(o for o in objects if o["kind"] == "Namespace" and o["metadata"]["name"] == "jupyterhub")
    cq = next(o for o in objects if o["kind"] == "ClusterQueue" and o["metadata"]["name"] == "notebooks")
    # the notebooks' ClusterQueue admits from the notebooks namespace
    assert cq["spec"]["namespaceSelector"]["matchLabels"].items() <= ns["metadata"]["labels"].items()
    team = next(o for o in objects if o["kind"] == "Namespace" and o["metadata"]["name"] == "team-research")
    team_cq = next(o for o in objects if o["kind"] == "ClusterQueue" and o["metadata"]["name"] == "team-research")
    assert team_cq["spec"]["namespaceSelector"]["matchLabels"].items() <= team["metadata"]["labels"].items()


def test_oidc_groups_are_managed_by_the_authenticator():
    """OAuthenticator 17 refuses `allowed_groups`/`auth_state_groups_key` without `manage_groups`
    (oauthenticator/oauth2.py `_requires_manage_groups`): the hub would not start."""
    g = values_of(run("eks", OIDC), "jupyterhub")["hub"]["config"]["GenericOAuthenticator"]
    assert g["manage_groups"] is True and g["auth_state_groups_key"] == "oauth_user.groups"
    assert "claim_groups_key" not in g  # deprecated in 17.0
    assert "load_groups" not in values_of(run("eks", OIDC), "jupyterhub")["hub"]["config"]["JupyterHub"]


class _Spawner:
    """What the hub passes to a callable profile_list: a spawner whose user has groups."""

    def __init__(self, *groups: str):
        self.user = type("User", (), {"groups": [type("Group", (), {"name": g})() for g in groups]})()


def team_profiles(rec, *groups: str) -> list[dict]:
    """Run the hub.extraConfig snippet as the chart's jupyterhub_config.py would, for a user in `groups`."""
    v = values_of(rec, "jupyterhub")
    spawner_config = type("KubeSpawnerConfig", (), {"profile_list": v["singleuser"]["profileList"]})()
    c = type("Config", (), {"KubeSpawner": spawner_config, "JupyterHub": type("JupyterHubConfig", (), {})()})()
    exec(v["hub"]["extraConfig"]["cnai-team-namespaces"], {"c": c})  # noqa: S102 - our own config snippet
    return c.KubeSpawner.profile_list(_Spawner(*groups))


TWO_TEAMS = {"cnai:teams": [{"name": "research", "quota": {"cpu": "2", "memory": "4Gi"}},
                            {"name": "vision", "group": "ml-vision", "quota": {"cpu": "2", "memory": "4Gi"}}]}


def test_team_members_spawn_in_their_team_namespace():
    rec = evaluate("kind", TWO_TEAMS)
    static = values_of(rec, "jupyterhub")["singleuser"]["profileList"]
    # No team: the static profiles, servers in the hub's namespace.
    assert team_profiles(rec) == static and team_profiles(rec, "other") == static
    one = team_profiles(rec, "ml-vision")
    assert [p["slug"] for p in one] == [p["slug"] for p in static]
    for p in one:
        assert p["profile_options"]["team"]["choices"] == {"vision": {
            "display_name": "Team vision (namespace team-vision)", "default": True,
            "kubespawner_override": {"namespace": "team-vision"}}}
        assert p["kubespawner_override"] == next(s for s in static if s["slug"] == p["slug"])["kubespawner_override"]
    both = team_profiles(rec, "research", "ml-vision")[0]["profile_options"]["team"]["choices"]
    assert [k for k, c in both.items() if c["default"]] == ["research"] and set(both) == {"research", "vision"}
    # Servers in team namespaces reach the hub by its full name, and the hub's policy admits them.
    v = values_of(rec, "jupyterhub")
    assert 'c.JupyterHub.hub_connect_url = "http://hub.jupyterhub.svc.cluster.local:8081"' in \
        v["hub"]["extraConfig"]["cnai-team-namespaces"]
    assert v["hub"]["networkPolicy"]["ingress"] == [{
        "from": [{"namespaceSelector": {"matchExpressions": [{"key": "platform.cnai.dev/team", "operator": "Exists"}]},
                  "podSelector": {"matchLabels": {"hub.jupyter.org/network-access-hub": "true"}}}],
        "ports": [{"port": "http"}]}]
    # Native auth: the hub creates the teams' groups for admins to fill.
    assert values_of(rec, "jupyterhub")["hub"]["config"]["JupyterHub"]["load_groups"] == {
        "ml-vision": {"users": []}, "research": {"users": []}}


def test_the_hub_may_spawn_in_each_team_namespace_and_nowhere_else():
    rec = evaluate("kind", TWO_TEAMS)
    for ns in ("team-research", "team-vision"):
        objs = {o["kind"]: o for o in rec.objects() if o["metadata"].get("namespace") == ns
                and o["metadata"]["name"] in ("jupyterhub-spawner", "feast-client")}
        assert set(objs) == {"Role", "RoleBinding", "ConfigMap"}
        rules = {tuple(r["resources"]): set(r["verbs"]) for r in objs["Role"]["rules"]}
        assert rules == {("pods", "persistentvolumeclaims"): {"get", "watch", "list", "create", "delete"},
                         ("events",): {"get", "watch", "list"}}
        assert objs["RoleBinding"]["subjects"] == [{"kind": "ServiceAccount", "name": "hub", "namespace": "jupyterhub"}]
        hub_cm = next(o for o in rec.objects() if o["kind"] == "ConfigMap"
                      and o["metadata"]["namespace"] == "jupyterhub"
                      and o["metadata"]["name"] == "feast-client")
        assert objs["ConfigMap"]["data"] == hub_cm["data"]  # the servers mount it wherever they run
    binding = rec.get("kubernetes:rbac.authorization.k8s.io/v1:RoleBinding",
                      "rolebinding-team-research-jupyterhub-spawner")
    assert "kubernetes:core/v1:Namespace::namespace-team-research" in {rec.label(u) for u in rec.waits_for(binding)}


def test_team_namespaces_can_be_switched_off():
    rec = evaluate("kind", {"cnai:layers": {"jupyterhub": {"teamNamespaces": False}}})
    v = values_of(rec, "jupyterhub")
    assert v["hub"]["extraConfig"] == {} and "load_groups" not in v["hub"]["config"]["JupyterHub"]
    assert v["hub"]["networkPolicy"] == {}
    assert not [o for o in rec.objects() if o["metadata"]["name"] == "jupyterhub-spawner"]


def test_ha_profiles_give_the_user_scheduler_and_image_puller_requests_and_count_them():
    """z2jh 4.4.0 sets no requests for the user scheduler or the continuous image puller (one
    `prePuller.resources` for its pause and init containers): production footprints counted a default the
    chart no longer has."""
    rec = evaluate("existing")
    v = values_of(rec, "jupyterhub")
    scheduler = v["scheduling"]["userScheduler"]["resources"]["requests"]
    puller = v["prePuller"]["resources"]["requests"]
    assert v["prePuller"]["continuous"]["enabled"] and v["scheduling"]["userScheduler"]["enabled"]
    layer = next(x for x in rec.platform.layers if x.name == "jupyterhub")
    pods = {w.name: w for w in layer.workloads()}
    assert (pods["user-scheduler"].cpu, pods["user-scheduler"].memory, pods["user-scheduler"].count) == (
        scheduler["cpu"], scheduler["memory"], 2)
    assert (pods["continuous-image-puller"].cpu, pods["continuous-image-puller"].memory) == (
        puller["cpu"], puller["memory"])
    laptop = evaluate("kind")
    assert {w.name for w in next(x for x in laptop.platform.layers if x.name == "jupyterhub").workloads()} == {
        "hub", "proxy"}
