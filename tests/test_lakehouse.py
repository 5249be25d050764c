"""The lakehouse layer: Polaris on the platform's PostgreSQL with a bootstrapped realm, a catalog in the `lake`
bucket, a principal per team limited to its own Iceberg namespace, Trino's catalog, the team namespaces'
client Secret and ServiceAccount, and identities per environment. The catalog setup script runs here against
a fake Polaris that keeps state and answers like the management API (409 on what exists).

Over 300 lines: the fake Polaris is most of it, and it belongs next to the tests that drive it."""

from __future__ import annotations

import json
import runpy
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs

import pytest
import yaml

from tests.conftest import evaluate, secret_data, values_of
from tests.test_schemas import validate_object
from tools.harness import normalize

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "addons" / "assets" / "lakehouse-setup.py"


def with_lakehouse(stack: str, extra: dict | None = None, **layers) -> dict:
    config = yaml.safe_load((ROOT / "stacks" / f"Pulumi.{stack}.yaml").read_text())["config"]
    merged = dict(config.get("cnai:layers") or {})
    merged["lakehouse"] = {"enabled": True, **layers}
    return {"cnai:layers": merged, **(extra or {})}


def lake(stack: str = "kind", extra: dict | None = None, **layers):
    return evaluate(stack, with_lakehouse(stack, extra, **layers))


def by(rec, kind: str, namespace: str | None = None) -> dict[str, dict]:
    return {o["metadata"]["name"]: normalize(o, reveal=True) for o in rec.objects()
            if o["kind"] == kind and (namespace is None or o["metadata"].get("namespace") == namespace)}


def test_polaris_keeps_its_catalog_in_postgres_with_a_shared_token_key():
    rec = lake()
    v = values_of(rec, "polaris")
    assert v["persistence"] == {"type": "relational-jdbc", "relationalJdbc": {"secret": {"name": "polaris-db"}}}
    assert v["authentication"]["tokenBroker"]["type"] == "symmetric-key"
    db = secret_data(rec, "lakehouse", "polaris-db")
    assert db["username"] == "polaris" and db["jdbcUrl"].startswith("jdbc:postgresql://")
    assert db["jdbcUrl"].endswith("/polaris")
    # The postgres layer creates the database and its role.
    roles = [o for o in rec.objects() if o["kind"] == "Cluster"][0]["spec"]["managed"]["roles"]
    assert "polaris" in {r["name"] for r in roles}
    assert set(v["resources"]["requests"]) == {"cpu", "memory"}


def test_the_realm_is_bootstrapped_before_the_server_starts():
    rec = lake()
    job = by(rec, "Job", "lakehouse")["polaris-bootstrap"]
    c = job["spec"]["template"]["spec"]["containers"][0]
    assert c["image"].endswith("polaris-admin-tool:1.7.0") and c["args"] == [
        "bootstrap", "-r", "POLARIS", "-c", "POLARIS,root,$(ROOT_SECRET)"]
    env = {e["name"]: e for e in c["env"]}
    assert env["polaris.persistence.type"]["value"] == "relational-jdbc"
    assert env["quarkus.datasource.jdbc.url"]["valueFrom"]["secretKeyRef"] == {"name": "polaris-db", "key": "jdbcUrl"}
    polaris = rec.get("kubernetes:helm.sh/v3:Release", "polaris")
    assert "kubernetes:batch/v1:Job::job-lakehouse-polaris-bootstrap" in {rec.label(d) for d in polaris.depends_on}


