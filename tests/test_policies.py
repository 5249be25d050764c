"""The policy pack: every stack passes every rule, and every rule fires on a broken fixture."""

from __future__ import annotations

import copy
import sys

import pytest

from tests.conftest import evaluate
from tools.harness import normalize, stacks

sys.path.insert(0, str(__import__("modules.shared.versions", fromlist=["ROOT"]).ROOT / "policies"))
from rules import RULES, Res  # noqa: E402
from rules import evaluate as run_rules


def resources(stack: str, overrides: dict | None = None) -> list[Res]:
    rec = evaluate(stack, overrides)
    return [Res(type=r.type, name=r.name, urn=r.urn, props=normalize(r.inputs, reveal=True), protect=r.protect,
                parent=r.parent, depends_on=list(r.depends_on)) for r in rec.registrations]


def test_at_least_fifteen_rules():
    assert len(RULES) >= 15 and len({r.name for r in RULES}) == len(RULES)


@pytest.mark.parametrize("stack", stacks())
def test_every_stack_complies(stack):
    violations = {name: v for name, v in run_rules(resources(stack)).items() if v}
    assert violations == {}


def test_cloud_sql_graph_complies():
    rs = resources("gke", {"cnai:layers": {"postgres": {"managed": True}}})
    assert {name: v for name, v in run_rules(rs).items() if v} == {}


def find(rs, type_, name=None, kind=None):
    return next(r for r in rs if r.type == type_ and (name is None or r.name == name)
                and (kind is None or r.props.get("kind") == kind))


def _break_release_version(rs):
    find(rs, "kubernetes:helm.sh/v3:Release", "kueue").props["version"] = "0.19.x"


def _break_manifest(rs):
    find(rs, "kubernetes:yaml/v2:ConfigFile").props["file"] = \
        "https://raw.githubusercontent.com/feast-dev/feast/master/infra/feast-operator/dist/install.yaml"


def _break_image(rs):
    job = find(rs, "kubernetes:batch/v1:Job")
    job.props["spec"]["template"]["spec"]["containers"][0]["image"] = "docker.io/seldonio/mlserver:latest"


def _break_gpu(rs):
    job = find(rs, "kubernetes:batch/v1:Job")
    job.props["spec"]["template"]["spec"]["containers"][0]["resources"] = {"requests": {"nvidia.com/gpu": 1}}


