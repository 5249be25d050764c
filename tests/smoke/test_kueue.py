"""Smoke: Kueue shares quota, and GPUs, between teams as configured.

Every ClusterQueue the layer plans is Active and every queueing namespace's `default` LocalQueue points
at its own ClusterQueue; a small Job is admitted and completes; a Job asking for more CPU than the whole
cohort stays pending. With GPUs (real or simulated: `cnai:kind.simulateGpus`, as the kueue CI job runs)
and two teams holding GPU quota, the GPU scenario of docs/layers/kueue.md is replayed with Jobs that
request `nvidia.com/gpu`, end to end through admission and scheduling:

1. team A fills its quota and borrows team B's idle GPU;
2. team B submits and reclaims it: one of A's borrowing Jobs is preempted;
3. a high-priority Job of A overtakes A's low-priority ones (preemption inside A's queue);
4. a GPU pod labelled like a GPU notebook profile waits, gated, while its team's queue is full.

Jobs and pods are deleted afterwards.

Over 300 lines: one scenario whose steps build on each other, with the helpers they share.
"""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any

import pytest

from tests.smoke.helpers import SMOKE_LABEL, conditions, unique_suffix, wait_job

pytestmark = pytest.mark.smoke

GROUP = "kueue.x-k8s.io"
PENDING_SECONDS = 30  # how long work beyond quota must stay unadmitted
BUSYBOX = "registry.k8s.io/e2e-test-images/busybox:1.36.1-1"
GPU = "nvidia.com/gpu"
PRIORITY_LABEL = "kueue.x-k8s.io/priority-class"


@pytest.fixture(scope="module")
def kueue(platform):
    layer = platform.enabled_layer("kueue")
    from addons.kueue import API
    from modules.shared.labels import LOCAL_QUEUE, QUEUE_LABEL

    return {"layer": layer, "version": API.split("/")[1], "local_queue": LOCAL_QUEUE, "queue_label": QUEUE_LABEL,
            "queues": dict(layer.queue_namespaces())}


@pytest.fixture(scope="module")
def team_namespace(platform, kueue):
    if not platform.teams:
        pytest.skip(f"stack {platform.stack} has no teams (or the teams layer is off): no LocalQueue to submit to")
    return platform.teams[0].namespace


def _job(queue_label: str, queue: str, name: str, cpu: str, memory: str, command: str, gpus: int = 0,
         priority: str | None = None) -> dict[str, Any]:
    """A suspended Job for `queue`, restricted-PSS compatible, requests == limits (no LimitRange defaults)."""
    res = {"cpu": cpu, "memory": memory, **({GPU: str(gpus)} if gpus else {})}
    labels = {queue_label: queue, **SMOKE_LABEL, **({PRIORITY_LABEL: priority} if priority else {})}
    return {
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"generateName": f"smoke-{name}-", "labels": labels},
        "spec": {
            "suspend": True,
            "backoffLimit": 2,
            "activeDeadlineSeconds": 900,
            "ttlSecondsAfterFinished": 600,
            "template": {
                "metadata": {"labels": dict(SMOKE_LABEL)},
                "spec": {
                    "restartPolicy": "Never",
                    "terminationGracePeriodSeconds": 1,
                    "securityContext": {"runAsNonRoot": True, "runAsUser": 65534,
                                        "seccompProfile": {"type": "RuntimeDefault"}},
                    "containers": [{
                        "name": "main", "image": BUSYBOX, "imagePullPolicy": "IfNotPresent",
                        "command": ["sh", "-c", command],
                        "resources": {"requests": dict(res), "limits": dict(res)},
                        "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
                    }],
                },
            },
        },
    }


def _workload(platform, kueue, namespace: str, job_uid: str) -> dict[str, Any] | None:
    items = platform.custom.list_namespaced_custom_object(
        GROUP, kueue["version"], namespace, "workloads", _request_timeout=30)["items"]
    return next((w for w in items
                 if any(o.get("uid") == job_uid for o in w["metadata"].get("ownerReferences") or [])), None)