def test_setup_runs_after_polaris_and_before_trino_with_a_plan_of_generated_credentials():
    rec = lake()
    setup = next(n for n in by(rec, "Job", "lakehouse") if n.startswith("lakehouse-setup-"))
    trino = rec.get("kubernetes:helm.sh/v3:Release", "trino")
    assert f"kubernetes:batch/v1:Job::job-lakehouse-{setup}" in {rec.label(d) for d in trino.depends_on}
    plan_secret = rec.get("kubernetes:core/v1:Secret", "secret-lakehouse-lakehouse-setup")
    assert normalize(plan_secret.inputs)["stringData"] == "[secret]"  # credentials never in plain text
    plan = json.loads(secret_data(rec, "lakehouse", "lakehouse-setup")["plan.json"])
    assert plan["catalog"]["name"] == "lake" and plan["catalog"]["type"] == "INTERNAL"
    storage = plan["catalog"]["storageConfigInfo"]
    assert storage["storageType"] == "S3" and storage["stsUnavailable"] is True and storage["pathStyleAccess"]
    assert storage["allowedLocations"] == ["s3://lake/"]
    assert plan["catalog"]["properties"]["default-base-location"] == "s3://lake/warehouse"
    principals = {p["name"]: p for p in plan["principals"]}
    assert principals["trino"]["catalogGrants"] == ["CATALOG_MANAGE_CONTENT"]
    team = principals["team-research"]
    assert team["namespace"] == "research" and "TABLE_WRITE_DATA" in team["namespaceGrants"]
    assert "catalogGrants" not in team  # a team sees its own namespace only
    assert plan["root"]["clientSecret"] != team["clientSecret"]  # generated apart
    # A different plan (a new team) gets a new Job: a Job's pod template cannot change.
    two = lake(extra={"cnai:teams": [{"name": "research"}, {"name": "vision"}]})
    assert setup not in by(two, "Job", "lakehouse")


def test_trino_queries_the_lake_through_polaris_as_a_single_node_on_the_laptop():
    rec = lake()
    v = values_of(rec, "trino")
    assert v["server"]["workers"] == 0 and v["coordinator"]["config"]["nodeScheduler"]["includeCoordinator"] is True
    catalog = v["catalogs"]["lake"]
    for line in ("iceberg.catalog.type=rest", "iceberg.rest-catalog.security=OAUTH2",
                 "iceberg.rest-catalog.oauth2.credential=${ENV:LAKEHOUSE_CREDENTIAL}", "fs.native-s3.enabled=true",
                 "s3.aws-access-key=${ENV:AWS_ACCESS_KEY_ID}", "s3.path-style-access=true"):
        assert line in catalog.splitlines()
    assert v["envFrom"] == [{"secretRef": {"name": "trino-lakehouse"}}]
    env = secret_data(rec, "lakehouse", "trino-lakehouse")
    assert env["LAKEHOUSE_CREDENTIAL"].startswith("trino:") and env["AWS_ACCESS_KEY_ID"] == "cnai-lakehouse"
    # The heap, the per-node query memory and the headroom fit the container.
    assert v["coordinator"]["jvm"]["maxHeapSize"] == "1G"
    assert v["coordinator"]["resources"]["limits"]["memory"] == "1792Mi"
    prod = values_of(lake("existing"), "trino")
    assert prod["server"]["workers"] == 2
    assert prod["coordinator"]["config"]["nodeScheduler"]["includeCoordinator"] is False
    assert values_of(lake(trinoWorkers=1), "trino")["server"]["workers"] == 1


def test_teams_get_a_client_secret_and_service_account_of_their_own():
    rec = lake(extra={"cnai:teams": [{"name": "research"}, {"name": "ml-ops"}]})
    for team, schema in (("research", "research"), ("ml-ops", "ml_ops")):
        data = secret_data(rec, f"team-{team}", "lakehouse-client")
        assert data["namespace"] == schema and data["credential"].startswith(f"team-{team}:")
        assert data["s3-access-key-id"] == "cnai-lakehouse-client"  # SeaweedFS: the client identity's keys
        assert by(rec, "ServiceAccount", f"team-{team}")["lakehouse-client"]
    assert secret_data(rec, "team-research", "lakehouse-client")["client-secret"] != \
        secret_data(rec, "team-ml-ops", "lakehouse-client")["client-secret"]
    # The object store has an identity for the clients, apart from the catalog's own.
    config = json.loads(secret_data(rec, "object-store", "object-store-s3-config")["seaweedfs_s3_config"])
    names = {i["name"]: i for i in config["identities"]}
    assert {"lakehouse", "lakehouse-client"} <= set(names)
    assert "Write:lake" in names["lakehouse-client"]["actions"]


def test_client_env_wires_pyiceberg_and_spark_without_plain_credentials():
    rec = lake()
    layer = next(la for la in rec.platform.layers if la.name == "lakehouse")
    env = {e["name"]: e for e in layer.client_env()}
    assert env["PYICEBERG_CATALOG__LAKE__URI"]["value"] == "http://polaris.lakehouse.svc.cluster.local:8181/api/catalog"
    assert env["PYICEBERG_CATALOG__LAKE__TYPE"]["value"] == "rest"
    for name in ("PYICEBERG_CATALOG__LAKE__CREDENTIAL", "LAKEHOUSE_CREDENTIAL",
                 "PYICEBERG_CATALOG__LAKE__S3__ACCESS_KEY_ID", "PYICEBERG_CATALOG__LAKE__S3__SECRET_ACCESS_KEY"):
        ref = env[name]["valueFrom"]["secretKeyRef"]
        assert ref["name"] == "lakehouse-client" and ref["optional"] is True
    assert not [e for e in env.values() if "value" in e and "secret" in e["name"].lower()]


