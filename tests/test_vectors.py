"""The vectors layer: a pgvector database and role per team in the platform's PostgreSQL, the postgres layer's
extension mechanism (the `standard` image, `Database.spec.extensions`, the managed roles Job), and the team
namespaces' `pgvector` Secret with generated credentials only."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from addons.postgres import ROLES_SCRIPT
from modules.shared.config import ConfigError
from modules.shared.versions import VERSIONS
from tests.conftest import evaluate, needs_upstream, secret_data
from tests.test_schemas import validate_object
from tools.harness import mock_password, normalize

ROOT = Path(__file__).resolve().parents[1]
SECRET_KEYS = {"host", "port", "dbname", "user", "password", "sslmode", "uri"}
TWO_TEAMS = [{"name": name, "owner": "lead@example.com",
              "quota": {"cpu": "2", "memory": "4Gi", "pods": 30, "storage": "20Gi"}} for name in ("research", "ml-ops")]
RDS = "cnai-eks-platform-db.c0mock.us-west-2.rds.amazonaws.com"


def stack_layers(stack: str) -> dict:
    return dict(yaml.safe_load((ROOT / "stacks" / f"Pulumi.{stack}.yaml").read_text())["config"].get("cnai:layers")
                or {})


def with_vectors(stack: str, extra: dict | None = None, **layers) -> dict:
    """The stack's own `cnai:layers` (an override replaces the whole key) with the vectors layer on."""
    return {"cnai:layers": {**stack_layers(stack), "vectors": {"enabled": True}, **layers}, **(extra or {})}


def vectors(stack: str = "kind", extra: dict | None = None, **layers):
    return evaluate(stack, with_vectors(stack, extra, **layers))


def by(rec, kind: str, namespace: str | None = None) -> dict[str, dict]:
    return {o["metadata"]["name"]: normalize(o, reveal=True) for o in rec.objects()
            if o["kind"] == kind and (namespace is None or o["metadata"].get("namespace") == namespace)}


def layer(rec, name: str):
    return next(lay for lay in rec.platform.layers if lay.name == name)


def cluster(rec) -> dict:
    return by(rec, "Cluster", "postgres")["platform-db"]


def roles_job(rec) -> dict:
    return next(o for name, o in by(rec, "Job", "postgres").items() if name.startswith("platform-db-roles-"))


# -- the postgres layer: image and extensions --------------------------------------------------------------

def test_without_the_layer_the_cluster_keeps_the_minimal_image_and_no_extensions():
    rec = evaluate("kind")
    assert cluster(rec)["spec"]["imageName"] == VERSIONS.images["postgresql"]
    assert "minimal" in VERSIONS.images["postgresql"]
    assert all("extensions" not in d["spec"] for d in by(rec, "Database").values())
    assert not [o for o in rec.objects() if o["metadata"]["name"] == "pgvector"]
    assert layer(rec, "postgres").extensions() == {}


def test_with_the_layer_the_cluster_runs_the_standard_image_of_the_same_build():
    rec = vectors()
    image = cluster(rec)["spec"]["imageName"]
    assert image == VERSIONS.images["postgresql-standard"]
    # the same PostgreSQL release and build as the minimal image, pinned by digest
    minimal = VERSIONS.images["postgresql"]
    assert image.split("@")[0] == minimal.split("@")[0].replace("-minimal-", "-standard-")
    assert "@sha256:" in image


