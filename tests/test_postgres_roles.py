"""The managed-PostgreSQL role Job's script against a real PostgreSQL 16 server (pgserver's binaries).

RDS and Cloud SQL give the platform an admin that is *not* a superuser: a member of
`rds_superuser` / `cloudsqlsuperuser` with CREATEROLE and CREATEDB. The test makes such an admin on
a throwaway local server and runs addons/assets/postgres-roles.sh with the environment of the Job the
eks stack plans (every variable the Job sets, Secrets resolved to their mock values). Since
PostgreSQL 16, `CREATE DATABASE ... OWNER r` needs membership in `r`, which is what the script's
`GRANT` provides. Only TLS is off here (`PGSSLMODE=disable`): the local server has no certificate.

With the vectors layer on, the Job also creates pgvector (`EXTENSIONS_<ROLE>=vector`) in each team's database.
pgserver's build ships pgvector (0.6.2 in pgserver 0.1.4; the tests skip, saying so, on a build without it).
pgvector is not a trusted extension, so the admin must be allowed more than a database owner: a superuser
here (RDS's rds_superuser and Cloud SQL's cloudsqlsuperuser cannot be reproduced locally); a plain
CREATEROLE CREATEDB admin must fail with PostgreSQL's reason and the script's own line.
"""

from __future__ import annotations

import atexit
import os
import shutil
import stat
import subprocess
import tempfile
from pathlib import Path

import pytest

from addons.postgres import ROLES_SCRIPT
from tests.conftest import evaluate, secret_data
from tests.test_vectors import with_vectors
from tools.harness import normalize

pgserver = pytest.importorskip("pgserver._commands", reason="pgserver (PostgreSQL binaries) is in requirements-dev.txt")
INSTALL = Path(pgserver.POSTGRES_BIN_PATH).parent
SUPERUSER_PASSWORD = "local-superuser-test-only"
AS_ROOT = os.geteuid() == 0  # initdb and postgres refuse to run as root; CI containers often are root


def _reachable_by_others(path: Path) -> bool:
    """Whether a user with no rights of its own (`nobody`) can reach `path` (every directory on the way o+x)."""
    return all(p.stat().st_mode & stat.S_IXOTH for p in [path, *path.parents] if p.is_dir())


def _scratch_base() -> Path:
    """A directory `nobody` can reach: the temp dir if it is (a private TMPDIR is not), else /tmp or /var/tmp."""
    for base in (Path(tempfile.gettempdir()), Path("/tmp"), Path("/var/tmp")):
        if base.is_dir() and (not AS_ROOT or _reachable_by_others(base)):
            return base
    pytest.skip("no temporary directory the PostgreSQL server user can reach")


def _as_server_user(cmd: list[str]) -> list[str]:
    if AS_ROOT:
        runuser = shutil.which("runuser")
        if runuser is None:
            pytest.skip("running as root without runuser: PostgreSQL cannot start")
        return [runuser, "-u", "nobody", "--", *cmd]
    return cmd


def _binaries() -> Path:
    """pgserver's binaries where the server user can run them: in place, or copied to a scratch directory
    when they sit in a checkout (its .venv) that `nobody` cannot enter, e.g. one in a private temp dir."""
    if not AS_ROOT or _reachable_by_others(INSTALL / "bin"):
        return INSTALL / "bin"
    base = next((b for b in (Path(tempfile.gettempdir()), Path("/tmp"), Path("/var/tmp"))
                 if b.is_dir() and _reachable_by_others(b)), None)
    if base is None:
        return INSTALL / "bin"  # the server fixture skips with its reason
    root = Path(tempfile.mkdtemp(prefix="cnai-pgbin-", dir=base))
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    root.chmod(0o755)
    # The same layout as in site-packages: the binaries find their libraries at $ORIGIN/../../../pgserver.libs.
    for part in ("bin", "lib", "share"):
        shutil.copytree(INSTALL / part, root / "pgserver" / "pginstall" / part, symlinks=True)
    shutil.copytree(INSTALL.parent.parent / "pgserver.libs", root / "pgserver.libs", symlinks=True)
    return root / "pgserver" / "pginstall" / "bin"


BIN = _binaries()


@pytest.fixture
def server():
    """A PostgreSQL 16 server on a Unix socket in a fresh directory, with scram-sha-256 everywhere.
    Not pytest's tmp_path: the server user must be able to reach it."""
    with tempfile.TemporaryDirectory(prefix="cnai-pg-", dir=_scratch_base()) as tmp:
        yield from _server(Path(tmp))