@pytest.mark.parametrize("stack,kind", [("eks", "S3"), ("gke", "GCS")])
def test_clouds_use_workload_identities_not_keys(stack, kind):
    rec = lake(stack)
    plan = json.loads(secret_data(rec, "lakehouse", "lakehouse-setup")["plan.json"])
    storage = plan["catalog"]["storageConfigInfo"]
    assert storage["storageType"] == kind and "endpoint" not in storage
    assert storage["allowedLocations"][0].startswith("s3://" if kind == "S3" else "gs://")
    v = values_of(rec, "polaris")
    assert "storage" not in v  # no static keys: the server's identity
    trino = values_of(rec, "trino")
    assert "s3.aws-access-key" not in trino["catalogs"]["lake"]
    if kind == "GCS":
        assert "fs.native-gcs.enabled=true" in trino["catalogs"]["lake"]
        assert v["serviceAccount"]["annotations"]["iam.gke.io/gcp-service-account"].startswith("cnai-gke-lakehouse@")
    client = secret_data(rec, "team-research", "lakehouse-client")
    assert "s3-access-key-id" not in client
    identities = {i.layer: i for i in rec.platform.requests.identities}
    assert identities["lakehouse"].subjects == (("lakehouse", "polaris"), ("lakehouse", "trino"))
    assert identities["lakehouse-client"].subjects == (("team-research", "lakehouse-client"),)
    assert identities["lakehouse-client"].buckets == {"lake": "rw"}


def test_lakehouse_objects_validate():
    rec = lake()
    for obj in rec.objects():
        if obj["metadata"].get("namespace") == "lakehouse" or obj["metadata"]["name"] == "lakehouse-client":
            validate_object("1.36", normalize(obj, reveal=True))


# -- the setup script against a fake Polaris -------------------------------------------------------

class FakePolaris:
    """Enough of Polaris' management and catalog APIs to hold state and answer as the spec does."""

    def __init__(self, root_secret: str):
        self.secrets = {"root": root_secret}
        self.catalogs: dict[str, dict] = {}
        self.principals: dict[str, str] = {}  # name -> client id
        self.principal_roles: set[str] = set()
        self.assigned: set[tuple[str, str]] = set()
        self.catalog_roles: set[tuple[str, str]] = set()
        self.attached: set[tuple[str, str, str]] = set()
        self.grants: set[tuple] = set()
        self.namespaces: set[tuple[str, str]] = set()
        self.calls: list[tuple[str, str]] = []


