"""Smoke: the model lifecycle works end to end, and its state survives restarts.

MLflow logs a run (metric and artifact) through the tracking server and the artifact lands in the
object store; the example InferenceService is Ready and answers a v2 prediction; Feast applies the
example repository, materializes it and serves online features; the ScheduledBackup's immediate
backup completes. Then the stateful pieces are restarted: a row written to PostgreSQL survives the
deletion of the primary pod, and an object written to the object store survives the deletion of the
SeaweedFS pods. The restart tests come last, so the others never run against a recovering store.

Client work runs in-cluster: Jobs with pinned images (the MLflow server image, which has mlflow and
boto3; the PostgreSQL image of versions.yaml for psql; the MLServer image for HTTP), and `feast`
itself through exec in the FeatureStore's `online` container. Everything created carries the label
`app.kubernetes.io/part-of: cnai-smoke`; Jobs are deleted afterwards (the `jobs` fixture), and the
scratch run, table and objects are removed by the tests.

Over 300 lines: the model lifecycle is one end-to-end story (buckets, database, MLflow, Feast,
serving, failover); its steps share fixtures and state.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from tests.smoke.helpers import (
    MARKER,
    client_job,
    client_result,
    conditions,
    pod_ready,
    pod_summary,
    run_job,
    unique_suffix,
)

pytestmark = pytest.mark.smoke

MLFLOW_IMAGE = "docker.io/burakince/mlflow:3.15.1"  # the MLflow server image: mlflow and boto3
MLFLOW_UID = 1001  # the image's `mlflow` user
POSTGRES_UID = 26  # the `postgres` user of the CloudNativePG images
IRIS_ROW = [5.1, 3.5, 1.4, 0.2]  # the first row of the iris data set: a setosa (class 0)
FEAST_DRIVER = 1001
FEAST_FEATURE = "driver_hourly_stats:conv_rate"
FEAST_TTL = timedelta(days=1)  # ttl of driver_hourly_stats in `feast init`'s example repository
CNPG_HEALTHY = "Cluster in healthy state"
CLEANUP_SECONDS = 180  # how long a best-effort cleanup Job may take after a failure

# ---------------------------------------------------------------------------------------------
# In-cluster client scripts (python -c SCRIPT args...)

_S3_CLIENT = '''
import json, os, sys, time
import boto3
from botocore.config import Config


def s3_client():
    return boto3.client(
        "s3", endpoint_url=os.environ["S3_ENDPOINT"], region_name=os.environ.get("AWS_REGION", "us-east-1"),
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 3, "mode": "standard"},
                      connect_timeout=10, read_timeout=60))


def report(result, code=0):
    print("CNAI-SMOKE-RESULT " + json.dumps(result, default=str), flush=True)
    sys.exit(code)
'''

# Log a run through the tracking server, read it back, find its artifact in the bucket, clean up.
MLFLOW_SCRIPT = '''
import tempfile
from urllib.parse import urlparse

import mlflow
from mlflow.tracking import MlflowClient

token, metric = os.environ["SMOKE_TOKEN"], float(os.environ["SMOKE_METRIC"])
name = f"cnai-smoke-{token}.txt"
result = {"token": token}
mlflow.set_experiment("cnai-smoke")
with tempfile.TemporaryDirectory() as tmp:
    with mlflow.start_run(run_name=f"cnai-smoke-{token}", tags={"app.kubernetes.io/part-of": "cnai-smoke"}) as run:
        mlflow.log_metric("smoke_metric", metric)
        path = os.path.join(tmp, name)
        with open(path, "w") as f:
            f.write(token)
        mlflow.log_artifact(path, artifact_path="smoke")
    run_id = run.info.run_id
    client = MlflowClient()
    got = client.get_run(run_id)
    result.update(run_id=run_id, experiment_id=got.info.experiment_id, status=got.info.status,
                  artifact_uri=got.info.artifact_uri, metric=got.data.metrics.get("smoke_metric"),
                  artifact=f"smoke/{name}")
    local = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=f"smoke/{name}",
                                                dst_path=os.path.join(tmp, "download"))
    with open(local) as f:
        result["downloaded"] = f.read()

s3 = None
if os.environ.get("AWS_ACCESS_KEY_ID"):
    s3, bucket = s3_client(), os.environ["S3_BUCKET"]
    prefix = urlparse(result["artifact_uri"]).path.strip("/")
    pages = s3.get_paginator("list_objects_v2")
    keys = [o["Key"] for page in pages.paginate(Bucket=bucket, Prefix=prefix + "/") for o in page.get("Contents", [])]
    if not keys:  # the server may store artifacts under a root of its own: look for the run anywhere
        keys = [o["Key"] for page in pages.paginate(Bucket=bucket) for o in page.get("Contents", [])
                if run_id in o["Key"]]
    result.update(bucket=bucket, prefix=prefix, keys=keys)
    found = [k for k in keys if k.endswith(f"/smoke/{name}")]
    if found:
        result["key"] = found[0]
        result["body"] = s3.get_object(Bucket=bucket, Key=found[0])["Body"].read().decode()

cleanup = []
try:
    from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository
    get_artifact_repository(result["artifact_uri"]).delete_artifacts()
    cleanup.append("artifacts deleted through the tracking server")
except Exception as exc:
    cleanup.append(f"artifacts not deleted through the server: {type(exc).__name__}: {exc}")
    if s3 is not None:
        for key in result.get("keys", []):
            s3.delete_object(Bucket=result["bucket"], Key=key)
        cleanup.append(f"deleted {len(result.get('keys', []))} keys from the bucket")
try:
    client.delete_run(run_id)
    cleanup.append("run deleted")
except Exception as exc:
    cleanup.append(f"run not deleted: {type(exc).__name__}: {exc}")
result["cleanup"] = cleanup
report(result)
'''

# put | get | delete one object (`get` then deletes it); retries while the store comes back.
S3_OBJECT_SCRIPT = '''
mode, bucket, key = sys.argv[1:4]
deadline = time.time() + float(os.environ.get("SMOKE_RETRY_SECONDS", "180"))
result = {"mode": mode, "bucket": bucket, "key": key, "attempts": 0}
s3 = s3_client()
while True:
    result["attempts"] += 1
    try:
        if mode == "put":
            s3.put_object(Bucket=bucket, Key=key, Body=os.environ["SMOKE_TOKEN"].encode())
        if mode in ("put", "get"):
            result["body"] = s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode()
        if mode == "delete":
            s3.delete_object(Bucket=bucket, Key=key)
            result["deleted"] = True
        result.pop("error", None)
        break
    except Exception as exc:
        result["error"] = f"{type(exc).__name__}: {exc}"
        print(f"attempt {result['attempts']}: {result['error']}", file=sys.stderr, flush=True)
        if time.time() > deadline:
            report(result, 0 if mode == "get" else 1)  # a failed read is the test's finding, not a crash
        time.sleep(5)
if mode == "get":
    try:
        s3.delete_object(Bucket=bucket, Key=key)
        result["deleted"] = True
    except Exception as exc:
        result["delete_error"] = f"{type(exc).__name__}: {exc}"
report(result)
'''

# POST a JSON body; retries connection errors and 5xx until the deadline (seconds, argv[3]).
HTTP_POST_SCRIPT = '''
import json, sys, time, urllib.error, urllib.request

url, body, seconds = sys.argv[1], sys.argv[2].encode(), float(sys.argv[3])
deadline, attempts, error = time.time() + seconds, 0, ""
while True:
    attempts += 1
    try:
        req = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=60) as resp:
            text = resp.read().decode()
            print("CNAI-SMOKE-RESULT " + json.dumps({"status": resp.status, "attempts": attempts,
                                                     "response": json.loads(text)}), flush=True)
            sys.exit(0)
    except urllib.error.HTTPError as exc:
        error = f"HTTP {exc.code}: {exc.read()[:2000].decode(errors='replace')}"
        final = 400 <= exc.code < 500 and exc.code not in (404, 408, 425, 429)
    except Exception as exc:
        error, final = f"{type(exc).__name__}: {exc}", False
    print(f"attempt {attempts}: {error}", file=sys.stderr, flush=True)
    if final or time.time() > deadline:
        print("CNAI-SMOKE-RESULT " + json.dumps({"error": error, "attempts": attempts, "url": url}), flush=True)
        sys.exit(1)
    time.sleep(5)
'''

# psql "$@" with the server's own psql; retries only "cannot connect" (exit 2); marks each output line.
PSQL_SCRIPT = '''
PSQL=$(ls /usr/lib/postgresql/*/bin/psql 2>/dev/null | tail -n 1)
PSQL=${PSQL:-psql}
n=0
while :; do
  out=$("$PSQL" -X -q -t -A -v ON_ERROR_STOP=1 "$@" 2>/tmp/psql.err); rc=$?
  [ "$rc" -ne 2 ] && break
  n=$((n + 1)); [ "$n" -ge 36 ] && break
  echo "psql: cannot connect yet: $(cat /tmp/psql.err)" >&2; sleep 5
done
cat /tmp/psql.err >&2
if [ "$rc" -ne 0 ]; then echo "psql failed (exit $rc)" >&2; exit "$rc"; fi
printf '%s\\n' "$out" | grep -v '^$' | sed 's/^/CNAI-SMOKE-RESULT /'
'''


# ---------------------------------------------------------------------------------------------
# Helpers


def _not_true(obj: dict[str, Any]) -> str:
    bad = [f"{t}={c.get('status')} ({c.get('reason')}: {c.get('message')})"
           for t, c in conditions(obj).items() if c.get("status") != "True"]
    return "; ".join(bad) or "none"


def _apps(platform):
    from kubernetes import client

    return client.AppsV1Api(platform.api)


def _owned_by_job(pod) -> bool:
    return any(o.kind == "Job" for o in pod.metadata.owner_references or [])


def _python_job(name: str, image: str, uid: int, script: str, args: list[str], env: list[dict[str, Any]],
                deadline: float, memory_limit: str = "1Gi") -> dict[str, Any]:
    return client_job(name, image, ["python", "-c", script, *args], uid, env=env, memory="256Mi",
                memory_limit=memory_limit, deadline=deadline)


def _secret_env(secret: str, mapping: dict[str, str]) -> list[dict[str, Any]]:
    """env var -> key of `secret`."""
    return [{"name": var, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}} for var, key in mapping.items()]


def _s3_env(access, secret: str) -> list[dict[str, Any]]:
    """A layer's S3 identity (keys from its Secret) against the in-cluster store."""
    return [*_secret_env(secret, {"AWS_ACCESS_KEY_ID": "AWS_ACCESS_KEY_ID",
                                  "AWS_SECRET_ACCESS_KEY": "AWS_SECRET_ACCESS_KEY"}),
            {"name": "S3_ENDPOINT", "value": access.endpoint},
            {"name": "AWS_REGION", "value": access.region},
            # S3-compatible stores may reject the checksums newer AWS SDKs send by default.
            {"name": "AWS_REQUEST_CHECKSUM_CALCULATION", "value": "when_required"},
            {"name": "AWS_RESPONSE_CHECKSUM_VALIDATION", "value": "when_required"}]


