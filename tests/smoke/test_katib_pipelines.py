"""Smoke: Katib tunes, Pipelines runs, and teams cannot read each other's namespaces.

The example Experiment of the katib layer (`example-random`, two random-search trials in the first
team's namespace) has succeeded with both trials and an optimal trial that reports the objective
metric; it is owned by Pulumi and left alone. A one-component hello-world pipeline (PipelineSpec IR
schema 2.1.0, written here by hand, busybox `echo`) is run through the Kubeflow Pipelines v2beta1
REST API with the spec inline, and its run reaches `SUCCEEDED`; the run is deleted afterwards. The
API server's authorizer lets a team's group read pods and Secrets in its own namespace and not in
another team's (and, with Katib, create Experiments only in its own).

Pipelines client work runs in-cluster: a Job in the pipelines namespace (the MLServer image of
versions.yaml, which has Python) calls the API service. It is labelled
`app.kubernetes.io/part-of: cnai-smoke` and deleted afterwards (the `jobs` fixture).

Over 300 lines: one story per component (Katib, Pipelines) from submission to result, with
the diagnostics a failed run on CI needs.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.smoke.helpers import client_job, client_result, conditions, unique_suffix, wait_job

pytestmark = pytest.mark.smoke

KATIB_GROUP, KATIB_VERSION = "kubeflow.org", "v1beta1"
KATIB_EXPERIMENT_LABEL = "katib.kubeflow.org/experiment"  # on the Trials of an Experiment
KATIB_TRIAL_LABEL = "katib.kubeflow.org/trial"  # on a trial's pods (set by Katib's webhook)
BUSYBOX = "registry.k8s.io/e2e-test-images/busybox:1.36.1-1"
RUN_MARKER = "CNAI-SMOKE-RUN "  # printed by the client as soon as the run exists
KFP_RUN_LABEL = "pipeline/runid"  # on the Argo Workflow of a run and on its pods
PIPELINE_NAME = "cnai-smoke-hello"
CREATE_SECONDS = 180  # how long the client retries creating the run while the API server is unreachable
CLEANUP_SECONDS = 180  # how long a best-effort cleanup Job may take after a failure

# ---------------------------------------------------------------------------------------------
# In-cluster Pipelines client (python -c SCRIPT MODE ENDPOINT)

# run: create a run with the inline spec, print its id, poll until it ends (or the deadline), print
# the result (the run is kept: the test reads its pods' logs). delete: delete the run (SMOKE_RUN_ID,
# else every run named SMOKE_NAME).
KFP_SCRIPT = '''
import json, os, sys, time, urllib.error, urllib.parse, urllib.request

mode, base = sys.argv[1], sys.argv[2].rstrip("/")
name = os.environ["SMOKE_NAME"]
TERMINAL = ("SUCCEEDED", "FAILED", "CANCELED", "SKIPPED")


def report(result, code=0):
    print("CNAI-SMOKE-RESULT " + json.dumps(result, default=str), flush=True)
    sys.exit(code)


def call(method, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(base + path, data=data, method=method,
                                 headers={"Content-Type": "application/json", "Accept": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as resp:
        text = resp.read().decode()
        return json.loads(text) if text.strip() else {}


def retrying(what, fn, seconds, ok_status=()):
    """fn() until it answers; retries connection errors and 5xx, gives up on other 4xx (None for ok_status)."""
    deadline, attempts = time.time() + seconds, 0
    while True:
        attempts += 1
        try:
            return fn()
        except urllib.error.HTTPError as exc:
            if exc.code in ok_status:
                return None
            error = f"HTTP {exc.code}: {exc.read()[:2000].decode(errors='replace')}"
            final = 400 <= exc.code < 500 and exc.code not in (408, 425, 429)
        except Exception as exc:
            error, final = f"{type(exc).__name__}: {exc}", False
        print(f"{what}: attempt {attempts}: {error}", file=sys.stderr, flush=True)
        if final or time.time() > deadline:
            raise RuntimeError(f"{what}: {error} (after {attempts} attempts)")
        time.sleep(5)


def delete(run_id):
    retrying(f"DELETE run {run_id}", lambda: call("DELETE", f"/apis/v2beta1/runs/{run_id}"), 120, ok_status=(404,))


if mode == "delete":
    ids = [os.environ["SMOKE_RUN_ID"]] if os.environ.get("SMOKE_RUN_ID") else []
    try:
        if not ids:
            flt = json.dumps({"predicates": [{"key": "display_name", "operation": "EQUALS", "string_value": name}]})
            query = urllib.parse.urlencode({"filter": flt, "page_size": 100})
            found = retrying("list runs", lambda: call("GET", f"/apis/v2beta1/runs?{query}"), 120)
            ids = [r["run_id"] for r in found.get("runs") or [] if r.get("display_name") == name]
        for run_id in ids:
            delete(run_id)
    except Exception as exc:
        report({"error": str(exc), "runs": ids}, 1)
    report({"deleted": ids})

run = {"display_name": name, "description": "cnai smoke test: hello-world pipeline",
       "pipeline_spec": json.loads(os.environ["SMOKE_PIPELINE_SPEC"]), "runtime_config": {"parameters": {}}}
try:
    created = retrying("POST /apis/v2beta1/runs", lambda: call("POST", "/apis/v2beta1/runs", run),
                       float(os.environ.get("SMOKE_CREATE_SECONDS", "180")))
except Exception as exc:
    report({"error": str(exc)}, 1)
run_id = created["run_id"]
print("CNAI-SMOKE-RUN " + run_id, flush=True)

deadline = time.time() + float(os.environ["SMOKE_RUN_SECONDS"])
got, state, error = created, created.get("state") or "", ""
while state not in TERMINAL and time.time() < deadline:
    time.sleep(5)
    try:
        got = call("GET", f"/apis/v2beta1/runs/{run_id}")
        state, error = got.get("state") or "", ""
    except Exception as exc:  # the API server restarting: keep polling until the deadline
        error = f"{type(exc).__name__}: {exc}"
        print(f"GET run {run_id}: {error}", file=sys.stderr, flush=True)

tasks = [{"name": t.get("display_name"), "state": t.get("state"), "pod": t.get("pod_name"),
          "error": (t.get("error") or {}).get("message")}
         for t in (got.get("run_details") or {}).get("task_details") or []]
report({"run_id": run_id, "state": state, "finished": state in TERMINAL, "error": got.get("error"),
        "poll_error": error, "tasks": tasks, "history": [h.get("state") for h in got.get("state_history") or []]})
'''


# ---------------------------------------------------------------------------------------------
# Helpers


# ---------------------------------------------------------------------------------------------
# Katib


def test_katib_experiment_completes(platform):
    """Katib tunes end to end: the example Experiment (random search over `lr`, a busybox trial that
    prints `loss=...` on stdout) succeeded with every trial, and its optimal trial carries the
    objective metric collected from the trial's output."""
    katib = platform.enabled_layer("katib")
    if not katib.options.example:
        pytest.skip(f"cnai:layers.katib.example is false in stack {platform.stack}: no example Experiment")
    ns = katib.first_team_namespace()
    if ns is None:
        pytest.skip(f"stack {platform.stack} has no teams (or the teams layer is off): "
                    f"no namespace for the example Experiment")
    from kubernetes.client.exceptions import ApiException

    from addons.katib import EXAMPLE

    want = next(o.manifest for o in katib.objects() if o.manifest["kind"] == "Experiment")["spec"]
    trials, metric = want["maxTrialCount"], want["objective"]["objectiveMetricName"]
    space = next(p for p in want["parameters"] if p["name"] == "lr")["feasibleSpace"]
    where = f"Experiment {ns}/{EXAMPLE}"

    def get() -> dict[str, Any]:
        return platform.custom.get_namespaced_custom_object(KATIB_GROUP, KATIB_VERSION, ns, "experiments", EXAMPLE,
                                                            _request_timeout=30)

    try:
        get()
    except ApiException as exc:
        if exc.status == 404:
            pytest.fail(f"{where} is missing", pytrace=False)
        raise

    def diagnose() -> str:
        out = [f"events for {EXAMPLE}:\n{platform.events(ns, EXAMPLE)}"]
        try:
            items = platform.custom.list_namespaced_custom_object(
                KATIB_GROUP, KATIB_VERSION, ns, "trials", label_selector=f"{KATIB_EXPERIMENT_LABEL}={EXAMPLE}",
                _request_timeout=20)["items"]
        except Exception as exc:  # noqa: BLE001 - diagnostics only
            items = []
            out.append(f"trials not listed: {getattr(exc, 'status', exc)}")
        for t in items:
            name = t["metadata"]["name"]
            conds = "; ".join(f"{c['type']}={c.get('status')} ({c.get('reason')}: {c.get('message')})"
                              for c in conditions(t).values())
            out.append(f"trial {name}: {conds or 'no conditions'}\n"
                       f"{platform.pods_report(ns, f'{KATIB_TRIAL_LABEL}={name}', 'training-container')}")
        out.append(f"katib-controller:\n"
                   f"{platform.pods_report(katib.namespace, 'katib.kubeflow.org/component=controller', tail=30)}")
        return "\n".join(out)

    holder: dict[str, Any] = {}

    def succeeded():
        exp = holder["exp"] = get()
        status = exp.get("status") or {}
        cond = conditions(exp)
        failed = cond.get("Failed") or {}
        if failed.get("status") == "True":
            pytest.fail(f"{where} failed ({failed.get('reason')}: {failed.get('message')}); trials succeeded "
                        f"{status.get('trialsSucceeded')}, failed {status.get('trialsFailed')}\n{diagnose()}",
                        pytrace=False)
        done = cond.get("Succeeded") or {}
        state = (f"trials {status.get('trials')}: succeeded {status.get('trialsSucceeded')}, running "
                 f"{status.get('trialsRunning')}, pending {status.get('trialsPending')}, failed "
                 f"{status.get('trialsFailed')}; conditions "
                 + ", ".join(f"{t}={c.get('status')} ({c.get('reason')})" for t, c in cond.items()))
        return done.get("status") == "True", state

    platform.wait_until(succeeded, f"{where} Succeeded", diagnose=diagnose)

    status = holder["exp"].get("status") or {}
    assert status.get("trialsSucceeded") == trials, (
        f"{where} succeeded with {status.get('trialsSucceeded')} trials succeeded, expected {trials} "
        f"(failed {status.get('trialsFailed')}, succeeded trials {status.get('succeededTrialList')})")
    optimal = status.get("currentOptimalTrial") or {}
    metrics = {m.get("name"): m for m in (optimal.get("observation") or {}).get("metrics") or []}
    assert metric in metrics, (
        f"{where}: optimal trial {optimal.get('bestTrialName')!r} has no metric {metric!r} "
        f"(metrics {sorted(k for k in metrics if k)}): the StdOut collector did not record the trial's output")
    value = metrics[metric].get("latest") or metrics[metric].get("min")
    try:
        loss = float(value)
    except (TypeError, ValueError):
        pytest.fail(f"{where}: optimal trial {optimal.get('bestTrialName')!r} metric {metric} is {value!r}, "
                    f"not a number ({metrics[metric]})", pytrace=False)
    assigned = {p.get("name"): p.get("value") for p in optimal.get("parameterAssignments") or []}
    lr = float(assigned.get("lr", "nan"))
    assert float(space["min"]) <= lr <= float(space["max"]), (
        f"{where}: optimal trial's lr {assigned.get('lr')!r} outside the search space {space}")
    # The trial prints loss = (lr - 0.05)^2 with six decimals: the metric must be that of its own lr.
    assert loss == pytest.approx((lr - 0.05) ** 2, abs=2e-6), (
        f"{where}: optimal trial reports {metric}={loss} for lr={lr}, expected {(lr - 0.05) ** 2:.6f}")