def handler(state: FakePolaris):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def reply(self, code: int, body=None):
            raw = json.dumps(body).encode() if body is not None else b""
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def body(self):
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if self.headers.get("Content-Type") == "application/x-www-form-urlencoded":
                return {k: v[0] for k, v in parse_qs(raw.decode()).items()}
            return json.loads(raw) if raw else None

        def authorized(self) -> bool:
            return self.headers.get("Authorization") == "Bearer root-token"

        def do_GET(self):  # noqa: N802
            state.calls.append(("GET", self.path))
            name = self.path.rsplit("/", 1)[-1]
            if self.path.startswith("/api/management/v1/catalogs/") and name in state.catalogs:
                return self.reply(200, {**state.catalogs[name], "entityVersion": 1})
            return self.reply(404)

        def do_POST(self):  # noqa: N802
            state.calls.append(("POST", self.path))
            body, p = self.body(), self.path
            if p == "/api/catalog/v1/oauth/tokens":
                ok = body["grant_type"] == "client_credentials" and state.secrets.get(body["client_id"]) == \
                    body["client_secret"] and body["scope"] == "PRINCIPAL_ROLE:ALL"
                return self.reply(200, {"access_token": "root-token"}) if ok else self.reply(401)
            if not self.authorized():
                return self.reply(401)
            if p == "/api/management/v1/catalogs":
                c = body["catalog"]
                assert {"name", "type", "storageConfigInfo"} <= set(c) and "default-base-location" in c["properties"]
                if c["name"] in state.catalogs:
                    return self.reply(409)
                state.catalogs[c["name"]] = c
                return self.reply(201, c)
            if p == "/api/management/v1/principals":
                name = body["principal"]["name"]
                if name in state.principals:
                    return self.reply(409)
                state.principals[name] = "generated"
                return self.reply(201, {"principal": body["principal"], "credentials": {"clientId": "x",
                                                                                       "clientSecret": "y"}})
            if p.startswith("/api/management/v1/principals/") and p.endswith("/reset"):
                name = p.split("/")[-2]
                state.principals[name] = body["clientId"]
                state.secrets[body["clientId"]] = body["clientSecret"]
                return self.reply(200, {"principal": {"name": name}, "credentials": body})
            if p == "/api/management/v1/principal-roles":
                name = body["principalRole"]["name"]
                if name in state.principal_roles:
                    return self.reply(409)
                state.principal_roles.add(name)
                return self.reply(201)
            if p.startswith("/api/management/v1/catalogs/") and p.endswith("/catalog-roles"):
                key = (p.split("/")[-2], body["catalogRole"]["name"])
                if key in state.catalog_roles:
                    return self.reply(409)
                state.catalog_roles.add(key)
                return self.reply(201)
            if p.startswith("/api/catalog/v1/") and p.endswith("/namespaces"):
                key = (p.split("/")[-2], ".".join(body["namespace"]))
                if key in state.namespaces:
                    return self.reply(409)
                state.namespaces.add(key)
                return self.reply(200, body)
            return self.reply(404)

        def do_PUT(self):  # noqa: N802
            state.calls.append(("PUT", self.path))
            body, parts = self.body(), self.path.split("/")
            if not self.authorized():
                return self.reply(401)
            if self.path.endswith("/principal-roles"):
                state.assigned.add((parts[-2], body["principalRole"]["name"]))
            elif "/principal-roles/" in self.path and "/catalog-roles/" in self.path:
                state.attached.add((parts[-3], parts[-1], body["catalogRole"]["name"]))
            elif self.path.endswith("/grants"):
                g = body["grant"]
                state.grants.add((parts[-4], parts[-2], g["type"], tuple(g.get("namespace", ())), g["privilege"]))
            elif parts[-2] == "catalogs":
                assert body["currentEntityVersion"] == 1
                state.catalogs[parts[-1]].update(properties=body["properties"],
                                                 storageConfigInfo=body["storageConfigInfo"])
            else:
                return self.reply(404)
            return self.reply(201)

    return Handler


@pytest.fixture
def fake_polaris():
    state = FakePolaris("root-secret")
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler(state))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_the_setup_script_creates_catalog_principals_and_grants_and_can_run_again(fake_polaris, tmp_path,
                                                                               monkeypatch):
    state, url = fake_polaris
    rec = lake(extra={"cnai:teams": [{"name": "research"}, {"name": "vision"}]})
    plan = json.loads(secret_data(rec, "lakehouse", "lakehouse-setup")["plan.json"])
    plan["polaris"] = url
    plan["root"]["clientSecret"] = "root-secret"
    (tmp_path / "plan.json").write_text(json.dumps(plan))
    monkeypatch.setenv("PLAN", str(tmp_path / "plan.json"))
    module = runpy.run_path(str(SCRIPT))
    assert module["main"]() == 0
    assert state.catalogs["lake"]["storageConfigInfo"]["stsUnavailable"] is True
    assert set(state.principals) == {"trino", "team-research", "team-vision"}
    # The program's credentials are the principals' (a team logs in with what its Secret holds).
    for p in plan["principals"]:
        assert state.secrets[p["clientId"]] == p["clientSecret"]
        assert (p["name"], p["name"]) in state.assigned and (p["name"], "lake", p["name"]) in state.attached
    assert ("lake", "trino", "catalog", (), "CATALOG_MANAGE_CONTENT") in state.grants
    assert ("lake", "team-vision", "namespace", ("vision",), "TABLE_WRITE_DATA") in state.grants
    assert not [g for g in state.grants if g[1] == "team-vision" and g[2] == "catalog"]
    assert state.namespaces == {("lake", "research"), ("lake", "vision")}
    first = len(state.grants)
    # Again (a plan change re-runs the Job): nothing fails, nothing duplicates, the catalog is updated.
    plan["catalog"]["storageConfigInfo"]["endpoint"] = "http://moved:8333"
    (tmp_path / "plan.json").write_text(json.dumps(plan))
    assert module["main"]() == 0
    assert len(state.grants) == first
    assert state.catalogs["lake"]["storageConfigInfo"]["endpoint"] == "http://moved:8333"


