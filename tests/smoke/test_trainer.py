"""Smoke: Kubeflow Trainer runs TrainJobs on the pinned runtimes, admitted through Kueue.

The ClusterTrainingRuntimes of the pinned runtimes overlay exist (`torch-distributed` among them);
the example TrainJob `example-torch` in the first team's namespace is admitted by Kueue (its
Workload reserves quota and is Admitted, the TrainJob is unsuspended), reaches `Complete` and its
trainer node printed `rank=0 world=1 loss=<float>`; and the authorizer lets the team's group create
TrainJobs in its namespace and not in another team's. The example is owned by Pulumi: the tests
only read it, they never delete or change it.
"""

from __future__ import annotations

import math
import re
from typing import Any

import pytest

from tests.smoke.helpers import conditions, describe, owned_workloads, pod_summary

pytestmark = pytest.mark.smoke

GROUP = "trainer.kubeflow.org"
JOBSET_LABEL = "jobset.sigs.k8s.io/jobset-name"  # on every pod of the TrainJob's JobSet
NODE_CONTAINER = "node"  # the trainer container of the torch-distributed runtime
# The ClusterTrainingRuntimes of kubeflow/trainer@v2.3.0:manifests/overlays/runtimes (base/runtimes).
OVERLAY_RUNTIMES = ("torch-distributed", "deepspeed-distributed", "mlx-distributed", "jax-distributed",
                    "xgboost-distributed", "torchtune-llama3.2-1b", "torchtune-llama3.2-3b",
                    "torchtune-qwen2.5-1.5b")
# The example's script prints this line once training is done (addons/trainer.py).
RESULT = re.compile(r"rank=(\d+) world=(\d+) loss=(\S+)")


@pytest.fixture(scope="module")
def trainer(platform):
    layer = platform.layer("trainer")
    if layer is None:
        pytest.skip(f"layer trainer is not enabled in stack {platform.stack}")
    from addons.trainer import API, EXAMPLE, RUNTIME

    return {"layer": layer, "version": API.split("/")[1], "example": EXAMPLE, "runtime": RUNTIME}


@pytest.fixture(scope="module")
def team(platform, trainer):
    if not platform.teams:
        pytest.skip(f"stack {platform.stack} has no teams (or the teams layer is off): no team namespace for TrainJobs")
    return platform.teams[0]


@pytest.fixture(scope="module")
def example_namespace(platform, trainer, team):
    layer = trainer["layer"]
    if not layer.options.example:
        pytest.skip(f"cnai:layers.trainer.example is false in stack {platform.stack}: no example TrainJob")
    ns = layer.first_team_namespace()
    if not ns:
        pytest.skip(f"stack {platform.stack} deploys no example TrainJob (no team namespace)")
    return ns


def _node_pods(platform, namespace: str, name: str) -> list[Any]:
    pods = platform.core.list_namespaced_pod(namespace, label_selector=f"{JOBSET_LABEL}={name}",
                                             _request_timeout=30).items
    return [p for p in pods if any(c.name == NODE_CONTAINER for c in p.spec.containers)]


def test_training_runtimes_installed(platform, trainer):
    from kubernetes.client.exceptions import ApiException

    try:
        items = platform.custom.list_cluster_custom_object(GROUP, trainer["version"], "clustertrainingruntimes",
                                                           _request_timeout=30)["items"]
    except ApiException as exc:
        if exc.status == 404:
            pytest.fail(f"the ClusterTrainingRuntime API ({GROUP}/{trainer['version']}) is not served: "
                        f"are the kubeflow-trainer CRDs installed?", pytrace=False)
        raise
    names = sorted(r["metadata"]["name"] for r in items)
    missing = [r for r in dict.fromkeys((trainer["runtime"], *OVERLAY_RUNTIMES)) if r not in names]
    assert trainer["runtime"] in names, (
        f"ClusterTrainingRuntime {trainer['runtime']} (the example's runtime) is missing; "
        f"missing from the runtimes overlay: {missing}; present: {names or 'none'}")
    assert not missing, f"ClusterTrainingRuntimes of the runtimes overlay missing: {missing}; present: {names}"