# ---------------------------------------------------------------------------------------------
# MLflow


def test_mlflow_run_artifact_in_object_store(platform, jobs):
    """A data scientist logs a run with a metric and an artifact through the tracking URI alone: the
    run reads back with its metric, the artifact downloads through the server, and it is stored in
    the `mlflow` bucket under the run's path (listed with MLflow's own S3 identity)."""
    mlflow = platform.enabled_layer("mlflow")
    from addons.mlflow import S3_SECRET

    store = platform.layer("object-store")
    access = store.access("mlflow") if store is not None else None
    check_bucket = access is not None and access.kind == "s3" and access.static_keys
    token, metric = unique_suffix(), 0.8125
    env = [{"name": "MLFLOW_TRACKING_URI", "value": mlflow.tracking_uri},
           {"name": "SMOKE_TOKEN", "value": token}, {"name": "SMOKE_METRIC", "value": str(metric)}]
    if mlflow.options.auth:
        env += _secret_env("mlflow-admin", {"MLFLOW_TRACKING_USERNAME": "username",
                                            "MLFLOW_TRACKING_PASSWORD": "password"})
    if check_bucket:
        env += [*_s3_env(access, S3_SECRET), {"name": "S3_BUCKET", "value": access.buckets["mlflow"]}]
    what = f"MLflow run logged through {mlflow.tracking_uri}"
    logs = run_job(platform, jobs, mlflow.namespace,
                    _python_job("mlflow-run", MLFLOW_IMAGE, MLFLOW_UID, _S3_CLIENT + MLFLOW_SCRIPT, [], env,
                                platform.timeout, memory_limit="1536Mi"), what)
    r = client_result(logs, what)
    run = f"run {r.get('run_id')} (experiment {r.get('experiment_id')})"
    assert r.get("status") == "FINISHED", f"{run} ended {r.get('status')}: {r}"
    assert r.get("metric") == pytest.approx(metric), (
        f"{run}: metric smoke_metric reads back {r.get('metric')}, logged {metric}")
    assert r.get("downloaded") == token, (
        f"{run}: artifact {r.get('artifact')} downloaded through the server holds {r.get('downloaded')!r}, "
        f"expected {token!r}")
    if not check_bucket:
        pytest.skip(f"{run} logged and read back through the tracking server; the bucket itself is listed only "
                    f"on the in-cluster object store (this stack's buckets are cloud buckets reached through "
                    f"workload identity)")
    assert r.get("key"), (
        f"{run}: artifact {r.get('artifact')} not found in bucket {r.get('bucket')} under {r.get('prefix')}/ "
        f"(artifact URI {r.get('artifact_uri')}); keys for the run: {r.get('keys')}")
    assert r.get("body") == token, (
        f"{run}: s3://{r.get('bucket')}/{r.get('key')} holds {r.get('body')!r}, expected {token!r}")