def _break_namespace(rs):
    ns = find(rs, "kubernetes:core/v1:Namespace", "namespace-mlflow")
    ns.props["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] = "privileged"


def _break_lb(rs):
    find(rs, "kubernetes:helm.sh/v3:Release", "jupyterhub").props["values"]["proxy"]["service"]["type"] = "LoadBalancer"


def _break_team(rs):
    rs.remove(next(r for r in rs if r.props.get("kind") == "NetworkPolicy"
                   and r.props["metadata"]["name"] == "default-deny"))


def _break_credentials(rs):
    find(rs, "kubernetes:helm.sh/v3:Release",
         "mlflow").props["values"]["backendStore"]["postgres"]["password"] = "hunter2"


def _break_values_image(rs):
    find(rs, "kubernetes:helm.sh/v3:Release", "kueue").props["values"]["controllerManager"]["manager"]["image"][
        "tag"] = "latest"


def _break_env_credential(rs):
    values = find(rs, "kubernetes:helm.sh/v3:Release", "jupyterhub").props["values"]
    values["singleuser"]["extraEnv"]["HF_TOKEN"] = "hf_not_a_real_token"


def _drop(type_):
    def breaker(rs):
        rs.remove(next(r for r in rs if r.type == type_))
    return breaker


def _break_gcs(rs):
    find(rs, "gcp:storage/bucket:Bucket").props["publicAccessPrevention"] = "inherited"


def _break_imds(rs):
    find(rs, "aws:ec2/launchTemplate:LaunchTemplate").props["metadataOptions"]["httpTokens"] = "optional"


def _break_encryption(rs):
    find(rs, "aws:eks/cluster:Cluster").props.pop("encryptionConfig")


def _break_private_nodes(rs):
    public = next(r for r in rs if r.type == "aws:ec2/subnet:Subnet" and r.name.startswith("public-"))
    find(rs, "aws:eks/nodeGroup:NodeGroup", "gpu-gpu").depends_on.append(public.urn)


def _break_taint(rs):
    find(rs, "gcp:container/nodePool:NodePool", "gpu-gpu").props["nodeConfig"]["taints"] = []


def _break_database(rs):
    find(rs, "aws:rds/instance:Instance").props["publiclyAccessible"] = True


def _isvc_model(rs):
    return find(rs, "kubernetes:serving.kserve.io/v1beta1:InferenceService").props["spec"]["predictor"]["model"]


def _break_inference_gpus(rs):
    _isvc_model(rs)["resources"]["limits"]["nvidia.com/gpu"] = "1"


def _break_inference_runtime(rs):
    _isvc_model(rs).pop("runtime")


def _break_protect(rs):
    find(rs, "aws:s3/bucket:Bucket").protect = False


BROKEN = {
    "charts-pinned": ("kind", _break_release_version),
    "manifests-pinned": ("kind", _break_manifest),
    "images-pinned": ("kind", _break_image),
    "gpu-requests-as-limits": ("kind", _break_gpu),
    "namespaces-pod-security": ("kind", _break_namespace),
    "no-load-balancers": ("kind", _break_lb),
    "teams-isolated": ("kind", _break_team),
    "credentials-in-secrets": ("kind", _break_credentials),
    "inference-gpus-within-quota": ("kind", _break_inference_gpus),
    "inference-runtime-pinned": ("kind", _break_inference_runtime),
    "values-images-pinned": ("kind", _break_values_image),
    "env-credentials-in-secrets": ("kind", _break_env_credential),
    "s3-encrypted": ("eks",
                     _drop("aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration")),
    "s3-versioned": ("eks", _drop("aws:s3/bucketVersioning:BucketVersioning")),
    "s3-private": ("eks", _drop("aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock")),
    "gcs-private-versioned": ("gke", _break_gcs),
    "imdsv2": ("eks", _break_imds),
    "cluster-secrets-encrypted": ("eks", _break_encryption),
    "private-nodes": ("eks", _break_private_nodes),
    "gpu-pools-tainted": ("gke", _break_taint),
    "managed-databases-private": ("eks", _break_database),
    "stateful-protected": ("eks", _break_protect),
}


def test_every_rule_has_a_broken_fixture():
    assert set(BROKEN) == {r.name for r in RULES}


@pytest.mark.parametrize("rule", sorted(BROKEN))
def test_rule_fires_on_its_broken_fixture(rule):
    stack, breaker = BROKEN[rule]
    rs = copy.deepcopy(resources(stack))
    breaker(rs)
    results = run_rules(rs)
    assert results[rule], f"{rule} did not fire"
    others = {name for name, v in results.items() if v and name != rule}
    assert not others, f"breaking {rule} also tripped {others}"


@pytest.mark.parametrize("breaker,rule", [
    # A custom resource's image (the FeatureStore's feature server), not only pods the program creates.
    (lambda rs: find(rs, "kubernetes:feast.dev/v1:FeatureStore").props["spec"]["services"]["onlineStore"][
        "server"].__setitem__("image", "quay.io/feastdev/feature-server:latest"), "images-pinned"),
    # A notebook profile's image in JupyterHub's values.
    (lambda rs: find(rs, "kubernetes:helm.sh/v3:Release", "jupyterhub").props["values"]["singleuser"][
        "profileList"][0]["kubespawner_override"].__setitem__("image", "jupyter/scipy-notebook"),
     "values-images-pinned"),
    # An env list in an object the program creates.
    (lambda rs: find(rs, "kubernetes:batch/v1:Job").props["spec"]["template"]["spec"]["containers"][0][
        "env"].append({"name": "AWS_SECRET_ACCESS_KEY", "value": "abc"}), "env-credentials-in-secrets"),
    # A chart's env map (MLflow's extraEnvVars).
    (lambda rs: find(rs, "kubernetes:helm.sh/v3:Release", "mlflow").props["values"]["extraEnvVars"].__setitem__(
        "DB_PASSWORD", "hunter2"), "env-credentials-in-secrets"),
])
def test_the_new_checks_fire_on_their_own_fixtures(breaker, rule):
    rs = copy.deepcopy(resources("kind"))
    breaker(rs)
    results = run_rules(rs)
    assert results[rule] and not {n for n, v in results.items() if v and n != rule}


def test_identifiers_and_secret_references_are_not_credentials():
    from framework import env_credentials

    ok = {"env": [{"name": "AWS_ACCESS_KEY_ID", "value": "cnai-mlflow"},
                  {"name": "OAUTH_CLIENT_SECRET", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}},
                  {"name": "AWS_WEB_IDENTITY_TOKEN_FILE", "value": "/var/run/token"}]}
    assert list(env_credentials(ok)) == []


def test_secret_key_names_under_a_secret_reference_are_not_credentials():
    """Polaris' chart names the keys of a referenced Secret (`storage.secret.awsSecretAccessKey:
    AWS_SECRET_ACCESS_KEY`); the same field with a literal value outside a reference is flagged."""
    rs = copy.deepcopy(resources("kind"))
    values = find(rs, "kubernetes:helm.sh/v3:Release", "mlflow").props["values"]
    values["storage"] = {"secret": {"name": "s3", "awsSecretAccessKey": "AWS_SECRET_ACCESS_KEY"}}
    assert not run_rules(rs)["credentials-in-secrets"]
    values["storage"] = {"awsSecretAccessKey": "wJalrXUtnFEMI"}
    assert run_rules(rs)["credentials-in-secrets"]
