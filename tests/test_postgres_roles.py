"""The managed-PostgreSQL role Job's script against a real PostgreSQL 16 server (pgserver's binaries).

RDS and Cloud SQL give the platform an admin that is *not* a superuser: a member of
`rds_superuser` / `cloudsqlsuperuser` with CREATEROLE and CREATEDB. The test makes such an admin on
a throwaway local server and runs addons/assets/postgres-roles.sh with the environment of the Job the
eks stack plans (every variable the Job sets, Secrets resolved to their mock values). Since
PostgreSQL 16, `CREATE DATABASE ... OWNER r` needs membership in `r`, which is what the script's
`GRANT` provides. Only TLS is off here (`PGSSLMODE=disable`): the local server has no certificate.
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
