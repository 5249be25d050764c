"""The ray layer: the KubeRay operator's values checked against the pinned chart, the env every Ray container
gets (tracking URI, object store, lakehouse; never a plaintext secret), the edit role, and the example RayJob:
valid against the pinned CRD, restricted Pod Security, queued through the team's Kueue LocalQueue.

Over 300 lines: one layer's checks (chart values, injected env, RBAC, the example, GPU groups, outputs) share
the stack helpers at the top; split, they would repeat them."""

from __future__ import annotations

import copy
import json
import shlex
import subprocess
import sys
import textwrap
from subprocess import list2cmdline

import pytest
import yaml

from addons.base import Peers
from addons.ray import API, DASHBOARD_PORT, EXAMPLE, OPERATOR, RAY_UID, RESULT_MARKER, Ray
from engine.registry import LAYERS
from modules.shared import upstream
from modules.shared.config import ConfigError
from modules.shared.labels import LOCAL_QUEUE, QUEUE_LABEL, QUEUE_NS_LABEL
from modules.shared.offers import Lakehouse
from modules.shared.upstream import unknown_keys
from modules.shared.versions import VERSIONS
from policies.framework import env_credentials
from tests.conftest import evaluate, needs_upstream, values_of
from tests.test_schemas import validate_object
from tools.harness import normalize, stack_file

RAYJOB = f"kubernetes:{API}:RayJob"
RELEASE = "kubernetes:helm.sh/v3:Release"
NEEDS_LAKEHOUSE = pytest.mark.skipif("lakehouse" not in LAYERS, reason="no lakehouse layer in this checkout")


def stack_layers(stack: str) -> dict:
    return yaml.safe_load(stack_file(stack).read_text())["config"].get("cnai:layers") or {}


def with_ray(stack: str = "kind", ray: dict | None = None, layers: dict | None = None, **top):
    """The stack with the ray layer on (`cnai:layers` replaces the stack's whole key: merged here)."""
    merged = {**stack_layers(stack), **(layers or {}), "ray": {"enabled": True, **(ray or {})}}
    return evaluate(stack, {"cnai:layers": merged, **top})


def layer(rec) -> Ray:
    return next(lay for lay in rec.platform.layers if lay.name == "ray")


def env_of(rec) -> dict[str, dict]:
    return {e["name"]: e for e in values_of(rec, "ray")["configuration"]["defaultContainerEnvs"]}


def example(rec) -> dict:
    return normalize(rec.get(RAYJOB, f"rayjob-team-research-{EXAMPLE}").inputs, reveal=True)


def pods(job: dict) -> dict[str, dict]:
    """The pod specs of the example: head, worker groups, submitter."""
    spec = job["spec"]
    out = {"head": spec["rayClusterSpec"]["headGroupSpec"]["template"]["spec"],
           "submitter": spec["submitterPodTemplate"]["spec"]}
    out.update({f"worker-{g['groupName']}": g["template"]["spec"] for g in spec["rayClusterSpec"]["workerGroupSpecs"]})
    return out


def deps(rec, reg) -> set[str]:
    return {rec.label(u) for u in rec.waits_for(reg)}


# -- the layer ------------------------------------------------------------------------------------

def test_opt_in_and_off_in_the_stacks_by_default():
    assert Ray.core is False and Ray.default_namespace == "ray-system" and Ray.pod_security == "restricted"
    assert layer(with_ray()).ray_image == VERSIONS.images["ray"]  # the RayRuntime offer
    assert "ray" not in evaluate("kind").spec.enabled_layers()
    assert "ray" in with_ray().spec.enabled_layers()