def test_example_trainjob_admitted_and_completes(platform, trainer, example_namespace):
    from kubernetes.client.exceptions import ApiException

    ns, name, version = example_namespace, trainer["example"], trainer["version"]
    kueue = platform.layer("kueue")

    def read() -> dict[str, Any]:
        return platform.custom.get_namespaced_custom_object(GROUP, version, ns, "trainjobs", name,
                                                            _request_timeout=30)

    try:
        job = read()
    except ApiException as exc:
        if exc.status == 404:
            pytest.fail(f"TrainJob {ns}/{name} is missing (the trainer layer deploys it with Pulumi)", pytrace=False)
        raise
    uid = job["metadata"]["uid"]

    def workloads() -> list[dict[str, Any]]:
        return owned_workloads(platform, ns, "TrainJob", uid)

    def diagnose() -> str:
        out = []
        try:
            tj = read()
            out.append(f"TrainJob {name}: suspend={tj['spec'].get('suspend')}, conditions: "
                       + "; ".join(f"{t}={describe(c)}" for t, c in conditions(tj).items()))
            out.append(f"jobsStatus: {(tj.get('status') or {}).get('jobsStatus')}")
        except Exception as exc:  # noqa: BLE001 - diagnostics only
            out.append(f"TrainJob {name} not readable: {exc}"[:300])
        if kueue is not None:
            try:
                for wl in workloads():
                    wname = wl["metadata"]["name"]
                    out.append(f"Workload {wname}: "
                               + "; ".join(f"{t}={describe(c)}" for t, c in conditions(wl).items()))
                    out.append(f"events for {wname}:\n{platform.events(ns, wname)}")
            except Exception as exc:  # noqa: BLE001 - diagnostics only
                out.append(f"Workloads not readable: {exc}"[:300])
        out.append(f"events for {name} (TrainJob, JobSet):\n{platform.events(ns, name)}")
        pods: list[Any] = []
        try:
            pods = platform.core.list_namespaced_pod(ns, label_selector=f"{JOBSET_LABEL}={name}",
                                                     _request_timeout=20).items
        except Exception as exc:  # noqa: BLE001 - diagnostics only
            out.append(f"pods not listable: {exc}"[:300])
        for p in pods:
            out.append(f"pod {pod_summary(p)}:\n{platform.pod_logs(ns, p.metadata.name, 40, container=NODE_CONTAINER)}")
        if not pods:
            out.append(f"no pods labelled {JOBSET_LABEL}={name}")
        return "\n".join(out)

    if kueue is not None:
        from modules.shared.labels import LOCAL_QUEUE, QUEUE_LABEL

        queue = (job["metadata"].get("labels") or {}).get(QUEUE_LABEL)
        assert queue == LOCAL_QUEUE, f"TrainJob {ns}/{name} has {QUEUE_LABEL}={queue!r}, expected {LOCAL_QUEUE!r}"
        # The TrainJob runs in a team namespace: its LocalQueue points at the team's ClusterQueue.
        cluster_queue = dict(kueue.queue_namespaces())[ns]

        def admitted():
            found = workloads()
            if not found:
                return False, "no Workload owned by the TrainJob yet"
            # Prefer an admitted one (a re-queued job may leave an older, evicted Workload behind).
            found.sort(key=lambda w: (conditions(w).get("Admitted", {}).get("status") == "True",
                                      w["metadata"].get("creationTimestamp") or ""))
            wl = found[-1]
            cond = conditions(wl)
            adm, qr, fin = cond.get("Admitted"), cond.get("QuotaReserved"), cond.get("Finished")
            state = (f"Workload {wl['metadata']['name']}: QuotaReserved={describe(qr)}, "
                     f"Admitted={describe(adm)}, Finished={describe(fin)}")
            ok = bool(adm and adm["status"] == "True" and qr and qr["status"] == "True")
            if not ok and fin and fin["status"] == "True":
                pytest.fail(f"TrainJob {ns}/{name}: its Workload finished without being admitted: {state}\n"
                            f"{diagnose()}", pytrace=False)
            if ok:
                cq = ((wl.get("status") or {}).get("admission") or {}).get("clusterQueue")
                assert cq == cluster_queue, (
                    f"TrainJob {ns}/{name} admitted through ClusterQueue {cq}, expected {cluster_queue}")
            return ok, state

        platform.wait_until(admitted, f"TrainJob {ns}/{name} admitted by Kueue", timeout=min(platform.timeout, 300),
                            interval=3, diagnose=diagnose)

    def unsuspended():
        suspend = read()["spec"].get("suspend")
        return suspend is False or suspend is None, f"spec.suspend={suspend}"

    platform.wait_until(unsuspended, f"TrainJob {ns}/{name} unsuspended" + (" after admission" if kueue else ""),
                        timeout=60, interval=2, diagnose=diagnose)

    def completed():
        cond = conditions(read())
        failed = cond.get("Failed")
        if failed and failed["status"] == "True":
            pytest.fail(f"TrainJob {ns}/{name} failed: {failed.get('reason')}: {failed.get('message')}\n{diagnose()}",
                        pytrace=False)
        complete = cond.get("Complete")
        state = ", ".join(f"{t}={c['status']} ({c.get('reason')})" for t, c in cond.items()) or "no conditions yet"
        return bool(complete and complete["status"] == "True"), state

    platform.wait_until(completed, f"TrainJob {ns}/{name} Complete", diagnose=diagnose)

    pods = _node_pods(platform, ns, name)
    assert pods, (f"TrainJob {ns}/{name} is Complete but no pod labelled {JOBSET_LABEL}={name} with a "
                  f"{NODE_CONTAINER!r} container is left to read the result from\n{diagnose()}")
    logs = {p.metadata.name: platform.pod_logs(ns, p.metadata.name, 200, container=NODE_CONTAINER) for p in pods}
    results = [(pod, m) for pod, text in logs.items() for m in RESULT.finditer(text)]
    shown = "\n".join(f"pod {pod} (container {NODE_CONTAINER}):\n{text[-3000:]}" for pod, text in logs.items())
    assert results, f"no trainer node of TrainJob {ns}/{name} printed 'rank=.. world=.. loss=..':\n{shown}"
    pod, match = results[-1]
    rank, world, loss = match.groups()
    try:
        value = float(loss)
    except ValueError:
        pytest.fail(f"pod {pod} printed a loss that is not a number: {match.group(0)!r}\n{shown}", pytrace=False)
    assert (rank, world) == ("0", "1"), f"pod {pod}: expected one process (rank=0 world=1), got {match.group(0)!r}"
    assert math.isfinite(value), f"pod {pod}: training diverged: {match.group(0)!r}"


def test_team_can_create_trainjobs(platform, trainer, team):
    """The authorizer's answer: the team's group may create TrainJobs at home, not in other teams' namespaces."""
    ns = team.namespace
    member = ("cnai-smoke-member", [team.rbac_group, "system:authenticated"])
    outsider = ("cnai-smoke-outsider", ["system:authenticated"])
    assert platform.allowed(*member, ns, resource="trainjobs", group=GROUP), (
        f"group {team.rbac_group} cannot create trainjobs.{GROUP} in {ns} (is ClusterRole cnai-trainer-edit "
        f"aggregated into edit?)")
    assert not platform.allowed(*outsider, ns, resource="trainjobs", group=GROUP), (
        f"a user outside group {team.rbac_group} can create trainjobs.{GROUP} in {ns}")
    others = [t.namespace for t in platform.teams if t.rbac_group != team.rbac_group]
    for other in others:
        assert not platform.allowed(*member, other, resource="trainjobs", group=GROUP), (
            f"group {team.rbac_group} can create trainjobs.{GROUP} in {other}, another team's namespace")
