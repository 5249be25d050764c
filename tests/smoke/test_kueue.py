"""Smoke: Kueue queues admit work within quota and hold back work beyond it.

The ClusterQueue is Active, every team namespace has the `default` LocalQueue pointing at it, a
small Job submitted to `default` is admitted and completes, and a Job asking for more CPU than the
whole queue's quota stays pending. Jobs are deleted afterwards (the `jobs` fixture).
"""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any

import pytest

from tests.smoke.helpers import conditions, wait_job

pytestmark = pytest.mark.smoke

GROUP = "kueue.x-k8s.io"
PENDING_SECONDS = 30  # how long the over-quota Job must stay unadmitted
BUSYBOX = "registry.k8s.io/e2e-test-images/busybox:1.36.1-1"


@pytest.fixture(scope="module")
def kueue(platform):
    layer = platform.enabled_layer("kueue")
    from addons.kueue import API
    from modules.shared.labels import LOCAL_QUEUE, QUEUE_LABEL

    return {"layer": layer, "version": API.split("/")[1], "cq": layer.options.clusterQueue,
            "local_queue": LOCAL_QUEUE, "queue_label": QUEUE_LABEL}


@pytest.fixture(scope="module")
def team_namespace(platform, kueue):
    if not platform.teams:
        pytest.skip(f"stack {platform.stack} has no teams (or the teams layer is off): no LocalQueue to submit to")
    return platform.teams[0].namespace


def _job(queue_label: str, queue: str, name: str, cpu: str, memory: str, command: str) -> dict[str, Any]:
    """A suspended Job for `queue`, restricted-PSS compatible, requests == limits (no LimitRange defaults)."""
    res = {"cpu": cpu, "memory": memory}
    return {
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"generateName": f"smoke-{name}-",
                     "labels": {queue_label: queue, "app.kubernetes.io/part-of": "cnai-smoke"}},
        "spec": {
            "suspend": True,
            "backoffLimit": 2,
            "activeDeadlineSeconds": 600,
            "ttlSecondsAfterFinished": 600,
            "template": {
                "metadata": {"labels": {"app.kubernetes.io/part-of": "cnai-smoke"}},
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


def _cpu_quota(cq: dict[str, Any]) -> Decimal:
    from modules.shared.config import quantity

    total = Decimal(0)
    for group in cq["spec"].get("resourceGroups") or []:
        for flavor in group.get("flavors") or []:
            for r in flavor.get("resources") or []:
                if r["name"] == "cpu":
                    total += quantity(str(r["nominalQuota"]))
    return total


def test_cluster_queue_active(platform, kueue):
    name = kueue["cq"]

    def check():
        cq = platform.custom.get_cluster_custom_object(GROUP, kueue["version"], "clusterqueues", name,
                                                       _request_timeout=30)
        active = conditions(cq).get("Active")
        if not active:
            return False, "no Active condition yet"
        why = f"{active.get('reason')}: {active.get('message')}"
        return active["status"] == "True", f"Active={active['status']} ({why})"

    platform.wait_until(check, f"ClusterQueue {name} Active", timeout=min(platform.timeout, 300))


def test_local_queues(platform, kueue):
    if not platform.teams:
        pytest.skip(f"stack {platform.stack} has no teams (or the teams layer is off)")
    problems = []
    for team in platform.teams:
        try:
            lq = platform.custom.get_namespaced_custom_object(
                GROUP, kueue["version"], team.namespace, "localqueues", kueue["local_queue"], _request_timeout=30)
        except Exception as exc:  # noqa: BLE001 - reported below
            problems.append(f"{team.namespace}: LocalQueue {kueue['local_queue']} not readable "
                            f"({getattr(exc, 'status', exc)})")
            continue
        if lq["spec"].get("clusterQueue") != kueue["cq"]:
            problems.append(f"{team.namespace}: LocalQueue points at {lq['spec'].get('clusterQueue')}, "
                            f"not {kueue['cq']}")
        active = conditions(lq).get("Active")
        if active and active["status"] != "True":
            problems.append(f"{team.namespace}: LocalQueue not Active "
                            f"({active.get('reason')}: {active.get('message')})")
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
        adm = cond.get("Admitted")
        qr = cond.get("QuotaReserved") or {}
        state = (f"Workload {wl['metadata']['name']}: Admitted={adm and adm['status']}, "
                 f"QuotaReserved={qr.get('status')} ({qr.get('reason')}: {qr.get('message')})")
        if not adm or adm["status"] != "True":
            return False, state
        cq = ((wl.get("status") or {}).get("admission") or {}).get("clusterQueue")
        assert cq == kueue["cq"], f"Job {name} admitted through ClusterQueue {cq}, expected {kueue['cq']}"
        return True, state

    platform.wait_until(admitted, f"Job {ns}/{name} admitted by Kueue", timeout=min(platform.timeout, 180),
                        interval=2, diagnose=diagnose)

    def unsuspended():
        j = platform.batch.read_namespaced_job(name, ns, _request_timeout=30)
        return j.spec.suspend is False, f"spec.suspend={j.spec.suspend}"

    platform.wait_until(unsuspended, f"Job {ns}/{name} unsuspended after admission", timeout=60, interval=2,
                        diagnose=diagnose)

    wait_job(platform, ns, name, "admitted Job complete", diagnose)


def test_job_over_quota_stays_pending(platform, kueue, team_namespace, jobs):
    ns = team_namespace
    cqs = platform.custom.list_cluster_custom_object(GROUP, kueue["version"], "clusterqueues",
                                                     _request_timeout=30)["items"]
    # More CPU than every ClusterQueue together: nothing in the cohort can lend enough.
    total = sum((_cpu_quota(cq) for cq in cqs), Decimal(0))
    cpu = str(int(total) + 1)
    job = jobs(ns, _job(kueue["queue_label"], kueue["local_queue"], "overquota", cpu, "32Mi", "true"))
    name, uid = job.metadata.name, job.metadata.uid

    platform.wait_until(lambda: (_workload(platform, kueue, ns, uid) is not None, "no Workload for the Job yet"),
                        f"Workload for Job {ns}/{name} created", timeout=60, interval=2)
    deadline = time.monotonic() + PENDING_SECONDS
    last = ""
    while time.monotonic() < deadline:
        wl = _workload(platform, kueue, ns, uid)
        assert wl is not None, f"Workload of Job {ns}/{name} disappeared"
        cond = conditions(wl)
        for kind in ("Admitted", "QuotaReserved"):
            c = cond.get(kind)
            assert not c or c["status"] != "True", (
                f"Job {ns}/{name} requesting {cpu} CPU (queues' total CPU quota {total}) got {kind}: {c}")
        j = platform.batch.read_namespaced_job(name, ns, _request_timeout=30)
        assert j.spec.suspend is not False, f"Job {ns}/{name} beyond quota was unsuspended"
        qr = cond.get("QuotaReserved") or {}
        last = f"{qr.get('reason')}: {qr.get('message')}"
        time.sleep(3)
    pods = platform.core.list_namespaced_pod(ns, label_selector=f"job-name={name}", _request_timeout=30).items
    assert not pods, f"Job {ns}/{name} beyond quota created pods {[p.metadata.name for p in pods]} (last: {last})"
