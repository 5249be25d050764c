"""Smoke: vector search works from a team namespace (vectors layer, docs/layers/vectors.md).

Each team namespace holds Secret `pgvector`; with CloudNativePG each team's `Database` is applied with its
`vector` extension. A client Job in the first team's namespace (the pinned PostgreSQL image's psql, as the
PostgreSQL user, restricted Pod Security) connects with nothing but the Secret's `uri` (`PGVECTOR_URL`, TLS
required), finds the extension already there (`CREATE EXTENSION IF NOT EXISTS vector` is a no-op for the team's
role, which could not create it), creates a table with a `vector(3)` column, inserts three rows and asks for the
nearest neighbour with `ORDER BY embedding <-> ... LIMIT 1`, then drops the table. It reports pgvector's version
(whatever PGDG shipped when the pinned `standard` image was built, or the cloud's on RDS / Cloud SQL) as the
test's `pgvector` property and on stdout.
"""

from __future__ import annotations

import pytest

from tests.smoke.helpers import MARKER, client_job, client_result, conditions, run_job, unique_suffix

pytestmark = pytest.mark.smoke

POSTGRES_UID = 26  # the `postgres` user of the CloudNativePG images
QUERY = [0.1, 0.9, 0.1]
ROWS = {1: [1, 0, 0], 2: [0, 1, 0], 3: [0, 0, 1]}
NEAREST = 2

# psql "$PGVECTOR_URL" with the image's own psql; retries only "cannot connect" (exit 2).
PSQL_CLIENT = '''
PSQL=$(ls /usr/lib/postgresql/*/bin/psql 2>/dev/null | tail -n 1)
PSQL=${PSQL:-psql}
n=0
while :; do
  "$PSQL" -X -q -t -A -v ON_ERROR_STOP=1 -d "$PGVECTOR_URL" "$@" >/tmp/psql.out 2>/tmp/psql.err; rc=$?
  [ "$rc" -ne 2 ] && break
  n=$((n + 1)); [ "$n" -ge 36 ] && break
  echo "psql: cannot connect yet: $(cat /tmp/psql.err)" >&2; sleep 5
done
cat /tmp/psql.err >&2
cat /tmp/psql.out
[ "$rc" -eq 0 ] || { echo "psql failed (exit $rc)" >&2; exit "$rc"; }
'''


@pytest.fixture(scope="module")
def vectors(platform):
    return platform.enabled_layer("vectors")


@pytest.fixture(scope="module")
def team(platform, vectors):
    if not platform.teams:
        pytest.skip(f"stack {platform.stack} has no teams: the vectors layer serves none")
    return platform.teams[0]


def test_every_team_namespace_has_its_connection_secret(platform, vectors):
    if not platform.teams:
        pytest.skip(f"stack {platform.stack} has no teams")
    for team in platform.teams:
        s = platform.core.read_namespaced_secret(vectors.client_secret, team.namespace, _request_timeout=30)
        assert set(s.data or {}) >= {"host", "port", "dbname", "user", "password", "uri"}, \
            f"{team.namespace}/{vectors.client_secret} holds {sorted(s.data or {})}"


def test_each_team_database_is_applied_with_the_vector_extension(platform, vectors, team):
    pg = platform.enabled_layer("postgres")
    if pg.managed:
        pytest.skip("managed PostgreSQL: the roles Job creates the extension (see the client test)")
    from addons.postgres import API

    group, version = API.split("/")
    for t in platform.teams:
        db = vectors.team_database(t)
        name = f"{pg.secret_name(db)}-db"

        def applied(name=name):
            obj = platform.custom.get_namespaced_custom_object(group, version, pg.namespace, "databases", name,
                                                               _request_timeout=30)
            status = obj.get("status") or {}
            exts = {e.get("name"): e for e in status.get("extensions") or []}
            ok = status.get("applied") is True and (exts.get("vector") or {}).get("applied") is True
            return ok, f"applied={status.get('applied')} message={status.get('message')!r} extensions={exts} " \
                       f"conditions={conditions(obj)}"

        platform.wait_until(applied, f"Database {pg.namespace}/{name} applied with extension vector")


def test_a_team_client_runs_a_nearest_neighbour_query(platform, vectors, team, jobs, record_property):
    table = f"cnai_smoke_{unique_suffix()}"
    rows = ", ".join(f"({i}, '{v}')" for i, v in ROWS.items())
    result = f"SELECT '{MARKER}' || json_build_object("
    sql = [
        result + "'extversion', (SELECT extversion FROM pg_extension WHERE extname = 'vector'), "
        "'server', current_setting('server_version'), 'user', current_user, 'database', current_database(), "
        "'ssl', (SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()))::text",
        "CREATE EXTENSION IF NOT EXISTS vector",  # already there: a no-op (the team's role may not create it)
        f"CREATE TABLE {table} (id int PRIMARY KEY, embedding vector(3))",
        f"INSERT INTO {table} VALUES {rows}",
        result + f"'nearest', (SELECT id FROM {table} ORDER BY embedding <-> '{QUERY}' LIMIT 1))::text",
        f"DROP TABLE {table}",
    ]
    from modules.shared.versions import VERSIONS

    args = [a for statement in sql for a in ("-c", statement)]
    job = client_job("pgvector", VERSIONS.images["postgresql"], ["sh", "-c", PSQL_CLIENT, "psql", *args],
                     POSTGRES_UID, env=vectors.client_env(), cpu="50m", memory="64Mi", memory_limit="256Mi",
                     deadline=platform.timeout, retries=0)
    out = run_job(platform, jobs, team.namespace, job, f"pgvector client in {team.namespace}")
    lines = [line for line in out.splitlines() if line.startswith(MARKER)]
    assert len(lines) == 2, f"expected two result lines from the client, got:\n{out[-3000:]}"
    info, answer = client_result(lines[0], "pgvector connection"), client_result(lines[1], "pgvector query")
    db = vectors.team_database(team)
    record_property("pgvector", info.get("extversion"))
    print(f"pgvector {info.get('extversion')} on PostgreSQL {info.get('server')} ({platform.stack})")
    assert info.get("extversion"), f"extension vector is not installed in {db}: {info}"
    assert (info.get("user"), info.get("database")) == (db, db), info
    assert info.get("ssl") is True, f"the connection is not encrypted: {info}"
    assert answer.get("nearest") == NEAREST, f"nearest neighbour of {QUERY} is {answer}, expected row {NEAREST}"
