"""Small helpers the smoke tests share (conditions, pod states, names, client Jobs); cluster-bound
ones are methods of `conftest.Platform`."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

SMOKE_LABEL = {"app.kubernetes.io/part-of": "cnai-smoke"}  # on every object the smoke tests create
MARKER = "CNAI-SMOKE-RESULT "  # prefix of the one JSON line each in-cluster client prints


def conditions(obj: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """A custom object's status conditions by type."""
    return {c["type"]: c for c in (obj.get("status") or {}).get("conditions") or []}


def describe(cond: dict[str, Any] | None) -> str:
    """`status (reason: message)` of one condition, for failure messages."""
    return f"{cond['status']} ({cond.get('reason')}: {cond.get('message')})" if cond else "None"


def owned_workloads(platform, namespace: str, kind: str, uid: str) -> list[dict[str, Any]]:
    """The Kueue Workloads in `namespace` that the object of `kind` with `uid` owns (oldest first)."""
    from addons.kueue import API

    group, version = API.split("/")
    items = platform.custom.list_namespaced_custom_object(group, version, namespace, "workloads",
                                                          _request_timeout=30)["items"]
    return [w for w in items if any(o.get("kind") == kind and o.get("uid") == uid
                                    for o in w["metadata"].get("ownerReferences") or [])]


def pod_summary(pod) -> str:
    """`name (phase, container: waiting reason, ...)` for failure messages."""
    waiting = [f"{cs.name}: {cs.state.waiting.reason}" for cs in (pod.status.init_container_statuses or [])
               + (pod.status.container_statuses or []) if cs.state and cs.state.waiting]
    return f"{pod.metadata.name} ({pod.status.phase}{', ' + ', '.join(waiting) if waiting else ''})"


def pod_ready(pod) -> bool:
    if pod.metadata.deletion_timestamp is not None or pod.status.phase != "Running":
        return False
    return any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])


def unique_suffix() -> str:
    """A short random suffix for names of objects a test creates."""
    return uuid.uuid4().hex[:12]


def client_job(name: str, image: str, command: list[str], uid: int, env: list[dict[str, Any]] | None = None,
               cpu: str = "100m", memory: str = "256Mi", memory_limit: str = "1Gi", deadline: float = 600,
               retries: int = 1) -> dict[str, Any]:
    """A client Job in a pinned image that passes the restricted Pod Security level, /tmp writable.
    `retries: 0` for clients that must not run twice (a second pod would repeat a side effect)."""
    return {
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"generateName": f"smoke-{name}-", "labels": dict(SMOKE_LABEL)},
        "spec": {
            "backoffLimit": retries,
            "activeDeadlineSeconds": int(deadline),
            "ttlSecondsAfterFinished": 600,
            "template": {
                "metadata": {"labels": dict(SMOKE_LABEL)},
                "spec": {
                    "restartPolicy": "Never",
                    "terminationGracePeriodSeconds": 1,
                    "securityContext": {"runAsNonRoot": True, "runAsUser": uid, "runAsGroup": uid,
                                        "seccompProfile": {"type": "RuntimeDefault"}},
                    "containers": [{
                        "name": "main", "image": image, "imagePullPolicy": "IfNotPresent",
                        "command": command,
                        "env": [{"name": "HOME", "value": "/tmp"}, *(env or [])],
                        "resources": {"requests": {"cpu": cpu, "memory": memory}, "limits": {"memory": memory_limit}},
                        "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
                        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
                    }],
                    "volumes": [{"name": "tmp", "emptyDir": {}}],
                },
            },
        },
    }


def client_result(output: str, what: str) -> Any:
    """The last MARKER line of a client's output, parsed as JSON."""
    lines = [line[len(MARKER):] for line in output.splitlines() if line.startswith(MARKER)]
    assert lines, f"{what}: no result line in the client's output:\n{output[-3000:]}"
    try:
        return json.loads(lines[-1])
    except ValueError:
        pytest.fail(f"{what}: result is not JSON: {lines[-1][:1000]}", pytrace=False)


def run_job(platform, jobs, namespace: str, manifest: dict[str, Any], what: str,
            timeout: float | None = None) -> str:
    """Create the Job, wait until it completes (fail at once if it fails), return its successful pod's logs."""
    job = jobs(namespace, manifest)
    name = job.metadata.name

    def diagnose() -> str:
        return (f"events for Job {name}:\n{platform.events(namespace, name)}\n"
                f"{platform.pods_report(namespace, f'job-name={name}', tail=60)}")

    wait_job(platform, namespace, name, what, diagnose, timeout)
    pods = platform.core.list_namespaced_pod(namespace, label_selector=f"job-name={name}", _request_timeout=30).items
    done = [p for p in pods if p.status.phase == "Succeeded"]
    assert done, f"{what}: Job {namespace}/{name} completed but no Succeeded pod is left to read"
    return platform.pod_logs(namespace, done[-1].metadata.name, tail=500)


def wait_job(platform, namespace: str, name: str, what: str, diagnose, timeout: float | None = None) -> None:
    """Wait until the Job completes; fail at once, with `diagnose()`, if it fails."""

    def finished():
        j = platform.batch.read_namespaced_job(name, namespace, _request_timeout=30)
        cond = {c.type: c for c in (j.status.conditions or []) if c.status == "True"}
        if "Failed" in cond:
            pytest.fail(f"{what}: Job {namespace}/{name} failed ({cond['Failed'].reason}: {cond['Failed'].message})\n"
                        f"{diagnose()}", pytrace=False)
        return "Complete" in cond, f"active={j.status.active} succeeded={j.status.succeeded} failed={j.status.failed}"

    platform.wait_until(finished, f"{what} (Job {namespace}/{name})", timeout=timeout, interval=3,
                        diagnose=diagnose)