# ---------------------------------------------------------------------------------------------
# KServe


def test_example_inference_service_predicts(platform, jobs):
    """The example model trained and published by the platform is served: the InferenceService is
    Ready and answers a v2 (Open Inference Protocol) prediction for one iris flower."""
    kserve = platform.enabled_layer("kserve")
    if not kserve.options.example:
        pytest.skip(f"cnai:layers.kserve.example is false in stack {platform.stack}: no example model to query")
    from addons.kserve import EXAMPLE, EXAMPLE_NAMESPACE, MLSERVER_UID
    from modules.shared.versions import VERSIONS

    ns = EXAMPLE_NAMESPACE

    def diagnose() -> str:
        out = [f"events in {ns}:\n{platform.events(ns)}"]
        try:
            job = platform.batch.read_namespaced_job(f"{EXAMPLE}-train", ns, _request_timeout=20)
            out.append(f"Job {EXAMPLE}-train: succeeded={job.status.succeeded} failed={job.status.failed}\n"
                       f"{platform.pods_report(ns, f'job-name={EXAMPLE}-train')}")
        except Exception as exc:  # noqa: BLE001 - diagnostics only
            out.append(f"Job {EXAMPLE}-train not readable: {getattr(exc, 'status', exc)}")
        out.append(platform.pods_report(ns, f"serving.kserve.io/inferenceservice={EXAMPLE}", "kserve-container"))
        return "\n".join(out)

    def ready():
        isvc = platform.custom.get_namespaced_custom_object("serving.kserve.io", "v1beta1", ns, "inferenceservices",
                                                            EXAMPLE, _request_timeout=30)
        cond = conditions(isvc).get("Ready")
        return bool(cond and cond.get("status") == "True"), f"not True: {_not_true(isvc)}"

    platform.wait_until(ready, f"InferenceService {ns}/{EXAMPLE} Ready", diagnose=diagnose)

    url = kserve.outputs()["exampleUrl"]
    body = {"parameters": {"content_type": "np"},  # decode the tensor as a NumPy array, as the signature says
            "inputs": [{"name": "input-0", "shape": [1, 4], "datatype": "FP64", "data": IRIS_ROW}]}
    what = f"v2 prediction from {url}"
    job = _python_job("iris-infer", VERSIONS.images["mlserver"], MLSERVER_UID, HTTP_POST_SCRIPT,
                      [url, json.dumps(body), "180"], [], platform.timeout)
    r = client_result(run_job(platform, jobs, ns, job, what), what)
    resp = r.get("response") or {}
    outputs = resp.get("outputs") or []
    assert outputs and outputs[0].get("data"), f"{what}: no output in the response: {resp}"
    assert resp.get("model_name") in (None, EXAMPLE), f"{what}: answered by model {resp.get('model_name')}: {resp}"
    predicted = outputs[0]["data"][0]
    assert predicted in (0, "0", "setosa"), (
        f"{what}: iris row {IRIS_ROW} (a setosa, class 0) predicted {predicted}: {resp}")