@pytest.mark.parametrize("stack", ["kind", "gke"])
def test_each_team_gets_a_database_with_the_vector_extension_and_a_login_role(stack):
    rec = vectors(stack, {"cnai:teams": TWO_TEAMS})
    dbs = by(rec, "Database", "postgres")
    for team, db in (("research", "vectors_research"), ("ml-ops", "vectors_ml_ops")):
        spec = dbs[f"platform-db-{db.replace('_', '-')}-db"]["spec"]
        assert spec == {"name": db, "owner": db, "cluster": {"name": "platform-db"}, "ensure": "present",
                        "databaseReclaimPolicy": "retain", "extensions": [{"name": "vector", "ensure": "present"}]}
        roles = {r["name"]: r for r in cluster(rec)["spec"]["managed"]["roles"]}
        assert roles[db] == {"name": db, "ensure": "present", "login": True,
                             "passwordSecret": {"name": f"platform-db-{db.replace('_', '-')}"}}
    # only the databases that asked for an extension carry one
    assert "extensions" not in dbs["platform-db-mlflow-db"]["spec"]
    assert layer(rec, "postgres").extensions() == {"vectors_ml_ops": ("vector",), "vectors_research": ("vector",)}


@needs_upstream
def test_the_cluster_and_databases_validate_against_the_pinned_crds():
    rec = vectors(extra={"cnai:teams": TWO_TEAMS})
    objs = [normalize(o, reveal=True) for o in rec.objects() if o["kind"] in ("Cluster", "Database")]
    assert len(objs) == 1 + 4  # mlflow, feast and two teams
    for obj in objs:
        validate_object(rec.spec.kubernetesVersion, obj)


# -- the team Secrets and the offer --------------------------------------------------------------------------

def test_each_team_namespace_gets_its_connection_settings_as_generated_secrets():
    rec = vectors(extra={"cnai:teams": TWO_TEAMS})
    for team, db in (("research", "vectors_research"), ("ml-ops", "vectors_ml_ops")):
        data = secret_data(rec, f"team-{team}", "pgvector")  # the Secret's data is a Pulumi secret as a whole
        assert set(data) == SECRET_KEYS
        host = "platform-db-rw.postgres.svc.cluster.local"
        password = mock_password(f"postgres-role-{db}")  # the postgres layer's generated role password
        assert data == {"host": host, "port": "5432", "dbname": db, "user": db, "password": password,
                        "sslmode": "require",
                        "uri": f"postgresql://{db}:{password}@{host}:5432/{db}?sslmode=require"}
        # the same credential as the role's Secret the operator applies
        assert secret_data(rec, "postgres", f"platform-db-{db.replace('_', '-')}")["password"] == password
        reg = rec.get("kubernetes:core/v1:Secret", f"secret-team-{team}-pgvector")
        assert "mockpw" not in str(normalize(reg.inputs))  # never in plain text
        waits = {rec.label(u) for u in rec.waits_for(reg)}
        assert f"kubernetes:core/v1:Namespace::namespace-team-{team}" in waits  # after the teams layer
        # the role, its database and the extension exist first
        assert f"kubernetes:postgresql.cnpg.io/v1:Database::database-postgres-platform-db-{db.replace('_', '-')}-db" \
            in waits


def test_the_offer_names_the_secret_database_and_client_env():
    rec = vectors(extra={"cnai:teams": TWO_TEAMS})
    vec = layer(rec, "vectors")
    assert vec.client_secret == "pgvector" and vec.namespace is None and vec.workloads() == []
    teams = {t.name: t for t in vec.teams()}
    assert vec.team_database(teams["ml-ops"]) == "vectors_ml_ops"
    env = vec.client_env()
    assert [e["name"] for e in env] == ["PGVECTOR_HOST", "PGVECTOR_PORT", "PGVECTOR_DATABASE", "PGVECTOR_USER",
                                        "PGVECTOR_PASSWORD", "PGVECTOR_URL"]
    for e in env:
        ref = e["valueFrom"]["secretKeyRef"]
        assert ref["name"] == "pgvector" and ref["optional"] is True and ref["key"] in SECRET_KEYS
    assert rec.outputs["layer:vectors"]["databases"] == ["vectors_research", "vectors_ml_ops"]


def test_without_teams_the_layer_asks_for_nothing():
    rec = vectors(teams={"enabled": False})
    assert layer(rec, "vectors").database_needs() == ()
    assert cluster(rec)["spec"]["imageName"] == VERSIONS.images["postgresql"]


