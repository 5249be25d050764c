"""Smoke: the lakehouse and the data example, hop by hop (docs/data-example.md).

Polaris and Trino run, the realm bootstrap and the catalog setup Jobs completed; a team logs in to the catalog
with its Secret's credential and sees its own Iceberg namespace only. Then each hop of the example: the raw CSV in
the bucket, the RayJob that wrote the Iceberg table (admitted through the team's queue), Trino reading the table,
the training Job that logged to MLflow, and the InferenceService serving the model. Hops whose layer is off skip
with the reason. Client work runs in-cluster in pinned images; Jobs are deleted afterwards.

Over 300 lines: one end-to-end story whose steps build on each other, with their in-cluster clients.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.smoke.helpers import client_job, client_result, conditions, owned_workloads, run_job

pytestmark = pytest.mark.smoke

ROWS = 150  # the example's generated raw data
SETOSA = [5.0, 3.4, 1.5, 0.2]  # the example's setosa means

# Logs in as the team (its Secret's credential) and lists the catalog's namespaces; prints one result line.
_CATALOG_CLIENT = '''
import json, os, urllib.parse, urllib.request
uri = os.environ["LAKEHOUSE_CATALOG_URI"]
cid, secret = os.environ["LAKEHOUSE_CREDENTIAL"].split(":", 1)
form = urllib.parse.urlencode({"grant_type": "client_credentials", "client_id": cid, "client_secret": secret,
                               "scope": os.environ["LAKEHOUSE_SCOPE"]}).encode()
token = json.load(urllib.request.urlopen(urllib.request.Request(f"{uri}/v1/oauth/tokens", data=form), timeout=30))
req = urllib.request.Request(f"{uri}/v1/{os.environ['LAKEHOUSE_WAREHOUSE']}/namespaces",
                             headers={"Authorization": "Bearer " + token["access_token"]})
names = [".".join(n) for n in json.load(urllib.request.urlopen(req, timeout=30))["namespaces"]]
print("CNAI-SMOKE-RESULT " + json.dumps({"namespaces": names, "client": cid}), flush=True)
'''

# Reads the raw CSV back with pyarrow (the Ray image), as the team's client identity.
_RAW_CLIENT = '''
import json, os, sys
import pyarrow.csv as pacsv, pyarrow.fs as pafs
path, kind = sys.argv[1], sys.argv[2]
if kind == "gcs":
    fs = pafs.GcsFileSystem()
else:
    kw = {"region": os.environ.get("LAKEHOUSE_S3_REGION", "us-east-1")}
    endpoint = os.environ.get("LAKEHOUSE_S3_ENDPOINT", "")
    if endpoint:
        scheme, _, host = endpoint.partition("://")
        kw.update(endpoint_override=host, scheme=scheme, force_virtual_addressing=False)
    if os.environ.get("LAKEHOUSE_S3_ACCESS_KEY_ID"):
        kw.update(access_key=os.environ["LAKEHOUSE_S3_ACCESS_KEY_ID"],
                  secret_key=os.environ["LAKEHOUSE_S3_SECRET_ACCESS_KEY"])
    fs = pafs.S3FileSystem(**kw)
with fs.open_input_stream(path) as f:
    table = pacsv.read_csv(f)
print("CNAI-SMOKE-RESULT " + json.dumps({"rows": table.num_rows, "columns": table.column_names}), flush=True)
'''


@pytest.fixture(scope="module")
def lakehouse(platform):
    return platform.enabled_layer("lakehouse")


@pytest.fixture(scope="module")
def team(platform, lakehouse):
    if not platform.teams:
        pytest.skip(f"stack {platform.stack} has no teams: no team principal, no example")
    return platform.teams[0]


def _apps(platform):
    from kubernetes import client

    return client.AppsV1Api(platform.api)


def _deployment_ready(platform, ns: str, name: str) -> None:
    def ready():
        d = _apps(platform).read_namespaced_deployment(name, ns, _request_timeout=30)
        want = d.spec.replicas or 1
        return (d.status.available_replicas or 0) >= want, f"{d.status.available_replicas or 0}/{want} available"

    platform.wait_until(ready, f"Deployment {ns}/{name} available",
                        diagnose=lambda: platform.pods_report(ns, f"app.kubernetes.io/instance={name}"))


def _job_named(platform, ns: str, prefix: str) -> str:
    names = [j.metadata.name for j in platform.batch.list_namespaced_job(ns, _request_timeout=30).items
             if j.metadata.name.startswith(prefix)]
    assert names, f"no Job {prefix}* in {ns}"
    return sorted(names)[-1]


def _job_done(platform, ns: str, name: str, what: str) -> str:
    def done():
        j = platform.batch.read_namespaced_job(name, ns, _request_timeout=30)
        cond = {c.type: c for c in (j.status.conditions or []) if c.status == "True"}
        if "Failed" in cond:
            pytest.fail(f"{what}: Job {ns}/{name} failed: {cond['Failed'].message}\n"
                        f"{platform.pods_report(ns, f'job-name={name}', tail=80)}", pytrace=False)
        return "Complete" in cond, f"active={j.status.active} succeeded={j.status.succeeded}"

    platform.wait_until(done, what, interval=5, diagnose=lambda: platform.pods_report(ns, f"job-name={name}", tail=80))
    pods = platform.core.list_namespaced_pod(ns, label_selector=f"job-name={name}", _request_timeout=30).items
    ok = [p for p in pods if p.status.phase == "Succeeded"]
    return platform.pod_logs(ns, ok[-1].metadata.name, tail=200) if ok else ""


def _client_env(lakehouse) -> list[dict[str, Any]]:
    return [e for e in lakehouse.client_env() if not e["name"].startswith("PYICEBERG_")]


# -- the catalog and the engine ----------------------------------------------------------------------------

def test_polaris_and_trino_run(platform, lakehouse):
    _deployment_ready(platform, lakehouse.namespace, "polaris")
    _deployment_ready(platform, lakehouse.namespace, "trino-coordinator")


def test_the_realm_and_the_catalog_were_set_up(platform, lakehouse):
    ns = lakehouse.namespace
    _job_done(platform, ns, "polaris-bootstrap", "Polaris realm bootstrapped")
    logs = _job_done(platform, ns, _job_named(platform, ns, "lakehouse-setup-"), "lakehouse catalog set up")
    assert "lakehouse catalog ready" in logs, f"the setup Job completed without its last line:\n{logs[-2000:]}"


def test_a_team_sees_only_its_namespace(platform, lakehouse, team, jobs):
    from addons.lakehouse import team_schema
    from modules.shared.versions import VERSIONS

    what = f"team {team.name} lists the lake catalog's namespaces"
    job = client_job("lake-catalog", VERSIONS.images["python"], ["python", "-c", _CATALOG_CLIENT], 65534,
                     env=_client_env(lakehouse), deadline=300)
    r = client_result(run_job(platform, jobs, team.namespace, job, what), what)
    assert r["client"] == f"team-{team.name}"
    assert team_schema(team) in r["namespaces"], f"{what}: {r['namespaces']}"
    others = {team_schema(t) for t in platform.teams} - {team_schema(team)}
    assert not others & set(r["namespaces"]), f"{what}: the team sees other teams' namespaces {r['namespaces']}"


# -- the data example ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def example(platform, lakehouse, team):
    if not lakehouse.options.example:
        pytest.skip(f"cnai:layers.lakehouse.example is false in stack {platform.stack}")
    if platform.layer("ray") is None:
        pytest.skip(f"the ray layer is off in stack {platform.stack}: the example's first hops need it")
    return {"ns": team.namespace, "schema": __import__("addons.lakehouse", fromlist=["team_schema"]).team_schema(team)}


def _rayjob(platform, ns: str) -> dict[str, Any]:
    items = platform.custom.list_namespaced_custom_object("ray.io", "v1", ns, "rayjobs", _request_timeout=30)["items"]
    found = [r for r in items if r["metadata"]["name"].startswith("lakehouse-example-ingest-")]
    assert found, f"no RayJob lakehouse-example-ingest-* in {ns}"
    return found[-1]


def test_the_ray_job_writes_the_iceberg_table(platform, example):
    ns = example["ns"]

    def succeeded():
        status = _rayjob(platform, ns).get("status") or {}
        if status.get("jobStatus") == "FAILED" or status.get("jobDeploymentStatus") == "Failed":
            pytest.fail(f"RayJob failed: {status.get('message')}\n{platform.pods_report(ns, 'ray.io/node-type=head')}",
                        pytrace=False)
        return status.get("jobStatus") == "SUCCEEDED", f"jobStatus={status.get('jobStatus')} " \
            f"deployment={status.get('jobDeploymentStatus')} message={status.get('message')}"

    platform.wait_until(succeeded, f"RayJob in {ns} wrote the Iceberg table", interval=10,
                        diagnose=lambda: platform.events(ns))
    job = _rayjob(platform, ns)
    kueue = platform.layer("kueue")
    if kueue is not None:
        mine = owned_workloads(platform, ns, "RayJob", job["metadata"]["uid"])
        admitted = [((w.get("status") or {}).get("admission") or {}).get("clusterQueue") for w in mine]
        assert dict(kueue.queue_namespaces())[ns] in admitted, f"the RayJob's Workloads were admitted by {admitted}"
    submitters = platform.core.list_namespaced_pod(ns, label_selector=f"job-name={job['metadata']['name']}",
                                                   _request_timeout=30).items
    logs = "\n".join(platform.pod_logs(ns, p.metadata.name, tail=200) for p in submitters)
    assert f"CNAI-EXAMPLE table {example['schema']}.iris rows={ROWS}" in logs, logs[-3000:]


def test_raw_data_landed_in_the_bucket(platform, lakehouse, example, jobs):
    from modules.shared.versions import VERSIONS

    store = platform.layer("object-store")
    access = store.access("lakehouse-client") if store is not None else None
    if access is None:
        pytest.skip("no object-store layer to name the bucket")
    path = f"{access.buckets['lake']}/raw/iris/iris.csv"
    what = f"the raw CSV {path} read back as team {example['ns']}"
    job = client_job("lake-raw", VERSIONS.images["ray"], ["python", "-c", _RAW_CLIENT, path, access.kind], 1000,
                     env=_client_env(lakehouse), memory="512Mi", memory_limit="1Gi", deadline=600)
    job["spec"]["template"]["spec"]["serviceAccountName"] = lakehouse.client_service_account
    r = client_result(run_job(platform, jobs, example["ns"], job, what), what)
    assert r["rows"] == ROWS and "species" in r["columns"], r


def test_trino_reads_the_table(platform, lakehouse, example):
    ns = lakehouse.namespace
    pods = platform.core.list_namespaced_pod(ns, label_selector="app.kubernetes.io/component=coordinator",
                                             _request_timeout=30).items
    assert pods, f"no Trino coordinator pod in {ns}"
    table = f"lake.{example['schema']}.iris"

    def count():
        code, out = platform.exec(ns, pods[0].metadata.name, "trino-coordinator",
                                  ["trino", "--output-format", "TSV", "--execute", f"SELECT count(*) FROM {table}"])
        return code == 0 and out.strip().splitlines()[-1:] == [str(ROWS)], f"exit {code}: {out[-500:]}"

    platform.wait_until(count, f"Trino counts {ROWS} rows in {table}", interval=10)


def test_training_logged_to_mlflow(platform, example):
    if platform.layer("mlflow") is None:
        pytest.skip(f"the mlflow layer is off in stack {platform.stack}: no training hop")
    ns = example["ns"]
    logs = _job_done(platform, ns, _job_named(platform, ns, "lakehouse-example-train-"), "training from the lake")
    assert f"{ROWS} rows from lake.{example['schema']}.iris" in logs, logs[-3000:]


def test_the_model_serves_predictions(platform, example, jobs):
    kserve = platform.layer("kserve")
    if kserve is None or platform.layer("mlflow") is None:
        pytest.skip(f"kserve or mlflow is off in stack {platform.stack}: no serving hop")
    from modules.shared.versions import VERSIONS
    from tests.smoke.test_model_lifecycle import HTTP_POST_SCRIPT

    ns, name = example["ns"], "iris-lakehouse"

    def ready():
        isvc = platform.custom.get_namespaced_custom_object("serving.kserve.io", "v1beta1", ns, "inferenceservices",
                                                            name, _request_timeout=30)
        cond = conditions(isvc).get("Ready") or {}
        return cond.get("status") == "True", f"Ready={cond.get('status')} ({cond.get('message')})"

    platform.wait_until(ready, f"InferenceService {ns}/{name} Ready", interval=10, diagnose=lambda: platform.events(ns))
    url = f"http://{name}-predictor.{ns}.svc.cluster.local/v2/models/{name}/infer"
    body = {"parameters": {"content_type": "np"},
            "inputs": [{"name": "input-0", "shape": [1, 4], "datatype": "FP64", "data": SETOSA}]}
    what = f"v2 prediction from {url}"
    job = client_job("lake-infer", VERSIONS.images["mlserver"], ["python", "-c", HTTP_POST_SCRIPT, url,
                                                                 json.dumps(body), "180"], 1000, deadline=600)
    r = client_result(run_job(platform, jobs, ns, job, what), what)
    outputs = (r.get("response") or {}).get("outputs") or []
    assert outputs and outputs[0]["data"][0] == "setosa", f"{what}: {r}"