# ---------------------------------------------------------------------------------------------
# Feast


def _online_value(result: dict[str, Any]) -> tuple[Any, str]:
    """(value of FEAST_FEATURE for the driver, status) from a /get-online-features response."""
    resp = result.get("response") or {}
    names = (resp.get("metadata") or {}).get("feature_names") or []
    feature = FEAST_FEATURE.split(":", 1)[1]
    idx = next((i for i, n in enumerate(names) if n == feature or n.endswith(f"__{feature}")), None)
    if idx is None or idx >= len(resp.get("results") or []):
        return None, f"feature {feature} not in the response (feature_names {names})"
    col = resp["results"][idx]
    values, statuses = col.get("values") or [None], col.get("statuses") or ["?"]
    return values[0], statuses[0]


def _feast_server_pod(platform, feast) -> Any:
    """The newest Ready pod of the FeatureStore's servers, once the FeatureStore is Ready."""
    from addons.feast import API, STORE

    ns = feast.namespace
    group, version = API.split("/")
    deployment = f"feast-{STORE}"

    def diagnose() -> str:
        return f"events in {ns}:\n{platform.events(ns)}"

    def store_ready():
        fs = platform.custom.get_namespaced_custom_object(group, version, ns, "featurestores", STORE,
                                                          _request_timeout=30)
        phase = (fs.get("status") or {}).get("phase")
        return phase == "Ready", f"phase {phase!r}; conditions not True: {_not_true(fs)}"

    platform.wait_until(store_ready, f"FeatureStore {ns}/{STORE} Ready", diagnose=diagnose)

    apps = _apps(platform)
    holder: dict[str, Any] = {}

    def pod_ready():
        dep = apps.read_namespaced_deployment(deployment, ns, _request_timeout=30)
        selector = ",".join(f"{k}={v}" for k, v in (dep.spec.selector.match_labels or {}).items())
        pods = platform.core.list_namespaced_pod(ns, label_selector=selector, _request_timeout=30).items
        ready = sorted((p for p in pods if pod_ready(p)), key=lambda p: p.status.start_time)
        if not ready:
            return False, f"no Ready pod of {deployment}: {[pod_summary(p) for p in pods] or 'none'}"
        holder["pod"] = ready[-1]
        return True, ready[-1].metadata.name

    platform.wait_until(pod_ready, f"a Ready pod of Deployment {ns}/{deployment}", diagnose=diagnose)
    return holder["pod"]