# ---------------------------------------------------------------------------------------------
# Pipelines


def _hello_pipeline(greeting: str) -> dict[str, Any]:
    """The smallest PipelineSpec (api/v2alpha1/pipeline_spec.proto, schema 2.1.0): one container task."""
    return {
        "schemaVersion": "2.1.0",
        "pipelineInfo": {"name": PIPELINE_NAME},
        "components": {"comp-hello": {"executorLabel": "exec-hello"}},
        "deploymentSpec": {"executors": {"exec-hello": {"container": {
            "image": BUSYBOX, "command": ["echo"], "args": [greeting]}}}},
        "root": {"dag": {"tasks": {"hello": {
            "taskInfo": {"name": "hello"},
            "componentRef": {"name": "comp-hello"},
            "cachingOptions": {"enableCache": False},  # really run it, every time
        }}}},
    }


def _client_job(name: str, image: str, uid: int, args: list[str], env: list[dict[str, Any]],
                deadline: float) -> dict[str, Any]:
    """The KFP API client as a Job, never retried: a second pod would create a second run."""
    return client_job(name, image, ["python", "-c", KFP_SCRIPT, *args], uid, env=env, cpu="50m", memory="128Mi",
                      memory_limit="512Mi", deadline=deadline, retries=0)


def _job_output(platform, namespace: str, job: str) -> str:
    """Logs of the Job's pods (running or finished), newest last."""
    try:
        pods = platform.core.list_namespaced_pod(namespace, label_selector=f"job-name={job}", _request_timeout=20).items
    except Exception:  # noqa: BLE001 - diagnostics and cleanup only
        return ""
    pods = sorted(pods, key=lambda p: str(p.metadata.creation_timestamp or ""))
    return "\n".join(platform.pod_logs(namespace, p.metadata.name, tail=500, container="main") for p in pods)