def test_the_layer_has_no_namespace_to_move():
    with pytest.raises(ConfigError, match=r"^cnai:layers\.vectors\.namespace: .*no namespace of its own"):
        vectors(vectors={"enabled": True, "namespace": "vectors"})


# -- managed PostgreSQL --------------------------------------------------------------------------------------

def test_managed_postgres_creates_the_extension_through_the_roles_job():
    plain, rec = evaluate("eks"), vectors("eks")
    job = roles_job(rec)
    env = {e["name"]: e for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["ROLES"]["value"] == "feast mlflow vectors_research"
    assert env["EXTENSIONS_VECTORS_RESEARCH"] == {"name": "EXTENSIONS_VECTORS_RESEARCH", "value": "vector"}
    assert env["PASSWORD_VECTORS_RESEARCH"]["valueFrom"]["secretKeyRef"] == {
        "name": "platform-db-vectors-research", "key": "password"}
    assert not [n for n in env if n.startswith("EXTENSIONS_") and n != "EXTENSIONS_VECTORS_RESEARCH"]
    assert not [e for e in roles_job(plain)["spec"]["template"]["spec"]["containers"][0]["env"]
                if e["name"].startswith("EXTENSIONS_")]
    # a new Job (a Job's pod template is immutable) when the roles or their extensions change
    assert job["metadata"]["name"] != roles_job(plain)["metadata"]["name"]
    assert "CREATE EXTENSION IF NOT EXISTS" in ROLES_SCRIPT.read_text()
    # the team Secret comes once the Job has created the role, the database and the extension
    reg = rec.get("kubernetes:core/v1:Secret", "secret-team-research-pgvector")
    assert f"kubernetes:batch/v1:Job::job-postgres-{job['metadata']['name']}" in \
        {rec.label(u) for u in rec.waits_for(reg)}
    assert not [o for o in rec.objects() if o["kind"] in ("Cluster", "Database")]


def test_managed_postgres_secrets_carry_the_instance_address_and_team_egress_to_it():
    rec = vectors("eks")
    data = secret_data(rec, "team-research", "pgvector")
    assert data["host"] == RDS
    assert data["uri"] == (f"postgresql://vectors_research:{mock_password('postgres-role-vectors_research')}@{RDS}"
                           ":5432/vectors_research?sslmode=require")
    policy = by(rec, "NetworkPolicy", "team-research")["allow-pgvector"]
    assert policy["spec"]["egress"] == [{"to": [{"ipBlock": {"cidr": c}} for c in
                                                ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16")],
                                         "ports": [{"protocol": "TCP", "port": 5432}]}]
    validate_object(rec.spec.kubernetesVersion, policy)
    # in the cluster, team pods reach the postgres namespace through the teams layer's allow-platform policy
    assert "allow-pgvector" not in by(vectors(), "NetworkPolicy", "team-research")


# -- every stack plans with the layer on -------------------------------------------------------------------

@pytest.mark.parametrize("stack", ["kind", "kind-gpu", "eks", "gke"])
def test_the_layer_plans_on_every_stack(stack):
    rec = vectors(stack)
    assert "vectors" in rec.spec.enabled_layers()
    vec = layer(rec, "vectors")
    assert vec.teams(), f"stack {stack} has no teams"
    for team in vec.teams():
        data = secret_data(rec, team.namespace, "pgvector")
        assert data["dbname"] == vec.team_database(team) and set(data) == SECRET_KEYS
    managed = layer(rec, "postgres").managed
    if not managed:
        assert cluster(rec)["spec"]["imageName"] == VERSIONS.images["postgresql-standard"]
    # no pods of its own: nothing added to the footprint
    assert not [r for r in rec.by_type("kubernetes:helm.sh/v3:Release") if rec.layer_of(r) == "vectors"]