def test_feast_materialize_and_serve_online(platform):
    """Features flow from the offline source to online serving: the FeatureStore is Ready, `feast
    apply` registers the example repository, `feast materialize-incremental` loads it into the online
    store, and the online server returns a value for driver 1001."""
    feast = platform.enabled_layer("feast")
    ns = feast.namespace
    pod = _feast_server_pod(platform, feast)
    name = pod.metadata.name
    step_timeout = min(platform.timeout, 600)

    def feast_cli(*args: str) -> str:
        code, out = platform.exec(ns, name, "online", ["feast", *args], timeout=step_timeout)
        if code != 0:
            state = f"still running after {step_timeout:.0f}s" if code is None else f"exit {code}"
            pytest.fail(f"`feast {' '.join(args)}` in {ns}/{name} (container online): {state}\n{out[-4000:]}\n"
                        f"server logs:\n{platform.pod_logs(ns, name, container='online')}", pytrace=False)
        return out

    def online() -> tuple[Any, str, dict[str, Any]]:
        url = f"{feast.outputs()['onlineUrl']}/get-online-features"
        body = {"features": [FEAST_FEATURE], "entities": {"driver_id": [FEAST_DRIVER]}}
        retry = str(max(30, min(150, int(step_timeout) - 30)))  # the registry cache (60 s) may lag `feast apply`
        code, out = platform.exec(ns, name, "online",
                                  ["python3", "-c", HTTP_POST_SCRIPT, url, json.dumps(body),
                                   retry], timeout=step_timeout)
        what = f"POST {url}"
        if code != 0:
            pytest.fail(f"{what} (from {ns}/{name}): exit {code}\n{out[-3000:]}\n"
                        f"server logs:\n{platform.pod_logs(ns, name, container='online')}", pytrace=False)
        r = client_result(out, what)
        value, status = _online_value(r)
        return value, status, r

    feast_cli("apply")
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    feast_cli("materialize-incremental", now.strftime("%Y-%m-%dT%H:%M:%S"))
    value, status, r = online()
    started = pod.status.start_time
    if value is None and started is not None and datetime.now(timezone.utc) - started > FEAST_TTL:
        # `feast init` generates the example data (15 days up to the pod's start) when the pod starts; a
        # first incremental run only looks back one ttl, which an older pod's data lies before.
        first = started.astimezone(timezone.utc).replace(tzinfo=None) - timedelta(days=16)
        feast_cli("materialize", first.strftime("%Y-%m-%dT%H:%M:%S"), now.strftime("%Y-%m-%dT%H:%M:%S"))
        value, status, r = online()
    assert value is not None, (
        f"online feature {FEAST_FEATURE} for driver_id {FEAST_DRIVER} is null (status {status}) after "
        f"materialization: {json.dumps(r.get('response'))[:2000]}")
    assert status in ("PRESENT", "?"), f"online feature {FEAST_FEATURE} for driver {FEAST_DRIVER}: status {status}"


# Run in the feature server's repository directory: copy the example data into the feast bucket,
# register a feature view whose source is that object, and read it back through the offline store.
FEAST_BUCKET_SCRIPT = """
import sys
from datetime import datetime, timedelta, timezone
import fsspec, pandas as pd
from feast import FeatureStore, FeatureView, Field, FileSource
from feast.types import Float32
bucket, endpoint = sys.argv[1], sys.argv[2] or None
url = bucket + "/smoke/driver_stats.parquet"
with open("data/driver_stats.parquet", "rb") as src, fsspec.open(url, "wb") as dst:
    dst.write(src.read())
store = FeatureStore(repo_path=".")
source = FileSource(name="smoke_driver_stats_bucket", path=url, timestamp_field="event_timestamp",
                    created_timestamp_column="created", s3_endpoint_override=endpoint)
view = FeatureView(name="smoke_driver_stats_bucket", entities=[store.get_entity("driver")], ttl=timedelta(days=30),
                   schema=[Field(name="conv_rate", dtype=Float32)], source=source)
store.apply([source, view])
entities = pd.DataFrame({"driver_id": [1001], "event_timestamp": [datetime.now(timezone.utc)]})
df = store.get_historical_features(entities, ["smoke_driver_stats_bucket:conv_rate"]).to_df()
value = df["conv_rate"].iloc[0]
print("conv_rate", value)
sys.exit(0 if pd.notna(value) else 3)
"""


