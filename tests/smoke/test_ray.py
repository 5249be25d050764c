"""Smoke: KubeRay runs RayJobs in team namespaces, admitted by Kueue, with the platform's env in every Ray pod.

The operator Deployment is Ready and its configuration carries the env the layer plans; the example RayJob
`example-ray` in the first team's namespace is admitted by Kueue through the team's ClusterQueue (its
Workload is owned by the RayJob), reaches `SUCCEEDED`, and its driver (in the head pod's Ray container)
printed the `RAY-EXAMPLE-RESULT` line: the tasks' sum, and the injected variable names the driver and the
tasks saw; while a head pod is still there, its Ray container's env is checked too. The team's group may
create RayJobs in its namespace and not in another team's. The example is owned by Pulumi: the tests only
read it.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml

from tests.smoke.helpers import conditions, describe, owned_workloads, pod_summary

pytestmark = pytest.mark.smoke

GROUP = "ray.io"
CR_NAME_LABEL = "ray.io/originated-from-cr-name"  # on the submitter Job's pods and the RayJob's Ray pods
PREFIXES = ("MLFLOW_", "PYICEBERG_", "LAKEHOUSE_", "AWS_")  # what the example's program reports


@pytest.fixture(scope="module")
def ray(platform):
    layer = platform.enabled_layer("ray")
    from addons.ray import API, EXAMPLE, OPERATOR, RESULT_MARKER

    return {"layer": layer, "version": API.split("/")[1], "example": EXAMPLE, "operator": OPERATOR,
            "marker": RESULT_MARKER, "env": layer.default_env()}


@pytest.fixture(scope="module")
def team(platform, ray):
    if not platform.teams:
        pytest.skip(f"stack {platform.stack} has no teams (or the teams layer is off): no team namespace for RayJobs")
    return platform.teams[0]


@pytest.fixture(scope="module")
def example_namespace(platform, ray, team):
    layer = ray["layer"]
    if not layer.options.example:
        pytest.skip(f"cnai:layers.ray.example is false in stack {platform.stack}: no example RayJob")
    return layer.first_team_namespace()


def test_operator_ready_with_the_planned_env(platform, ray):
    from kubernetes import client

    ns, name = ray["layer"].namespace, ray["operator"]
    apps = client.AppsV1Api(platform.api)

    def ready() -> tuple[bool, str]:
        dep = apps.read_namespaced_deployment(name, ns, _request_timeout=30)
        want, have = dep.spec.replicas or 1, dep.status.ready_replicas or 0
        return have >= want, f"{have}/{want} ready"

    platform.wait_until(ready, f"Deployment {ns}/{name}",
                        diagnose=lambda: platform.pods_report(ns, f"app.kubernetes.io/name={name}"))
    cm = platform.core.read_namespaced_config_map(f"{name}-config", ns, _request_timeout=30)
    config = yaml.safe_load(cm.data["config.yaml"])
    got = [e["name"] for e in config.get("defaultContainerEnvs") or []]
    assert got == [e["name"] for e in ray["env"]], f"ConfigMap {ns}/{name}-config injects {got}"


@pytest.fixture(scope="module")
def example_result(platform, ray, example_namespace) -> dict[str, Any]:
    """Wait for the example RayJob to succeed (checking its Kueue admission on the way); its result line."""
    from kubernetes.client.exceptions import ApiException

    ns, name, version = example_namespace, ray["example"], ray["version"]

    def read() -> dict[str, Any]:
        return platform.custom.get_namespaced_custom_object(GROUP, version, ns, "rayjobs", name, _request_timeout=30)

    try:
        job = read()
    except ApiException as exc:
        if exc.status == 404:
            pytest.fail(f"RayJob {ns}/{name} is missing (the ray layer deploys it with Pulumi)", pytrace=False)
        raise
    selector = f"{CR_NAME_LABEL}={name}"

    def diagnose() -> str:
        try:
            rj = read()
            out = [f"RayJob {name}: suspend={rj['spec'].get('suspend')}, status: "
                   f"{json.dumps({k: v for k, v in (rj.get('status') or {}).items() if k != 'rayClusterStatus'})}"]
        except Exception as exc:  # noqa: BLE001 - diagnostics only
            out = [f"RayJob {name} not readable: {exc}"[:300]]
        out.append(f"events for {name}:\n{platform.events(ns, name)}")
        out.append(platform.pods_report(ns, selector, tail=40))
        return "\n".join(out)

    def succeeded() -> tuple[bool, str]:
        status = read().get("status") or {}
        state = f"jobStatus={status.get('jobStatus')} jobDeploymentStatus={status.get('jobDeploymentStatus')}"
        if status.get("jobDeploymentStatus") == "Failed" or status.get("jobStatus") in ("FAILED", "STOPPED"):
            pytest.fail(f"RayJob {ns}/{name} failed: {state}, {status.get('message')}\n{diagnose()}", pytrace=False)
        return status.get("jobStatus") == "SUCCEEDED", state

    platform.wait_until(succeeded, f"RayJob {ns}/{name} SUCCEEDED", diagnose=diagnose)
    pods = platform.core.list_namespaced_pod(ns, label_selector=f"{selector},batch.kubernetes.io/job-name={name}",
                                             _request_timeout=30).items
    assert pods, f"RayJob {ns}/{name} SUCCEEDED but its submitter pod is gone: no driver output to read"
    logs = "\n".join(platform.pod_logs(ns, p.metadata.name, 400) for p in pods)
    lines = [x.split(ray["marker"], 1)[1] for x in logs.splitlines() if ray["marker"] in x]
    assert lines, f"no {ray['marker'].strip()} line in the submitter's logs ({[pod_summary(p) for p in pods]}):\n" \
                  f"{logs[-3000:]}"
    return {"result": json.loads(lines[-1]), "uid": job["metadata"]["uid"]}


def test_example_admitted_through_the_team_queue(platform, ray, team, example_namespace, example_result):
    kueue = platform.layer("kueue")
    if kueue is None:
        pytest.skip(f"layer kueue is not enabled in stack {platform.stack}: the example runs unqueued")
    from addons.kueue import team_queue

    ns, name, uid = example_namespace, ray["example"], example_result["uid"]
    owned = owned_workloads(platform, ns, "RayJob", uid)
    assert owned, f"no Kueue Workload in {ns} is owned by RayJob {name}: is the ray.io/rayjob integration on?"
    wl = owned[-1]
    conds = conditions(wl)
    admitted = any((conds.get(t) or {}).get("status") == "True" for t in ("Admitted", "Finished"))
    assert admitted, f"Workload {wl['metadata']['name']}: " + "; ".join(f"{t}={describe(c)}" for t, c in conds.items())
    queue = ((wl.get("status") or {}).get("admission") or {}).get("clusterQueue")
    assert queue == team_queue(team), f"RayJob {name} was admitted by ClusterQueue {queue!r}, not {team_queue(team)!r}"


def test_example_ran_ray_tasks(example_result):
    result = example_result["result"]
    assert result["sum"] == result["expected"], f"the Ray tasks summed to {result['sum']}: {result}"
    assert result["nodes"] >= 2, f"expected the head and one worker in the Ray cluster: {result}"


def test_platform_env_in_the_head_pod_and_the_tasks(platform, ray, example_namespace, example_result):
    """Names only: the program never prints values (credentials come by secretKeyRef)."""
    result, ns, name = example_result["result"], example_namespace, ray["example"]
    planned = {e["name"] for e in ray["env"] if e["name"].startswith(PREFIXES)}
    if not planned:
        pytest.skip(f"stack {platform.stack} injects no tracking, object store or lakehouse settings")
    for where in ("driver_env", "task_env"):  # the driver runs in the head pod's Ray container
        missing = sorted(planned - set(result[where]))
        assert not missing, f"{where}: the operator did not inject {missing} into the Ray containers: {result}"
    uri = next((e["value"] for e in ray["env"] if e["name"] == "MLFLOW_TRACKING_URI"), "")
    assert result["mlflow"] == uri, f"driver's MLFLOW_TRACKING_URI {result['mlflow']!r}, planned {uri!r}"
    heads = platform.core.list_namespaced_pod(ns, label_selector=f"{CR_NAME_LABEL}={name},ray.io/node-type=head",
                                              _request_timeout=30).items
    for pod in heads:  # only while the cluster still exists (it is deleted when the job ends)
        names = {e.name for e in pod.spec.containers[0].env or []}
        missing = sorted({e["name"] for e in ray["env"]} - names)
        assert not missing, f"head pod {pod.metadata.name} lacks {missing}"


def test_team_can_create_ray_resources(platform, ray, team):
    ns = team.namespace
    member = ("cnai-smoke-member", [team.rbac_group, "system:authenticated"])
    outsider = ("cnai-smoke-outsider", ["system:authenticated"])
    for resource in ("rayjobs", "rayclusters", "rayservices"):
        assert platform.allowed(*member, ns, resource=resource, group=GROUP), (
            f"group {team.rbac_group} cannot create {resource}.{GROUP} in {ns} (is ClusterRole cnai-ray-edit "
            f"aggregated into edit?)")
        assert not platform.allowed(*outsider, ns, resource=resource, group=GROUP), (
            f"a user outside group {team.rbac_group} can create {resource}.{GROUP} in {ns}")
    for other in [t.namespace for t in platform.teams if t.rbac_group != team.rbac_group]:
        assert not platform.allowed(*member, other, resource="rayjobs", group=GROUP), (
            f"group {team.rbac_group} can create rayjobs.{GROUP} in {other}, another team's namespace")