def _admitted(wl: dict[str, Any] | None) -> bool:
    return bool(wl) and (conditions(wl).get("Admitted") or {}).get("status") == "True"


def _preempted(wl: dict[str, Any] | None) -> str | None:
    """The Preempted condition's reason when Kueue preempted the workload (even if it was requeued since)."""
    if not wl:
        return None
    cond = conditions(wl)
    evicted, preempted = cond.get("Evicted") or {}, cond.get("Preempted") or {}
    if preempted.get("status") == "True" or evicted.get("reason") == "Preempted":
        return preempted.get("reason") or evicted.get("reason")
    return None


def _cpu_quota(obj: dict[str, Any]) -> Decimal:
    from modules.shared.config import quantity

    return sum((quantity(str(r["nominalQuota"])) for g in obj["spec"].get("resourceGroups") or []
                for f in g.get("flavors") or [] for r in f.get("resources") or [] if r["name"] == "cpu"), Decimal(0))


def test_cluster_queues_active(platform, kueue):
    names = [q["metadata"]["name"] for q in kueue["layer"].queues()]
    assert names, "the kueue layer plans no ClusterQueue"

    def check():
        waiting = []
        for name in names:
            cq = platform.custom.get_cluster_custom_object(GROUP, kueue["version"], "clusterqueues", name,
                                                           _request_timeout=30)
            active = conditions(cq).get("Active")
            if not active or active["status"] != "True":
                waiting.append(f"{name}: {active and active.get('reason')}: {active and active.get('message')}")
        return not waiting, "; ".join(waiting) or "all Active"

    platform.wait_until(check, f"ClusterQueues {', '.join(names)} Active", timeout=min(platform.timeout, 300))


def test_local_queues_point_at_their_cluster_queue(platform, kueue):
    problems = []
    for ns, queue in kueue["queues"].items():
        try:
            lq = platform.custom.get_namespaced_custom_object(
                GROUP, kueue["version"], ns, "localqueues", kueue["local_queue"], _request_timeout=30)
        except Exception as exc:  # noqa: BLE001 - reported below
            problems.append(f"{ns}: LocalQueue {kueue['local_queue']} not readable ({getattr(exc, 'status', exc)})")
            continue
        if lq["spec"].get("clusterQueue") != queue:
            problems.append(f"{ns}: LocalQueue points at {lq['spec'].get('clusterQueue')}, not {queue}")
        active = conditions(lq).get("Active")
        if active and active["status"] != "True":
            problems.append(f"{ns}: LocalQueue not Active ({active.get('reason')}: {active.get('message')})")
    assert not problems, "; ".join(problems)


def test_job_admitted_and_completes(platform, kueue, team_namespace, jobs):
    ns = team_namespace
    job = jobs(ns, _job(kueue["queue_label"], kueue["local_queue"], "admit", "50m", "32Mi", "echo cnai-smoke-ok"))
    name, uid = job.metadata.name, job.metadata.uid

    def diagnose() -> str:
        pods = platform.core.list_namespaced_pod(ns, label_selector=f"job-name={name}", _request_timeout=20).items
        logs = "\n".join(f"pod {p.metadata.name} ({p.status.phase}):\n{platform.pod_logs(ns, p.metadata.name)}"
                         for p in pods)
        return f"events for {name}:\n{platform.events(ns, name)}\n{logs}"

    def admitted():
        wl = _workload(platform, kueue, ns, uid)
        if wl is None:
            return False, "no Workload for the Job yet"
        cond = conditions(wl)
        qr = cond.get("QuotaReserved") or {}
        state = (f"Workload {wl['metadata']['name']}: Admitted={_admitted(wl)}, "
                 f"QuotaReserved={qr.get('status')} ({qr.get('reason')}: {qr.get('message')})")
        if not _admitted(wl):
            return False, state
        cq = ((wl.get("status") or {}).get("admission") or {}).get("clusterQueue")
        expected = kueue["queues"][ns]
        assert cq == expected, f"Job {name} admitted through ClusterQueue {cq}, expected {expected}"
        return True, state

    platform.wait_until(admitted, f"Job {ns}/{name} admitted by Kueue", timeout=min(platform.timeout, 180),
                        interval=2, diagnose=diagnose)
    wait_job(platform, ns, name, "admitted Job complete", diagnose)