def test_feast_offline_store_reads_the_bucket(platform):
    """With the s3fs/gcsfs image (cnai:layers.feast.image), the offline store reads a source in the
    feast bucket through the platform's credentials (generated keys on kind, workload identity on
    the clouds)."""
    feast = platform.enabled_layer("feast")
    if not feast.options.image:
        pytest.skip("cnai:layers.feast.image is not set: the upstream feature server has no s3fs/gcsfs "
                    "(build one with `make image-feast`)")
    ns = feast.namespace
    pod = _feast_server_pod(platform, feast)
    outputs = feast.outputs()
    args = [outputs["offlineBucket"], outputs.get("fileSourceS3EndpointOverride", "")]
    code, out = platform.exec(ns, pod.metadata.name, "offline", ["python3", "-c", FEAST_BUCKET_SCRIPT, *args],
                              timeout=min(platform.timeout, 600))
    assert code == 0, (f"offline read of {args[0]}/smoke/driver_stats.parquet from {ns}/{pod.metadata.name}: "
                       f"exit {code}\n{out[-4000:]}")
    assert "conv_rate" in out


# ---------------------------------------------------------------------------------------------
# PostgreSQL backups


def test_postgres_backup_completes(platform):
    """Backups really happen: the base backup the ScheduledBackup takes at once (`immediate: true`)
    reaches phase `completed` in the object store."""
    pg = platform.enabled_layer("postgres")
    if not pg.options.backups:
        pytest.skip(f"cnai:layers.postgres.backups is false in stack {platform.stack}")
    from kubernetes.client.exceptions import ApiException

    from addons.postgres import API, BACKUP_STORE, CLUSTER

    ns = pg.namespace
    group, version = API.split("/")
    scheduled = f"{CLUSTER}-daily"
    try:
        platform.custom.get_namespaced_custom_object(group, version, ns, "scheduledbackups", scheduled,
                                                     _request_timeout=30)
    except ApiException as exc:
        if exc.status == 404:
            pytest.fail(f"ScheduledBackup {ns}/{scheduled} is missing", pytrace=False)
        raise

    def diagnose() -> str:
        try:
            store = platform.custom.get_namespaced_custom_object("barmancloud.cnpg.io", "v1", ns, "objectstores",
                                                                 BACKUP_STORE, _request_timeout=20)
            store_state = json.dumps(store.get("status") or {})[:1500]
        except Exception as exc:  # noqa: BLE001 - diagnostics only
            store_state = f"<not readable: {getattr(exc, 'status', exc)}>"
        return (f"ObjectStore {BACKUP_STORE} status: {store_state}\nevents for {scheduled}:\n"
                f"{platform.events(ns, scheduled)}\nrecent events in {ns}:\n{platform.events(ns, limit=20)}")

    def completed():
        items = platform.custom.list_namespaced_custom_object(group, version, ns, "backups",
                                                              _request_timeout=30)["items"]
        mine = [b for b in items if ((b.get("spec") or {}).get("cluster") or {}).get("name") == CLUSTER]
        if not mine:
            return False, f"no Backup of cluster {CLUSTER} yet"
        phases = {b["metadata"]["name"]: (b.get("status") or {}).get("phase") or "new" for b in mine}
        done = [n for n, p in phases.items() if p == "completed"]
        if done:
            return True, f"completed: {done}"
        if all(p == "failed" for p in phases.values()):
            errors = {b["metadata"]["name"]: (b.get("status") or {}).get("error") for b in mine}
            pytest.fail(f"every Backup of cluster {CLUSTER} failed: {errors}\n{diagnose()}", pytrace=False)
        return False, f"backups: {phases}"

    platform.wait_until(completed, f"a completed Backup of {ns}/{CLUSTER} (ScheduledBackup {scheduled}, immediate)",
                        diagnose=diagnose)


# ---------------------------------------------------------------------------------------------
# Restarts: PostgreSQL, then the object store