@needs_upstream
@pytest.mark.parametrize("stack", ["kind", "kind-gpu", "eks", "gke"])
def test_every_values_key_exists_in_the_pinned_chart(stack):
    keys = upstream.chart_facts("kuberay-operator")["keys"]
    for rec in (with_ray(stack), with_ray(stack, {"env": {"RAY_DEDUP_LOGS": "0"}})):
        assert unknown_keys(values_of(rec, "ray"), keys) == []
    for key in ("replicas", "resources", "metrics.serviceMonitor.enabled", "annotations", "configuration.enabled",
                "configuration.defaultContainerEnvs"):
        assert key in keys, f"kuberay-operator {VERSIONS.chart('kuberay-operator').version} lacks {key}"


@pytest.mark.parametrize("stack,size,replicas", [("kind", ("50m", "128Mi"), 1), ("gke", ("200m", "512Mi"), 2)])
def test_operator_requests_and_replicas_follow_the_profile(stack, size, replicas):
    rec = with_ray(stack)
    v = values_of(rec, "ray")
    assert (v["resources"]["requests"]["cpu"], v["resources"]["requests"]["memory"]) == size
    # The chart's own 100m CPU limit would stay under Helm's merge: the layer sets one above every request.
    assert v["resources"]["limits"]["cpu"] == "1"
    assert v["replicas"] == replicas == layer(rec).profile.replicas
    # The footprint counts the operator only: the example's pods are transient.
    assert [(w.name, w.cpu, w.memory, w.count) for w in layer(rec).workloads()] == [(OPERATOR, *size, replicas)]


def test_service_monitor_only_with_the_monitoring_crds():
    assert values_of(with_ray(), "ray")["metrics"]["serviceMonitor"]["enabled"] is True
    off = with_ray(layers={"observability": {"enabled": False}})
    assert values_of(off, "ray")["metrics"]["serviceMonitor"]["enabled"] is False
    # With observability on, the chart (which renders the ServiceMonitor) waits for that layer.
    assert Ray.after["observability"] == "install"


# -- the env every Ray container gets -------------------------------------------------------------

def test_operator_injects_tracking_uri_and_object_store_endpoint():
    rec = with_ray()
    v = values_of(rec, "ray")
    assert v["configuration"]["enabled"] is True
    env = env_of(rec)
    mlflow = normalize(rec.outputs["layer:mlflow"])["trackingUri"]
    assert env["MLFLOW_TRACKING_URI"] == {"name": "MLFLOW_TRACKING_URI", "value": mlflow}
    assert env["AWS_ENDPOINT_URL"]["value"].startswith("http://")  # the in-cluster store, as notebooks get it
    assert list(env_credentials(v)) == []
    # No endpoint on the clouds: their SDKs find the cloud's own.
    assert "AWS_ENDPOINT_URL" not in env_of(with_ray("eks")) and "MLFLOW_TRACKING_URI" in env_of(with_ray("gke"))


def test_without_mlflow_no_tracking_uri():
    rec = with_ray(layers={"mlflow": {"enabled": False}, "kserve": {"enabled": False}})
    assert "MLFLOW_TRACKING_URI" not in env_of(rec)


class _FakeLakehouse:
    """A Lakehouse offer as the lakehouse layer gives it (no dependency on that layer's code)."""

    name = "lakehouse"
    offers = (Lakehouse,)
    client_service_account = "lakehouse-client"

    def client_env(self):
        ref = {"secretKeyRef": {"name": "lakehouse-client", "key": "credential", "optional": True}}
        return [{"name": "PYICEBERG_CATALOG__LAKE__URI", "value": "http://polaris.lakehouse:8181/api/catalog"},
                {"name": "PYICEBERG_CATALOG__LAKE__CREDENTIAL", "valueFrom": ref},
                {"name": "AWS_ENDPOINT_URL", "value": "http://store.lakehouse-view:8333"}]