def test_job_over_quota_stays_pending(platform, kueue, team_namespace, jobs):
    ns = team_namespace
    version = kueue["version"]
    queues = platform.custom.list_cluster_custom_object(GROUP, version, "clusterqueues", _request_timeout=30)["items"]
    cohorts = platform.custom.list_cluster_custom_object(GROUP, version, "cohorts", _request_timeout=30)["items"]
    # More CPU than every queue and the cohort's pool together: nothing can lend enough.
    total = sum((_cpu_quota(o) for o in queues + cohorts), Decimal(0))
    cpu = str(int(total) + 1)
    job = jobs(ns, _job(kueue["queue_label"], kueue["local_queue"], "overquota", cpu, "32Mi", "true"))
    name, uid = job.metadata.name, job.metadata.uid

    platform.wait_until(lambda: (_workload(platform, kueue, ns, uid) is not None, "no Workload for the Job yet"),
                        f"Workload for Job {ns}/{name} created", timeout=60, interval=2)
    deadline = time.monotonic() + PENDING_SECONDS
    while time.monotonic() < deadline:
        wl = _workload(platform, kueue, ns, uid)
        assert wl is not None, f"Workload of Job {ns}/{name} disappeared"
        assert not _admitted(wl), f"Job {ns}/{name} requesting {cpu} CPU (cohort total {total}) was admitted"
        j = platform.batch.read_namespaced_job(name, ns, _request_timeout=30)
        assert j.spec.suspend is not False, f"Job {ns}/{name} beyond quota was unsuspended"
        time.sleep(3)


# -- GPUs shared by two teams ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def gpu_teams(platform, kueue):
    """Two teams that lend each other GPUs, on a cluster whose GPUs are all guaranteed (no pool): the
    numbers the scenario needs, read from the planned queues."""
    layer, caps = kueue["layer"], platform.caps
    if not caps.gpus or caps.gpu_resource != GPU or caps.gpu_allocation != "device-plugin":
        pytest.skip(f"stack {platform.stack} has no {GPU} GPUs from the device plugin (real or simulated)")
    queues = {q["metadata"]["name"]: q for q in layer.queues()}

    def gpu(team, key):
        from addons.kueue import team_queue

        res = next(r for g in queues[team_queue(team)]["spec"]["resourceGroups"] for r in g["flavors"][0]["resources"]
                   if r["name"] == GPU)
        return int(res.get(key, 0))

    teams = [t for t in platform.teams if gpu(t, "nominalQuota") >= 1]
    if len(teams) < 2:
        pytest.skip(f"stack {platform.stack} has fewer than two teams with GPU quota (the kueue CI job has two)")
    a, b = teams[:2]
    capacity = caps.gpu_resources()[GPU]
    if gpu(b, "lendingLimit") < 1 or gpu(a, "borrowingLimit") < 1:
        pytest.skip(f"team {b.name} lends no GPU to team {a.name} (lendingLimit/borrowingLimit)")
    guaranteed = sum(gpu(t, "nominalQuota") for t in platform.teams)
    if guaranteed != capacity:
        pytest.skip(f"the teams are guaranteed {guaranteed} of {capacity} GPUs: the scenario needs no shared pool")
    return {"a": a, "b": b, "nominal_a": gpu(a, "nominalQuota"), "nominal_b": gpu(b, "nominalQuota"),
            "capacity": capacity, "a_can_hold": gpu(a, "nominalQuota") + min(gpu(a, "borrowingLimit"),
                                                                            gpu(b, "lendingLimit"))}


def _gpu_jobs(platform, kueue, jobs, namespace: str, count: int, name: str, priority: str) -> list[tuple[str, str]]:
    out = []
    for _ in range(count):
        job = jobs(namespace, _job(kueue["queue_label"], kueue["local_queue"], name, "20m", "16Mi", "sleep 900",
                                   gpus=1, priority=priority))
        out.append((job.metadata.name, job.metadata.uid))
    return out