def _psql_job(pg, database: str, secret: str, sql: list[str], name: str, deadline: float) -> dict[str, Any]:
    from modules.shared.versions import VERSIONS

    args = [a for statement in sql for a in ("-c", statement)]
    env = [{"name": "PGHOST", "value": pg.host}, {"name": "PGPORT", "value": str(pg.port)},
           {"name": "PGDATABASE", "value": database}, {"name": "PGCONNECT_TIMEOUT", "value": "10"},
           {"name": "PGAPPNAME", "value": "cnai-smoke"},
           *_secret_env(secret, {"PGUSER": "username", "PGPASSWORD": "password"})]
    return client_job(name, VERSIONS.images["postgresql"], ["sh", "-c", PSQL_SCRIPT, "psql", *args], POSTGRES_UID,
                env=env, cpu="50m", memory="64Mi", memory_limit="256Mi", deadline=deadline)


def test_postgres_survives_primary_restart(platform, jobs):
    """Committed data is durable: a row written through `platform-db-rw` is still there after the
    primary's pod is deleted and the cluster recovers (restart or failover)."""
    pg = platform.enabled_layer("postgres")
    from addons.postgres import API, CLUSTER

    dbs = pg.database_names()
    if not dbs:
        pytest.skip(f"no enabled layer declares a PostgreSQL database in stack {platform.stack}")
    db = "mlflow" if "mlflow" in dbs else dbs[0]
    ns, secret = pg.namespace, f"{CLUSTER}-{db}"
    group, version = API.split("/")
    token = unique_suffix()
    table = f"cnai_smoke_{token}"
    row = (f"SELECT json_build_object('token', token, 'written_at', written_at, 'primary', "
           f"NOT pg_is_in_recovery())::text FROM {table}")
    dropped = False

    def psql(name: str, sql: list[str], what: str, timeout: float | None = None) -> list[Any]:
        out = run_job(platform, jobs, ns, _psql_job(pg, db, secret, sql, name, platform.timeout), what, timeout)
        return [json.loads(line[len(MARKER):]) for line in out.splitlines() if line.startswith(MARKER)]

    try:
        written = psql("pg-write", [
            f"CREATE TABLE IF NOT EXISTS {table} "
            "(token text PRIMARY KEY, written_at timestamptz NOT NULL DEFAULT now())",
            f"INSERT INTO {table} (token) VALUES ('{token}') ON CONFLICT DO NOTHING",
            row], f"write a row into {db}.{table} as role {db}")
        assert [w.get("token") for w in written] == [token], f"row written to {db}.{table} reads back as {written}"

        selector = f"cnpg.io/cluster={CLUSTER},cnpg.io/instanceRole=primary"
        primaries = [p for p in platform.core.list_namespaced_pod(ns, label_selector=selector,
                                                                  _request_timeout=30).items
                     if p.metadata.deletion_timestamp is None]
        assert len(primaries) == 1, (
            f"expected one primary pod ({selector}) in {ns}, found {[p.metadata.name for p in primaries]}")
        old = primaries[0]
        platform.core.delete_namespaced_pod(old.metadata.name, ns, _request_timeout=30)

        def recovered():
            cluster = platform.custom.get_namespaced_custom_object(group, version, ns, "clusters", CLUSTER,
                                                                   _request_timeout=30)
            status = cluster.get("status") or {}
            pods = platform.core.list_namespaced_pod(ns, label_selector=selector, _request_timeout=30).items
            fresh = [p.metadata.name for p in pods if p.metadata.uid != old.metadata.uid and pod_ready(p)]
            ready = conditions(cluster).get("Ready") or {}
            want = (cluster.get("spec") or {}).get("instances")
            healthy = (status.get("phase") == CNPG_HEALTHY and status.get("readyInstances") == want
                       and ready.get("status") == "True")
            return bool(fresh) and healthy, (
                f"phase {status.get('phase')!r} ({status.get('phaseReason')}), readyInstances "
                f"{status.get('readyInstances')}/{want}, Ready={ready.get('status')}, currentPrimary "
                f"{status.get('currentPrimary')}, new Ready primary pod: {fresh or 'none yet'}")

        platform.wait_until(recovered, f"cluster {ns}/{CLUSTER} healthy with a new primary after deleting pod "
                            f"{old.metadata.name}", diagnose=lambda: (
                                f"recent events in {ns}:\n{platform.events(ns, limit=20)}\n"
                                f"{platform.pods_report(ns, f'cnpg.io/cluster={CLUSTER}', 'postgres')}"))

        read = psql("pg-read", [row, f"DROP TABLE IF EXISTS {table}"],
                    f"read the row back from {db}.{table} after the restart")
        dropped = True
        assert [r.get("token") for r in read] == [token], (
            f"row {token!r} written to {db}.{table} before deleting primary pod {old.metadata.name} reads back "
            f"as {read}: data lost")
        assert read[0].get("primary") is True, f"the read after the restart was not served by a primary: {read}"
    finally:
        if not dropped:  # best effort: do not leave the scratch table behind
            try:
                psql("pg-cleanup", [f"DROP TABLE IF EXISTS {table}"], f"drop {db}.{table}", CLEANUP_SECONDS)
            except (Exception, pytest.fail.Exception):  # noqa: BLE001 - the test's own failure is the one to report
                pass