def _server(tmp_path: Path):
    tmp_path.chmod(0o777)
    pw = tmp_path / "pw"
    pw.write_text(SUPERUSER_PASSWORD + "\n")
    pw.chmod(0o644)
    data = tmp_path / "data"
    subprocess.run(_as_server_user([str(BIN / "initdb"), "-D", str(data), "-U", "postgres", "--auth=scram-sha-256",
                                    f"--pwfile={pw}"]), check=True, capture_output=True, timeout=120)
    pg_ctl = [str(BIN / "pg_ctl"), "-D", str(data), "-w", "-t", "60"]
    subprocess.run(_as_server_user(pg_ctl + ["-o", f"-k {tmp_path} -c listen_addresses=''", "-l", str(tmp_path / "log"),
                                             "start"]), check=True, capture_output=True, timeout=120)
    try:
        yield str(tmp_path)
    finally:
        subprocess.run(_as_server_user(pg_ctl + ["-m", "fast", "stop"]), capture_output=True, timeout=120)


def psql(host: str, user: str, password: str, sql: str, db: str = "postgres") -> subprocess.CompletedProcess:
    env = {"PATH": os.environ.get("PATH", ""), "PGHOST": host, "PGUSER": user, "PGPASSWORD": password,
           "PGDATABASE": db, "PGSSLMODE": "disable"}
    return subprocess.run([str(BIN / "psql"), "-v", "ON_ERROR_STOP=1", "-tAc", sql], env=env,
                          capture_output=True, text=True, timeout=60)


def job_env(rec, host: str) -> dict[str, str]:
    """The role Job's environment as the pod would see it, pointed at the local server."""
    job = next(o for o in rec.objects() if o["kind"] == "Job"
               and o["metadata"]["name"].startswith("platform-db-roles-"))
    ns = job["metadata"]["namespace"]
    env: dict[str, str] = {}
    for e in normalize(job, reveal=True)["spec"]["template"]["spec"]["containers"][0]["env"]:
        if "value" in e:
            env[e["name"]] = e["value"]
        else:
            ref = e["valueFrom"]["secretKeyRef"]
            env[e["name"]] = secret_data(rec, ns, ref["name"])[ref["key"]]
    return {**env, "PGHOST": host, "PGSSLMODE": "disable", "PATH": f"{BIN}:{os.environ.get('PATH', '')}"}


def run_script(env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(ROLES_SCRIPT)], env=env, capture_output=True, text=True, timeout=120)


def test_role_job_creates_each_layers_role_and_database_as_a_non_superuser_admin(server):
    rec = evaluate("eks")  # postgres: managed (RDS)
    env = job_env(rec, server)
    admin, admin_pw = env["PGUSER"], env["PGPASSWORD"]
    created = psql(server, "postgres", SUPERUSER_PASSWORD,
                   f"CREATE ROLE {admin} LOGIN CREATEROLE CREATEDB PASSWORD '{admin_pw}'")
    assert created.returncode == 0, created.stderr
    roles = env["ROLES"].split()
    assert set(roles) == {"mlflow", "feast"}

    for attempt in (1, 2):  # the Job may run again (a new digest, a retry): nothing breaks
        done = run_script(env)
        assert done.returncode == 0, f"run {attempt}: {done.stderr}"
        assert [line for line in done.stdout.splitlines() if line.endswith(": ready")] == \
            [f"role and database {r}: ready" for r in roles]

    for role in roles:
        who = psql(server, role, env[f"PASSWORD_{role.upper()}"], "SELECT current_user, current_database()", db=role)
        assert who.returncode == 0 and who.stdout.strip() == f"{role}|{role}", who.stderr
        owner = psql(server, admin, admin_pw,
                     f"SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = '{role}'")
        assert owner.stdout.strip() == role
        # The role owns its database: it can create its schema objects (MLflow and Feast migrations do).
        ddl = psql(server, role, env[f"PASSWORD_{role.upper()}"], "CREATE TABLE t (i int); DROP TABLE t", db=role)
        assert ddl.returncode == 0, ddl.stderr
    superuser = psql(server, admin, admin_pw, f"SELECT rolsuper FROM pg_roles WHERE rolname = '{admin}'")
    assert superuser.stdout.strip() == "f"  # the script never needed a superuser