def test_lakehouse_env_and_service_account_through_the_offer():
    base = layer(with_ray())
    ray = copy.copy(base)
    ray.peers = Peers((*base.peers, _FakeLakehouse()))
    env = {e["name"]: e for e in ray.default_env()}
    assert env["PYICEBERG_CATALOG__LAKE__CREDENTIAL"]["valueFrom"]["secretKeyRef"]["optional"] is True
    assert env["AWS_ENDPOINT_URL"]["value"] == "http://store.lakehouse-view:8333"  # one entry, the lakehouse's
    assert [e["name"] for e in ray.default_env()].count("AWS_ENDPOINT_URL") == 1
    assert list(env_credentials(ray.values())) == []
    # The example touches no storage: it runs as the namespace's default account (the lakehouse layer creates
    # lakehouse-client after the RayJob may exist); a GPU worker group a team writes uses the client identity.
    for name, pod in pods(ray.example_job("team-research")).items():
        assert "serviceAccountName" not in pod, name
    assert ray.gpu_worker_group()["template"]["spec"]["serviceAccountName"] == "lakehouse-client"
    with pytest.raises(ConfigError, match=r"^cnai:layers\.ray\.env\.PYICEBERG_CATALOG__LAKE__URI: "):
        ray.options = ray.options.model_copy(update={"env": {"PYICEBERG_CATALOG__LAKE__URI": "x"}})
        ray.validate()


@NEEDS_LAKEHOUSE
@pytest.mark.parametrize("stack", ["kind", "eks", "gke"])
def test_with_the_lakehouse_layer_no_static_keys_on_the_clouds(stack):
    rec = with_ray(stack, layers={"lakehouse": {"enabled": True}})
    env = env_of(rec)
    assert any(n.startswith("PYICEBERG_CATALOG__") for n in env)
    for e in env.values():
        assert "value" in e or e["valueFrom"]["secretKeyRef"]["optional"] is True, e
    assert list(env_credentials(values_of(rec, "ray"))) == []
    keys = [n for n in env if "ACCESS_KEY" in n]
    assert bool(keys) == (stack == "kind"), f"{stack}: S3 keys {keys}"  # workload identity on EKS/GKE
    assert "serviceAccountName" not in pods(example(rec))["head"]


def test_a_changed_env_restarts_the_operator():
    a = values_of(with_ray(), "ray")["annotations"]
    b = values_of(with_ray(ray={"env": {"RAY_DEDUP_LOGS": "0"}}), "ray")
    assert b["annotations"] != a and {"name": "RAY_DEDUP_LOGS", "value": "0"} in \
        b["configuration"]["defaultContainerEnvs"]


@pytest.mark.parametrize("env,match", [
    ({"1BAD": "x"}, r"^cnai:layers\.ray\.env\.1BAD: not an environment variable name"),
    ({"MLFLOW_TRACKING_URI": "http://elsewhere"}, r"^cnai:layers\.ray\.env\.MLFLOW_TRACKING_URI: the platform"),
])
def test_env_errors_are_one_line_naming_the_key(env, match):
    with pytest.raises(ConfigError, match=match) as err:
        with_ray(ray={"env": env})
    assert "\n" not in str(err.value)


# -- RBAC -------------------------------------------------------------------------------------------

def test_teams_may_edit_ray_resources():
    rec = with_ray()
    reg = rec.get("kubernetes:rbac.authorization.k8s.io/v1:ClusterRole", "clusterrole-cnai-ray-edit")
    role = normalize(reg.inputs)
    assert role["metadata"]["labels"]["rbac.authorization.k8s.io/aggregate-to-edit"] == "true"
    rule = role["rules"][0]
    assert rule["apiGroups"] == ["ray.io"] and set(rule["resources"]) == {"rayclusters", "rayjobs", "rayservices"}
    assert {"create", "delete", "patch"} <= set(rule["verbs"])
    assert f"{RELEASE}::ray" in deps(rec, reg)  # after the chart's CRDs


# -- the example RayJob ------------------------------------------------------------------------------

@needs_upstream
@pytest.mark.parametrize("stack", ["kind", "eks", "gke"])
def test_example_is_valid_against_the_pinned_crd(stack):
    rec = with_ray(stack)
    job = example(rec)
    assert job["apiVersion"] == API and upstream.crd_facts(API, "RayJob")["storage"]
    validate_object(rec.spec.kubernetesVersion, job)