def test_the_setup_script_fails_loudly_on_a_refused_call(fake_polaris, tmp_path, monkeypatch):
    state, url = fake_polaris
    plan = {"polaris": url, "realm": "POLARIS", "root": {"clientId": "root", "clientSecret": "wrong"},
            "catalog": {}, "principals": []}
    (tmp_path / "plan.json").write_text(json.dumps(plan))
    monkeypatch.setenv("PLAN", str(tmp_path / "plan.json"))
    monkeypatch.setenv("SETUP_TIMEOUT", "0")
    module = runpy.run_path(str(SCRIPT))
    with pytest.raises(RuntimeError, match="no token from .* HTTP 401"):
        module["main"]()


def test_notebooks_get_the_catalog_and_trino_and_the_team_credential_by_reference():
    env = values_of(lake(), "jupyterhub")["singleuser"]["extraEnv"]
    assert env["PYICEBERG_CATALOG__LAKE__URI"] == "http://polaris.lakehouse.svc.cluster.local:8181/api/catalog"
    assert env["LAKEHOUSE_TRINO_URI"] == "http://trino.lakehouse.svc.cluster.local:8080"
    assert env["PYICEBERG_CATALOG__LAKE__CREDENTIAL"] == {"valueFrom": {"secretKeyRef": {
        "name": "lakehouse-client", "key": "credential", "optional": True}}}
    assert not any(k.startswith(("LAKEHOUSE", "PYICEBERG")) for k in values_of(evaluate("kind"), "jupyterhub")[
        "singleuser"]["extraEnv"])


def test_feast_reads_features_from_iceberg_tables_through_trino():
    image = "ghcr.io/acme/feast-feature-server:0.66.0-fsspec"
    overrides = with_lakehouse("kind")
    overrides["cnai:layers"]["feast"] = {"offlineStore": "trino", "image": image}
    rec = evaluate("kind", overrides)
    store = by(rec, "FeatureStore", "feast")["platform"]
    assert store["spec"]["services"]["offlineStore"]["persistence"] == {
        "store": {"type": "trino", "secretRef": {"name": "feast-data-stores"}}}
    validate_object("1.36", store)
    trino = yaml.safe_load(secret_data(rec, "feast", "feast-data-stores")["trino"])
    assert trino == {"host": "trino.lakehouse.svc.cluster.local", "port": 8080, "http-scheme": "http",
                     "catalog": "lake", "user": "feast", "dataset": "feast",
                     "connector": {"type": "iceberg", "file_format": "parquet"}}
    plan = json.loads(secret_data(rec, "lakehouse", "lakehouse-setup")["plan.json"])
    assert plan["namespaces"] == ["feast"]  # Feast's temporary tables


@pytest.mark.parametrize("feast,message", [
    ({"offlineStore": "trino", "image": "ghcr.io/acme/feast:1"}, "trino needs the lakehouse layer"),
    ({"offlineStore": "trino"}, "trino needs cnai:layers.feast.image"),
])
def test_feast_on_trino_without_what_it_needs_is_refused(feast, message):
    from modules.shared.config import ConfigError
    from tools.harness import run

    overrides = with_lakehouse("kind") if "image" not in feast else {"cnai:layers": {
        **yaml.safe_load((ROOT / "stacks" / "Pulumi.kind.yaml").read_text())["config"].get("cnai:layers", {})}}
    overrides["cnai:layers"]["feast"] = feast
    with pytest.raises(ConfigError, match=f"^cnai:layers.feast.offlineStore: {message}"):
        run("kind", overrides)


def test_notebooks_get_the_ray_image_their_client_must_match():
    overrides = with_lakehouse("kind")
    overrides["cnai:layers"]["ray"] = {"enabled": True}
    env = values_of(evaluate("kind", overrides), "jupyterhub")["singleuser"]["extraEnv"]
    assert env["RAY_IMAGE"] == "docker.io/rayproject/ray:2.55.0" and env["RAY_VERSION"] == "2.55.0"
    assert "RAY_IMAGE" not in values_of(evaluate("kind"), "jupyterhub")["singleuser"]["extraEnv"]