def _wait_job(platform, namespace: str, job: str, what: str, timeout: float, diagnose) -> str:
    """Wait until the Job finishes; its pod's output (fail at once if it failed)."""
    wait_job(platform, namespace, job, what, diagnose, timeout)
    return _job_output(platform, namespace, job)


def _run_id(output: str) -> str | None:
    ids = [line[len(RUN_MARKER):].strip() for line in output.splitlines() if line.startswith(RUN_MARKER)]
    return ids[-1] if ids else None


def _pipeline_output(platform, namespace: str, run_id: str) -> dict[str, str]:
    """Logs (every container but Argo's `wait`) of the run's pods, by pod name."""
    pods = platform.core.list_namespaced_pod(namespace, label_selector=f"{KFP_RUN_LABEL}={run_id}",
                                             _request_timeout=30).items
    return {p.metadata.name: "\n".join(platform.pod_logs(namespace, p.metadata.name, tail=500, container=c.name)
                                       for c in p.spec.containers if c.name != "wait") for p in pods}


def test_hello_world_pipeline_runs(platform, jobs):
    """A data scientist's pipeline runs: a one-step hello-world pipeline submitted inline to the v2beta1
    runs API reaches SUCCEEDED (its Argo Workflow ran the KFP driver and launcher), its step printed
    the greeting, and the run is deleted."""
    kfp = platform.enabled_layer("pipelines")
    from addons.kserve import MLSERVER_UID
    from modules.shared.versions import VERSIONS

    ns, endpoint = kfp.namespace, kfp.endpoint
    token = unique_suffix()
    run_name = f"{PIPELINE_NAME}-{token}"
    greeting = f"hello from cnai-smoke {token}"
    run_seconds = platform.timeout
    env = [{"name": "SMOKE_NAME", "value": run_name},
           {"name": "SMOKE_PIPELINE_SPEC", "value": json.dumps(_hello_pipeline(greeting))},
           {"name": "SMOKE_CREATE_SECONDS", "value": str(CREATE_SECONDS)},
           {"name": "SMOKE_RUN_SECONDS", "value": str(int(run_seconds))}]
    image = VERSIONS.images["mlserver"]
    what = f"pipeline run {run_name} through {endpoint}/apis/v2beta1/runs"
    job = jobs(ns, _client_job("kfp-run", image, MLSERVER_UID, ["run", endpoint], env,
                               CREATE_SECONDS + run_seconds + 300)).metadata.name
    holder: dict[str, Any] = {"run_id": None, "deleted": False}

    def run_report(rid: str | None) -> str:
        if not rid:
            return "no run id yet"
        try:
            wfs = platform.custom.list_namespaced_custom_object(
                "argoproj.io", "v1alpha1", ns, "workflows", label_selector=f"{KFP_RUN_LABEL}={rid}",
                _request_timeout=20)["items"]
            flows = "; ".join(f"Workflow {w['metadata']['name']}: phase {(w.get('status') or {}).get('phase')} "
                              f"({(w.get('status') or {}).get('message')})" for w in wfs) or "no Argo Workflow"
        except Exception as exc:  # noqa: BLE001 - diagnostics only
            flows = f"<workflows not listed: {getattr(exc, 'status', exc)}>"
        return f"{flows}\n{platform.pods_report(ns, f'{KFP_RUN_LABEL}={rid}', 'main', tail=40)}"

    def diagnose() -> str:
        out = _job_output(platform, ns, job)
        rid = _run_id(out)
        return (f"events for Job {job}:\n{platform.events(ns, job)}\nclient output:\n{out[-3000:] or '<none>'}\n"
                f"run {rid}: {run_report(rid)}\n"
                f"ml-pipeline:\n{platform.pods_report(ns, 'app=ml-pipeline', tail=20)}")

    def delete(timeout: float) -> dict[str, Any]:
        cleanup = [{"name": "SMOKE_NAME", "value": run_name}, {"name": "SMOKE_RUN_ID", "value": holder["run_id"] or ""}]
        name = jobs(ns, _client_job("kfp-delete", image, MLSERVER_UID, ["delete", endpoint], cleanup,
                                    timeout)).metadata.name
        doing = f"delete pipeline run {holder['run_id'] or run_name}"
        return client_result(_wait_job(platform, ns, name, doing, timeout + 60,
                                 lambda: f"client output:\n{_job_output(platform, ns, name)[-2000:]}"), doing)

    try:
        output = _wait_job(platform, ns, job, what, CREATE_SECONDS + run_seconds + 360, diagnose)
        holder["run_id"] = run_id = _run_id(output)
        r = client_result(output, what)
        run = f"run {r.get('run_id') or run_id} ({run_name})"
        if not r.get("run_id"):
            pytest.fail(f"{what}: not created: {r.get('error')}\n{diagnose()}", pytrace=False)
        state = r.get("state") or "<none>"
        if state != "SUCCEEDED":
            why = state if r.get("finished") else f"still {state} after {run_seconds:.0f}s"
            pytest.fail(f"{what}: {run} {why}; error {json.dumps(r.get('error'))}; tasks {r.get('tasks')}; "
                        f"state history {r.get('history')}; last poll error {r.get('poll_error') or 'none'}\n"
                        f"{run_report(run_id)}", pytrace=False)
        logs = _pipeline_output(platform, ns, run_id)
        # A line of its own: the drivers' and the launcher's logs quote the args, only `echo` prints them bare.
        assert any(line.strip() == greeting for text in logs.values() for line in text.splitlines()), (
            f"{what}: {run} SUCCEEDED but no pod of it printed {greeting!r}; pods {sorted(logs)}\n"
            f"{run_report(run_id)}")
        gone = delete(CLEANUP_SECONDS)
        holder["deleted"] = True
        assert run_id in (gone.get("deleted") or []), f"{what}: {run} not deleted: {gone}"
    finally:
        if not holder["deleted"]:  # best effort: do not leave the run (and its Workflow) behind
            holder["run_id"] = holder["run_id"] or _run_id(_job_output(platform, ns, job))
            try:
                delete(CLEANUP_SECONDS)
            except (Exception, pytest.fail.Exception):  # noqa: BLE001 - the test's own failure is the one to report
                pass