def test_example_waits_in_the_team_queue_until_kueue_admits_it():
    rec = with_ray()
    reg = rec.get(RAYJOB, f"rayjob-team-research-{EXAMPLE}")
    job = normalize(reg.inputs)
    # The label names the namespace's LocalQueue; that LocalQueue feeds the team's ClusterQueue, which admits
    # only from namespaces labelled for it; Kueue's manager config watches RayJobs.
    assert job["metadata"]["labels"][QUEUE_LABEL] == LOCAL_QUEUE
    objs = {(o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"]): o for o in rec.objects()}
    lq = objs[("LocalQueue", "team-research", LOCAL_QUEUE)]
    cq = objs[("ClusterQueue", None, lq["spec"]["clusterQueue"])]
    ns = objs[("Namespace", None, "team-research")]
    assert cq["spec"]["namespaceSelector"]["matchLabels"] == {QUEUE_NS_LABEL: ns["metadata"]["labels"][QUEUE_NS_LABEL]}
    manager = yaml.safe_load(values_of(rec, "kueue")["managerConfig"]["controllerManagerConfigYaml"])
    assert "ray.io/rayjob" in manager["integrations"]["frameworks"]
    # Created suspended (Kueue owns the field afterwards), deleted cluster when done (Kueue requires it).
    assert job["spec"]["suspend"] is True and job["spec"]["shutdownAfterJobFinishes"] is True
    assert "spec.suspend" in reg.ignore_changes
    assert {f"{RELEASE}::ray", "kubernetes:kueue.x-k8s.io/v1beta2:LocalQueue::localqueue-team-research-default",
            "kubernetes:core/v1:Namespace::namespace-team-research"} <= deps(rec, reg)


def test_without_kueue_the_example_runs_unqueued():
    rec = with_ray(layers={"kueue": {"enabled": False}})
    job = example(rec)
    assert QUEUE_LABEL not in job["metadata"]["labels"] and job["spec"]["suspend"] is False


def test_example_pods_pass_restricted_and_request_resources():
    job = example(with_ray())
    image = VERSIONS.images["ray"]
    assert job["spec"]["rayClusterSpec"]["rayVersion"] == image.rsplit(":", 1)[1]
    found = pods(job)
    assert set(found) == {"head", "worker-cpu", "submitter"}
    for name, pod in found.items():
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, name
        assert not {"hostNetwork", "hostPID", "hostIPC"} & set(pod), name
        for c in pod["containers"] + pod.get("initContainers", []):
            sc = c["securityContext"]
            assert sc["runAsNonRoot"] is True and sc["runAsUser"] == RAY_UID, name
            assert sc["allowPrivilegeEscalation"] is False and sc["capabilities"] == {"drop": ["ALL"]}, name
            assert sc["seccompProfile"] == {"type": "RuntimeDefault"} and not sc.get("privileged"), name
            assert {"cpu", "memory"} <= set(c["resources"]["requests"]), f"{name}/{c['name']}"
            assert c["image"] == image, name
    assert found["submitter"]["restartPolicy"] == "Never"


def test_example_program_survives_both_shells_and_prints_its_result(tmp_path):
    """KubeRay puts the entrypoint into a bash command line, `ray job submit` re-joins its words with
    list2cmdline, and Ray runs that through a shell again: the program must come out unchanged. It then runs
    against a stand-in `ray` module and prints the result line the smoke test reads."""
    entrypoint = example(with_ray())["spec"]["entrypoint"]
    words = shlex.split(entrypoint)  # the submitter's bash
    assert words[:2] == ["python", "-c"] and len(words) == 3
    again = shlex.split(list2cmdline(words))  # Ray's job runner
    assert again == words
    program = words[2]
    assert not set('"$`\\') & set(program)
    fake = tmp_path / "ray.py"
    fake.write_text(textwrap.dedent("""\
        def init(): pass
        def remote(f):
            class R:
                remote = staticmethod(f)
            return R
        def get(xs): return list(xs)
        def nodes(): return [{'Alive': True}, {'Alive': True}]
    """))
    out = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, cwd=tmp_path,
                         env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(tmp_path),
                              "MLFLOW_TRACKING_URI": "http://mlflow:80", "LAKEHOUSE_CREDENTIAL": "s3cr3t"})
    assert out.returncode == 0, out.stderr
    line = next(x for x in out.stdout.splitlines() if x.startswith(RESULT_MARKER))
    result = json.loads(line[len(RESULT_MARKER):])
    assert result["sum"] == result["expected"] == 285 and result["nodes"] == 2
    assert result["mlflow"] == "http://mlflow:80"
    assert "LAKEHOUSE_CREDENTIAL" in result["driver_env"] and "s3cr3t" not in out.stdout  # names, never values