def _s3_identity(platform):
    """(layer, namespace, Secret, Access, bucket) of a layer's read-write identity on the in-cluster store."""
    store = platform.enabled_layer("object-store")
    if not store.in_cluster:
        pytest.skip(f"stack {platform.stack} uses cloud buckets: no in-cluster object store to restart")
    from addons.feast import ENV_SECRET
    from addons.mlflow import S3_SECRET

    for name, secret in (("mlflow", S3_SECRET), ("feast", ENV_SECRET)):
        layer = platform.layer(name)
        if layer is None:
            continue
        bucket = next((b for b, mode in layer.buckets.items() if mode == "rw"), None)
        if bucket is not None:
            access = store.access(name)
            return name, layer.namespace, secret, access, access.buckets[bucket]
    pytest.skip("neither mlflow nor feast is enabled: no layer identity to write an object with")


def test_object_store_survives_restart(platform, jobs):
    """Stored objects are durable: an object written with a layer's S3 identity is still readable
    after every SeaweedFS pod is deleted and the store comes back."""
    layer, ns, secret, access, bucket = _s3_identity(platform)
    store = platform.layer("object-store")
    from addons.object_store import RELEASE

    token = unique_suffix()
    key = f"cnai-smoke/{token}.txt"
    env = [*_s3_env(access, secret), {"name": "SMOKE_TOKEN", "value": token}]
    where = f"s3://{bucket}/{key} (identity of layer {layer}, endpoint {access.endpoint})"

    def s3(mode: str, name: str, what: str, timeout: float | None = None) -> dict[str, Any]:
        job = _python_job(name, MLFLOW_IMAGE, MLFLOW_UID, _S3_CLIENT + S3_OBJECT_SCRIPT, [mode, bucket, key],
                          env, platform.timeout)
        return client_result(run_job(platform, jobs, ns, job, what, timeout), what)

    removed = False
    try:
        put = s3("put", "s3-put", f"put {where}")
        assert put.get("body") == token, (f"{where} reads back {put.get('body')!r} right after the put, "
                                          f"expected {token!r}")

        sns = store.namespace
        selector = f"app.kubernetes.io/name=seaweedfs,app.kubernetes.io/instance={RELEASE}"

        def store_pods():
            pods = platform.core.list_namespaced_pod(sns, label_selector=selector, _request_timeout=30).items
            return [p for p in pods if not _owned_by_job(p)]

        old = [p for p in store_pods() if p.metadata.deletion_timestamp is None]
        assert old, f"no SeaweedFS pods ({selector}) in namespace {sns}"
        old_uids = {p.metadata.uid for p in old}
        for p in old:
            platform.core.delete_namespaced_pod(p.metadata.name, sns, _request_timeout=30)

        def back():
            pods = store_pods()
            lingering = [p.metadata.name for p in pods if p.metadata.uid in old_uids]
            new = [p for p in pods if p.metadata.uid not in old_uids]
            not_ready = [pod_summary(p) for p in new if not pod_ready(p)]
            done = not lingering and len(new) >= len(old) and not not_ready
            return done, (f"{len(new)}/{len(old)} new pods, not Ready: {not_ready or 'none'}, "
                          f"old pods still present: {lingering or 'none'}")

        platform.wait_until(back,
                            f"SeaweedFS pods in {sns} Ready again after deleting {[p.metadata.name for p in old]}",
                            diagnose=lambda: (f"recent events in {sns}:\n{platform.events(sns, limit=20)}\n"
                                              f"{platform.pods_report(sns, selector)}"))

        got = s3("get", "s3-get", f"read {where} after the restart")
        removed = bool(got.get("deleted"))
        assert got.get("body") == token, (
            f"{where} written before the SeaweedFS pods were deleted reads back {got.get('body')!r} "
            f"(last error: {got.get('error')}), expected {token!r}: data lost")
    finally:
        if not removed:  # best effort: do not leave the scratch object behind
            try:
                s3("delete", "s3-cleanup", f"delete {where}", CLEANUP_SECONDS)
            except (Exception, pytest.fail.Exception):  # noqa: BLE001 - the test's own failure is the one to report
                pass