# ---------------------------------------------------------------------------------------------
# Team isolation


def test_team_cannot_read_another_team(platform):
    """The authorizer's answer: a team's group may get and list pods and Secrets in its own namespace
    and not in another team's; with Katib, it may create Experiments only in its own."""
    platform.enabled_layer("teams")
    members = platform.teams
    if len(members) < 2:
        pytest.skip(f"stack {platform.stack} declares {len(members)} team(s): isolation needs at least two")
    pairs = [(a, b) for a in members for b in members if a.rbac_group != b.rbac_group]
    if not pairs:
        pytest.skip(f"every team of stack {platform.stack} uses the same group: no other team to be kept out of")
    checks = [(verb, "", resource) for resource in ("pods", "secrets") for verb in ("get", "list")]
    if platform.layer("katib") is not None:
        checks.append(("create", KATIB_GROUP, "experiments"))
    problems = []
    for team in members:
        member = ("cnai-smoke-member", [team.rbac_group, "system:authenticated"])
        for verb, group, resource in checks:
            kind = f"{group}/{resource}" if group else resource
            if not platform.allowed(*member, team.namespace, verb, resource, group):
                problems.append(f"group {team.rbac_group} cannot {verb} {kind} in its own namespace {team.namespace}")
    for team, other in pairs:
        member = ("cnai-smoke-member", [team.rbac_group, "system:authenticated"])
        for verb, group, resource in checks:
            kind = f"{group}/{resource}" if group else resource
            if platform.allowed(*member, other.namespace, verb, resource, group):
                problems.append(f"group {team.rbac_group} (team {team.name}) can {verb} {kind} in "
                                f"{other.namespace} (team {other.name})")
    assert not problems, "; ".join(problems)
