"""JupyterHub: profiles per cluster and GPU sharing mode, wiring to the platform, exposure, authentication."""

from __future__ import annotations

import json

import pytest

from modules.config import ConfigError
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
    assert lq and lq[0]["spec"]["clusterQueue"] == "platform"
    ns = next(o for o in objects if o["kind"] == "Namespace" and o["metadata"]["name"] == "jupyterhub")
    cq = next(o for o in objects if o["kind"] == "ClusterQueue")
    key = cq["spec"]["namespaceSelector"]["matchExpressions"][0]["key"]
    assert key in ns["metadata"]["labels"]  # the ClusterQueue admits from the notebooks namespace
    team = next(o for o in objects if o["kind"] == "Namespace" and o["metadata"]["name"] == "team-research")
    assert key in team["metadata"]["labels"]