def test_role_job_rotates_a_password(server):
    rec = evaluate("eks")
    env = job_env(rec, server)
    psql(server, "postgres", SUPERUSER_PASSWORD,
         f"CREATE ROLE {env['PGUSER']} LOGIN CREATEROLE CREATEDB PASSWORD '{env['PGPASSWORD']}'")
    assert run_script(env).returncode == 0
    old = env["PASSWORD_MLFLOW"]
    rotated = {**env, "PASSWORD_MLFLOW": old + "-rotated"}
    assert run_script(rotated).returncode == 0
    assert psql(server, "mlflow", old + "-rotated", "SELECT 1", db="mlflow").returncode == 0
    assert psql(server, "mlflow", old, "SELECT 1", db="mlflow").returncode != 0


# -- extensions (the vectors layer asks for pgvector in each team's database) ---------------------------------

VECTOR_CONTROL = BIN.parent / "share" / "postgresql" / "extension" / "vector.control"
needs_pgvector = pytest.mark.skipif(not VECTOR_CONTROL.exists(),
                                    reason=f"this pgserver build ships no pgvector ({VECTOR_CONTROL} is missing)")


def _vectors_env(server: str) -> dict[str, str]:
    env = job_env(evaluate("eks", with_vectors("eks")), server)  # RDS; the vectors layer on
    assert env["ROLES"].split() == ["feast", "mlflow", "vectors_research"]
    assert env["EXTENSIONS_VECTORS_RESEARCH"] == "vector"
    return env


@needs_pgvector
def test_role_job_creates_the_vector_extension_where_the_admin_may(server):
    """pgvector is not a "trusted" extension: only a superuser, or RDS's rds_superuser / Cloud SQL's
    cloudsqlsuperuser for the extensions the cloud supports, may create it. A local server has no such
    cloud role, so the admin here is a superuser; what the test checks is the script's statement, its
    database, its idempotency and that the team's role can use the type."""
    env = _vectors_env(server)
    admin, admin_pw = env["PGUSER"], env["PGPASSWORD"]
    created = psql(server, "postgres", SUPERUSER_PASSWORD, f"CREATE ROLE {admin} LOGIN SUPERUSER PASSWORD '{admin_pw}'")
    assert created.returncode == 0, created.stderr
    for attempt in (1, 2):
        done = run_script(env)
        assert done.returncode == 0, f"run {attempt}: {done.stderr}"
        assert "extension vector in database vectors_research: present" in done.stdout.splitlines()
    role, pw = "vectors_research", env["PASSWORD_VECTORS_RESEARCH"]
    version = psql(server, role, pw, "SELECT extversion FROM pg_extension WHERE extname = 'vector'", db=role)
    assert version.returncode == 0 and version.stdout.strip(), version.stderr
    nearest = psql(server, role, pw, "CREATE TABLE items (id int PRIMARY KEY, embedding vector(3)); "
                                     "INSERT INTO items VALUES (1, '[1,2,3]'), (2, '[4,5,6]'); "
                                     "SELECT id FROM items ORDER BY embedding <-> '[3,1,2]' LIMIT 1", db=role)
    assert nearest.returncode == 0 and nearest.stdout.split()[-1] == "1", nearest.stderr
    # only the database that asked for it has the extension
    other = psql(server, admin, admin_pw, "SELECT count(*) FROM pg_extension WHERE extname = 'vector'", db="mlflow")
    assert other.stdout.strip() == "0"


@needs_pgvector
def test_role_job_fails_clearly_when_the_admin_may_not_create_the_extension(server):
    """A plain CREATEROLE CREATEDB admin (neither a superuser nor a cloud's superuser role) creates the roles and
    databases, then stops at the extension with PostgreSQL's reason and the script's own line."""
    env = _vectors_env(server)
    admin, admin_pw = env["PGUSER"], env["PGPASSWORD"]
    psql(server, "postgres", SUPERUSER_PASSWORD, f"CREATE ROLE {admin} LOGIN CREATEROLE CREATEDB PASSWORD '{admin_pw}'")
    done = run_script(env)
    assert done.returncode != 0
    assert 'permission denied to create extension "vector"' in done.stderr
    assert f"extension vector in database vectors_research: CREATE EXTENSION failed as {admin}" in done.stderr
    assert "role and database vectors_research: ready" in done.stdout.splitlines()