def test_example_off_or_without_teams():
    for rec in (with_ray(ray={"example": False}), with_ray(layers={"teams": {"enabled": False}})):
        assert not rec.by_type(RAYJOB)
        assert "exampleRayJob" not in normalize(rec.outputs["layer:ray"])


# -- GPUs ------------------------------------------------------------------------------------------

@needs_upstream
def test_gpu_worker_group_tolerates_the_taint_and_asks_for_the_gpu():
    rec = with_ray("kind-gpu")
    ray, caps = layer(rec), rec.platform.caps
    group = ray.gpu_worker_group(gpus=1)
    pod = group["template"]["spec"]
    assert pod["containers"][0]["resources"]["limits"][caps.gpu_resource] == "1"
    assert pod["tolerations"] == [dict(t) for t in caps.gpu_tolerations]
    assert pod["nodeSelector"] == dict(caps.gpu_node_selector)
    cluster = {"apiVersion": API, "kind": "RayCluster", "metadata": {"name": "gpu", "namespace": "team-research"},
               "spec": {"rayVersion": VERSIONS.images["ray"].rsplit(":", 1)[1],
                        "headGroupSpec": example(rec)["spec"]["rayClusterSpec"]["headGroupSpec"],
                        "workerGroupSpecs": [group]}}
    validate_object(rec.spec.kubernetesVersion, cluster)


def test_gpu_worker_group_under_dra_claims_gpus():
    # Whole GPUs under DRA: two, for the team's quota of two.
    rec = with_ray("kind-gpu", **{"cnai:gpu": {"enabled": True, "count": 2, "allocation": "dra"}})
    pod = layer(rec).gpu_worker_group(gpus=2)["template"]["spec"]
    assert [c["resourceClaimTemplateName"] for c in pod["resourceClaims"]] == ["gpu", "gpu"]
    assert [c["name"] for c in pod["containers"][0]["resources"]["claims"]] == ["gpu-0", "gpu-1"]


# -- reaching it ----------------------------------------------------------------------------------

def test_outputs_name_the_operator_the_example_and_the_dashboard():
    out = normalize(with_ray().outputs["layer:ray"])
    assert out["operatorNamespace"] == "ray-system"
    assert out["exampleRayJob"] == f"team-research/{EXAMPLE}"
    port = f"{DASHBOARD_PORT}:{DASHBOARD_PORT}"
    assert out["exampleDashboard"].startswith(f"kubectl -n team-research port-forward svc/{EXAMPLE}-head-svc {port}")
    assert "-head-svc" in out["dashboard"] and port in out["dashboard"]


def test_iceberg_runtime_env_pins_pyiceberg():
    env = yaml.safe_load(layer(with_ray()).iceberg_runtime_env())
    assert env == {"pip": [f"pyiceberg[pyarrow]=={VERSIONS.components['pyiceberg']}"]}


@pytest.mark.parametrize("stack", ["eks", "gke"])
def test_cloud_stacks_plan_with_the_layer(stack):
    rec = with_ray(stack)
    assert rec.get(RELEASE, "ray").inputs["namespace"] == "ray-system"
    assert rec.by_type(RAYJOB)