def _states(platform, kueue, namespace: str, jobs: list[tuple[str, str]]) -> list[dict[str, Any] | None]:
    return [_workload(platform, kueue, namespace, uid) for _, uid in jobs]


def test_teams_borrow_reclaim_and_preempt_by_priority(platform, kueue, gpu_teams, jobs):
    a, b = gpu_teams["a"], gpu_teams["b"]
    version = kueue["version"]
    timeout = min(platform.timeout, 300)

    def summary() -> str:
        lines = []
        for team in (a, b):
            cq = platform.custom.get_cluster_custom_object(
                GROUP, version, "clusterqueues", kueue["queues"][team.namespace], _request_timeout=30)
            usage = [r for f in (cq.get("status") or {}).get("flavorsUsage") or [] for r in f.get("resources") or []
                     if r["name"] == GPU]
            lines.append(f"{team.namespace}: GPU usage {usage}, weightedShare "
                         f"{((cq.get('status') or {}).get('fairSharing') or {}).get('weightedShare')}")
        return "\n".join(lines)

    # 1. A fills its quota and borrows one of B's idle GPUs.
    low = _gpu_jobs(platform, kueue, jobs, a.namespace, gpu_teams["nominal_a"] + 1, "gpu-low", "low")

    def a_borrows():
        states = _states(platform, kueue, a.namespace, low)
        admitted = sum(_admitted(w) for w in states)
        return admitted == len(low), f"{admitted}/{len(low)} of team {a.name}'s Jobs admitted\n{summary()}"

    platform.wait_until(a_borrows, f"team {a.name} borrows a GPU beyond its quota of {gpu_teams['nominal_a']}",
                        timeout=timeout, interval=3)
    cq_a = platform.custom.get_cluster_custom_object(GROUP, version, "clusterqueues", kueue["queues"][a.namespace],
                                                     _request_timeout=30)
    borrowed = [int(r.get("borrowed", 0)) for f in cq_a["status"]["flavorsUsage"] for r in f["resources"]
                if r["name"] == GPU]
    assert sum(borrowed) >= 1, f"team {a.name} runs {len(low)} GPU Jobs but borrows nothing: {summary()}"

    # 2. B claims its whole guarantee: Kueue reclaims the GPU A borrowed by preempting one of A's Jobs.
    reclaim = _gpu_jobs(platform, kueue, jobs, b.namespace, gpu_teams["capacity"] - len(low) + 1, "gpu-reclaim",
                        "normal")

    def b_reclaims():
        b_states = _states(platform, kueue, b.namespace, reclaim)
        a_reasons = [_preempted(w) for w in _states(platform, kueue, a.namespace, low)]
        done = all(_admitted(w) for w in b_states) and any(a_reasons)
        return done, (f"team {b.name}: {sum(_admitted(w) for w in b_states)}/{len(reclaim)} admitted; "
                      f"team {a.name} preemptions: {a_reasons}\n{summary()}")

    detail = platform.wait_until(b_reclaims, f"team {b.name} reclaims its GPUs from team {a.name}", timeout=timeout,
                                 interval=3)
    reasons = [r for r in (_preempted(w) for w in _states(platform, kueue, a.namespace, low)) if r]
    assert all(r.startswith("InCohort") for r in reasons), f"A's Jobs preempted for {reasons}, not by reclaim: {detail}"

    # 3. A high-priority Job of A: nothing is idle, so it preempts one of A's own low-priority Jobs.
    running_low = sum(_admitted(w) for w in _states(platform, kueue, a.namespace, low))
    high = _gpu_jobs(platform, kueue, jobs, a.namespace, 1, "gpu-high", "high")

    def overtakes():
        h = _states(platform, kueue, a.namespace, high)[0]
        now = sum(_admitted(w) for w in _states(platform, kueue, a.namespace, low))
        return (_admitted(h) and now < running_low,
                f"high admitted={_admitted(h)}; A's low Jobs admitted {now} (before: {running_low})\n{summary()}")

    platform.wait_until(overtakes, f"team {a.name}'s high-priority Job overtakes its low-priority ones",
                        timeout=timeout, interval=3)
    b_states = _states(platform, kueue, b.namespace, reclaim)
    assert all(_admitted(w) for w in b_states), \
        f"team {a.name}'s high-priority Job took team {b.name}'s guaranteed GPUs: {summary()}"


