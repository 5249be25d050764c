"""Smoke: the Spark Operator runs SparkApplications in team namespaces, admitted through Kueue.

The operator's controller and webhook are Ready; the example SparkApplication `example-spark-pi` in the
first team's namespace is admitted by Kueue through the team's ClusterQueue (its Workload reserves quota
and is Admitted, the application is unsuspended), reaches `COMPLETED`, and its driver printed
`Pi is roughly 3.1...` (which also shows the driver reached the Kubernetes API through the team's
NetworkPolicies to start its executor); the team's group may create SparkApplications at home and not in
another team's namespace. The example is owned by Pulumi: the tests only read it.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from tests.smoke.helpers import conditions, describe, owned_workloads, pod_summary

pytestmark = pytest.mark.smoke

GROUP = "sparkoperator.k8s.io"
APP_LABEL = "sparkoperator.k8s.io/app-name"  # on the driver and executor pods the operator launches
DRIVER_CONTAINER = "spark-kubernetes-driver"
RESULT = re.compile(r"Pi is roughly (\d+\.\d+)")  # what examples/src/main/python/pi.py prints
FAILED = ("FAILED", "SUBMISSION_FAILED", "INVALIDATING", "UNKNOWN")


@pytest.fixture(scope="module")
def spark(platform):
    layer = platform.enabled_layer("spark")
    from addons.spark import API, EXAMPLE, FULLNAME

    return {"layer": layer, "version": API.split("/")[1], "example": EXAMPLE,
            "deployments": (f"{FULLNAME}-controller", f"{FULLNAME}-webhook")}


@pytest.fixture(scope="module")
def team(platform, spark):
    if not platform.teams:
        pytest.skip(f"stack {platform.stack} has no teams (or the teams layer is off): no SparkApplication namespace")
    return platform.teams[0]


@pytest.fixture(scope="module")
def example_namespace(platform, spark, team):
    layer = spark["layer"]
    if not layer.options.example:
        pytest.skip(f"cnai:layers.spark.example is false in stack {platform.stack}: no example SparkApplication")
    return layer.first_team_namespace()


def test_operator_ready(platform, spark):
    from kubernetes import client

    ns, apps = spark["layer"].namespace, client.AppsV1Api(platform.api)
    for name in spark["deployments"]:
        def ready(name: str = name) -> tuple[bool, str]:
            dep = apps.read_namespaced_deployment(name, ns, _request_timeout=30)
            want, have = dep.spec.replicas or 1, dep.status.ready_replicas or 0
            return have >= want, f"{have}/{want} ready"

        platform.wait_until(ready, f"Deployment {ns}/{name}",
                            diagnose=lambda: platform.pods_report(ns, "app.kubernetes.io/name=spark-operator"))


def test_example_admitted_by_kueue_and_completes(platform, spark, example_namespace):
    from kubernetes.client.exceptions import ApiException

    ns, name, version = example_namespace, spark["example"], spark["version"]
    kueue = platform.layer("kueue")

    def read() -> dict[str, Any]:
        return platform.custom.get_namespaced_custom_object(GROUP, version, ns, "sparkapplications", name,
                                                            _request_timeout=30)

    try:
        app = read()
    except ApiException as exc:
        if exc.status == 404:
            pytest.fail(f"SparkApplication {ns}/{name} is missing (the spark layer deploys it with Pulumi)",
                        pytrace=False)
        raise
    uid = app["metadata"]["uid"]

    def workloads() -> list[dict[str, Any]]:
        return owned_workloads(platform, ns, "SparkApplication", uid)

    def diagnose() -> str:
        out = []
        try:
            sa = read()
            out.append(f"SparkApplication {name}: suspend={sa['spec'].get('suspend')}, status: "
                       f"{json.dumps(sa.get('status') or {})[:1500]}")
        except Exception as exc:  # noqa: BLE001 - diagnostics only
            out.append(f"SparkApplication {name} not readable: {exc}"[:300])
        if kueue is not None:
            try:
                for wl in workloads():
                    wname = wl["metadata"]["name"]
                    out.append(f"Workload {wname}: "
                               + "; ".join(f"{t}={describe(c)}" for t, c in conditions(wl).items()))
                    out.append(f"events for {wname}:\n{platform.events(ns, wname)}")
            except Exception as exc:  # noqa: BLE001 - diagnostics only
                out.append(f"Workloads not readable: {exc}"[:300])
        out.append(f"events for {name}:\n{platform.events(ns, name)}")
        out.append(platform.pods_report(ns, f"{APP_LABEL}={name}", tail=40))
        out.append("operator:\n" + platform.pods_report(spark["layer"].namespace,
                                                        "app.kubernetes.io/component=controller", tail=40))
        return "\n".join(out)

    if kueue is not None:
        from modules.shared.labels import LOCAL_QUEUE, QUEUE_LABEL

        queue = (app["metadata"].get("labels") or {}).get(QUEUE_LABEL)
        assert queue == LOCAL_QUEUE, (f"SparkApplication {ns}/{name} has {QUEUE_LABEL}={queue!r}, "
                                      f"expected {LOCAL_QUEUE!r}")
        cluster_queue = dict(kueue.queue_namespaces())[ns]

        def admitted() -> tuple[bool, str]:
            found = workloads()
            if not found:
                return False, ("no Workload owned by the SparkApplication yet (is Kueue's SparkApplicationIntegration "
                               "gate on and sparkoperator.k8s.io/sparkapplication among its frameworks?)")
            found.sort(key=lambda w: (conditions(w).get("Admitted", {}).get("status") == "True",
                                      w["metadata"].get("creationTimestamp") or ""))
            wl = found[-1]
            cond = conditions(wl)
            adm, qr, fin = cond.get("Admitted"), cond.get("QuotaReserved"), cond.get("Finished")
            state = (f"Workload {wl['metadata']['name']}: QuotaReserved={describe(qr)}, "
                     f"Admitted={describe(adm)}, Finished={describe(fin)}")
            ok = bool(adm and adm["status"] == "True" and qr and qr["status"] == "True")
            if not ok and fin and fin["status"] == "True":
                pytest.fail(f"SparkApplication {ns}/{name}: its Workload finished without being admitted: {state}\n"
                            f"{diagnose()}", pytrace=False)
            if ok:
                cq = ((wl.get("status") or {}).get("admission") or {}).get("clusterQueue")
                assert cq == cluster_queue, (
                    f"SparkApplication {ns}/{name} admitted through ClusterQueue {cq}, expected {cluster_queue}")
                podsets = {p["name"] for p in wl["spec"]["podSets"]}
                assert podsets == {"driver", "executor"}, f"Workload podSets {podsets}"
            return ok, state

        platform.wait_until(admitted, f"SparkApplication {ns}/{name} admitted by Kueue",
                            timeout=min(platform.timeout, 300), interval=3, diagnose=diagnose)

    def completed() -> tuple[bool, str]:
        status = read().get("status") or {}
        state = (status.get("applicationState") or {}).get("state")
        if state in FAILED:
            pytest.fail(f"SparkApplication {ns}/{name} is {state}: "
                        f"{(status.get('applicationState') or {}).get('errorMessage')}\n{diagnose()}", pytrace=False)
        return state == "COMPLETED", f"state={state}, executors={status.get('executorState')}"

    platform.wait_until(completed, f"SparkApplication {ns}/{name} COMPLETED", diagnose=diagnose)

    driver = ((read().get("status") or {}).get("driverInfo") or {}).get("podName")
    assert driver, f"SparkApplication {ns}/{name} is COMPLETED but names no driver pod\n{diagnose()}"
    logs = platform.pod_logs(ns, driver, 400, container=DRIVER_CONTAINER)
    match = RESULT.search(logs)
    if match is None:
        pods = platform.core.list_namespaced_pod(ns, label_selector=f"{APP_LABEL}={name}", _request_timeout=30).items
        pytest.fail(f"driver {driver} did not print 'Pi is roughly ...' (pods: {[pod_summary(p) for p in pods]}):\n"
                    f"{logs[-3000:]}", pytrace=False)
    assert abs(float(match.group(1)) - 3.14159) < 0.1, f"driver {driver} printed {match.group(0)!r}"


def test_team_can_create_spark_applications(platform, spark, team):
    """The authorizer's answer: the team's group may create SparkApplications at home, not elsewhere."""
    ns = team.namespace
    member = ("cnai-smoke-member", [team.rbac_group, "system:authenticated"])
    outsider = ("cnai-smoke-outsider", ["system:authenticated"])
    for resource in ("sparkapplications", "scheduledsparkapplications"):
        assert platform.allowed(*member, ns, resource=resource, group=GROUP), (
            f"group {team.rbac_group} cannot create {resource}.{GROUP} in {ns} (is ClusterRole cnai-spark-edit "
            f"aggregated into edit?)")
        assert not platform.allowed(*outsider, ns, resource=resource, group=GROUP), (
            f"a user outside group {team.rbac_group} can create {resource}.{GROUP} in {ns}")
    for other in [t.namespace for t in platform.teams if t.rbac_group != team.rbac_group]:
        assert not platform.allowed(*member, other, resource="sparkapplications", group=GROUP), (
            f"group {team.rbac_group} can create sparkapplications.{GROUP} in {other}, another team's namespace")