def test_gpu_notebook_pod_waits_for_its_queue(platform, kueue, gpu_teams, jobs):
    """A pod labelled as GPU notebook profiles label theirs (Kueue's pod integration) stays gated while its
    team's queue has no GPU left, and starts once quota frees up."""
    from kubernetes import client

    a, caps = gpu_teams["a"], platform.caps
    # Fill the cohort: every GPU in use by team A's Jobs (A's quota plus everything it may borrow).
    fill = _gpu_jobs(platform, kueue, jobs, a.namespace, gpu_teams["capacity"], "gpu-fill", "normal")

    def full():
        admitted = sum(_admitted(w) for w in _states(platform, kueue, a.namespace, fill))
        return admitted >= gpu_teams["a_can_hold"], (f"{admitted} of {len(fill)} fill Jobs admitted "
                                                     f"(team {a.name} can hold {gpu_teams['a_can_hold']})")

    platform.wait_until(full, f"team {a.name}'s queue holds its GPUs", timeout=min(platform.timeout, 300), interval=3)
    name = f"smoke-notebook-{unique_suffix()}"
    labels = {**kueue["layer"].workload_labels(), **SMOKE_LABEL}
    pod = client.V1Pod(
        metadata=client.V1ObjectMeta(name=name, labels=labels),
        spec=client.V1PodSpec(
            restart_policy="Never", termination_grace_period_seconds=1,
            node_selector=dict(caps.gpu_node_selector) or None,
            tolerations=[client.V1Toleration(**t) for t in caps.gpu_tolerations] or None,
            security_context=client.V1PodSecurityContext(run_as_non_root=True, run_as_user=65534,
                                                         seccomp_profile=client.V1SeccompProfile(type="RuntimeDefault")),
            containers=[client.V1Container(
                name="notebook", image=BUSYBOX, command=["sh", "-c", "sleep 900"],
                resources=client.V1ResourceRequirements(requests={"cpu": "20m", "memory": "16Mi", GPU: "1"},
                                                        limits={"cpu": "20m", "memory": "16Mi", GPU: "1"}),
                security_context=client.V1SecurityContext(allow_privilege_escalation=False,
                                                          capabilities=client.V1Capabilities(drop=["ALL"])))]))
    platform.core.create_namespaced_pod(a.namespace, pod)
    try:
        deadline = time.monotonic() + PENDING_SECONDS
        while time.monotonic() < deadline:
            p = platform.core.read_namespaced_pod(name, a.namespace, _request_timeout=30)
            gates = [g.name for g in p.spec.scheduling_gates or []]
            assert gates and p.status.phase == "Pending", (
                f"GPU pod {a.namespace}/{name} was not held by Kueue while the queue is full "
                f"(gates {gates}, phase {p.status.phase})")
            time.sleep(3)
        for job_name, _ in fill:  # free the queue: the pod is admitted and its gate lifted
            platform.batch.delete_namespaced_job(job_name, a.namespace,
                                                 body=client.V1DeleteOptions(propagation_policy="Background"))

        def started():
            p = platform.core.read_namespaced_pod(name, a.namespace, _request_timeout=30)
            gates = [g.name for g in p.spec.scheduling_gates or []]
            return not gates and p.status.phase == "Running", f"gates {gates}, phase {p.status.phase}"

        platform.wait_until(started, f"GPU pod {a.namespace}/{name} admitted once GPUs freed up",
                            timeout=min(platform.timeout, 300), interval=3)
    finally:
        platform.core.delete_namespaced_pod(name, a.namespace, grace_period_seconds=0)
