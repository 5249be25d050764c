"""Smoke: JupyterHub answers and spawns a CPU notebook for a user, and for a team member in the
team's namespace.

The hub's REST API answers through the proxy (`GET /hub/api` on the `proxy-public` Service through
the API server's service proxy) and on its own port, with JupyterHub 5. Then, as an admin, the test
creates a scratch user, starts its server with a CPU profile, waits until the hub reports it ready,
checks the notebook pod (profile limits; `MLFLOW_TRACKING_URI` when the mlflow layer is enabled) and
that the server answers `GET /user/<name>/api` through the proxy, and finally deletes the server,
the user (and with it the home PVC) and the API token it used. The team test first adds the scratch
user to the first team's JupyterHub group (native auth only) and expects the server, with the same
checks, in `team-<name>`.

No credential is configured for this: a short-lived API token with just the scopes the test needs
is minted for an existing admin user (`cnai:layers.jupyterhub.admins`; the hub puts its admins into
its database at startup) by a Python snippet run in the hub container, with JupyterHub's own
`jupyterhub.orm` against the hub's SQLite database (`APIToken.new`, the call behind `jupyterhub
token <user>`, which does not set an expiry nor limit scopes). The token never leaves memory: it
reaches the in-pod HTTP client on its stdin, never on a command line, in the environment or in a
log. Users are created through the REST API only, never in the database behind the running hub's
back (the hub caches users). HTTP calls that need the token run in the hub container (`python3`
with urllib against http://localhost:8081/hub/api, which the hub's NetworkPolicy leaves open).

Over 300 lines: one story, a user logging in and running a notebook against the platform's
services, whose steps share the hub session.
"""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

import pytest

from tests.smoke.helpers import MARKER, pod_ready, pod_summary

pytestmark = pytest.mark.smoke

HUB_CONTAINER = "hub"
NOTEBOOK_CONTAINER = "notebook"  # KubeSpawner's container name
HUB_SELECTOR = "component=hub"
HUB_API = "http://localhost:8081/hub/api"  # from inside the hub container
HUB_DB = "/srv/jupyterhub/jupyterhub.sqlite"  # hub.db.type sqlite-pvc: the hub's working directory
PROXY_SERVICE = "proxy-public"
PROXY_PORT = 80
TOKEN_TTL = 1800  # seconds: the minted token expires on its own even if cleanup never runs
EXEC_TIMEOUT = 90.0
CLEANUP_SECONDS = 240
CPU_PROFILE = "cpu-small"
_HEX32 = re.compile(r"[0-9a-fA-F]{32}")  # the shape of a generated JupyterHub token


def _scopes(admin: str) -> list[str]:
    """What the test does with the token, no more: manage users, servers and group membership (the
    team test), reach the user's server through the proxy, and delete the token itself."""
    return ["admin:users", "admin:servers", "access:servers", "admin:groups", f"tokens!user={admin}"]


# ---------------------------------------------------------------------------------------------
# In-pod scripts (python3 -c SCRIPT args...), run in the hub container

# Mint an API token for the first of the given admins found in the hub database.
MINT_SCRIPT = '''
import json, os, sys

def report(result, code=0):
    print("CNAI-SMOKE-RESULT " + json.dumps(result, default=str), flush=True)
    sys.exit(code)

path, admins, note = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3]
ttl, scopes = int(sys.argv[4]), json.loads(sys.argv[5])
if not os.path.exists(path):  # never let SQLAlchemy create an empty database elsewhere
    report({"error": f"no hub database at {path}"}, 1)
try:
    import jupyterhub
    from jupyterhub import orm
    db = orm.new_session_factory(f"sqlite:///{path}", connect_args={"check_same_thread": False, "timeout": 30})()
except Exception as exc:
    report({"error": f"cannot open the hub database {path}: {type(exc).__name__}: {exc}"}, 1)
user = next((u for u in (orm.User.find(db, name) for name in admins) if u is not None), None)
if user is None:
    known = [u.name for u in db.query(orm.User).all() if getattr(u, "admin", False)]
    report({"error": f"none of the admins {admins} is a user in the hub database", "admins_in_db": known}, 1)
admin = user.name
scopes = [s.replace("{admin}", admin) for s in scopes]
try:
    token = user.new_api_token(note=note, expires_in=ttl, scopes=scopes)
except Exception as exc:
    report({"error": f"cannot create a token for {admin} with scopes {scopes}: {type(exc).__name__}: {exc}"}, 1)
found = orm.APIToken.find(db, token)
report({"admin": admin, "token_id": found.api_id if found is not None else None, "token": token,
        "hub_version": jupyterhub.__version__})
'''

# Revoke a token by id in the database: the fallback when the REST API cannot delete it.
REVOKE_SCRIPT = '''
import json, sys
from jupyterhub import orm

path, token_id = sys.argv[1], sys.argv[2]
db = orm.new_session_factory(f"sqlite:///{path}", connect_args={"check_same_thread": False, "timeout": 30})()
n = db.query(orm.APIToken).filter_by(id=int(token_id[1:])).delete()
db.commit()
print("CNAI-SMOKE-RESULT " + json.dumps({"deleted": n}), flush=True)
'''

# One HTTP request; the token (possibly empty) arrives on stdin. Redirects are reported, not followed.
HTTP_SCRIPT = '''
import json, sys, urllib.error, urllib.request

token = sys.stdin.readline().strip()
method, url, body = sys.argv[1], sys.argv[2], sys.argv[3]

class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None

headers = {"Accept": "application/json"}
if token:
    headers["Authorization"] = "token " + token
data = body.encode() if body else None
if data is not None:
    headers["Content-Type"] = "application/json"
req = urllib.request.Request(url, data=data, method=method, headers=headers)
result = {"method": method, "url": url}
try:
    with urllib.request.build_opener(NoRedirect).open(req, timeout=30) as resp:
        status, text = resp.status, resp.read().decode("utf-8", "replace")
except urllib.error.HTTPError as exc:
    status, text = exc.code, exc.read().decode("utf-8", "replace")
    result["location"] = exc.headers.get("Location")
except Exception as exc:
    result["error"] = f"{type(exc).__name__}: {exc}"
    print("CNAI-SMOKE-RESULT " + json.dumps(result), flush=True)
    sys.exit(0)
result["status"] = status
try:
    result["json"] = json.loads(text) if text.strip() else None
except ValueError:
    result["text"] = text[:2000]
print("CNAI-SMOKE-RESULT " + json.dumps(result), flush=True)
'''


# ---------------------------------------------------------------------------------------------
# Helpers


@pytest.fixture(scope="module")
def hub_layer(platform):
    return platform.enabled_layer("jupyterhub")


def _redact(text: str, token: str | None = None) -> str:
    text = text.replace(token, "<token>") if token else text
    return _HEX32.sub("<redacted>", text)


def _hub_pod(platform, namespace: str) -> str:
    """The name of a Ready hub pod, waiting for one (a hub restarting after an upgrade)."""
    holder: dict[str, str] = {}

    def ready():
        pods = platform.core.list_namespaced_pod(namespace, label_selector=HUB_SELECTOR, _request_timeout=30).items
        good = sorted((p for p in pods if pod_ready(p)), key=lambda p: p.status.start_time)
        if not good:
            return False, f"no Ready hub pod ({HUB_SELECTOR}): {[pod_summary(p) for p in pods] or 'none'}"
        holder["name"] = good[-1].metadata.name
        return True, holder["name"]

    platform.wait_until(ready, f"a Ready JupyterHub hub pod in {namespace}", timeout=min(platform.timeout, 300),
                        diagnose=lambda: f"events in {namespace}:\n{platform.events(namespace)}")
    return holder["name"]


def _result(output: str) -> dict[str, Any] | None:
    lines = [line[len(MARKER):] for line in output.splitlines() if line.startswith(MARKER)]
    if not lines:
        return None
    try:
        return json.loads(lines[-1])
    except ValueError:
        return None


class Hub:
    """HTTP calls made from inside the hub container; the token is handed over on stdin."""

    def __init__(self, platform, namespace: str):
        self.platform, self.namespace = platform, namespace
        self.pod = _hub_pod(platform, namespace)

    def request(self, method: str, url: str, body: Any = None, token: str | None = None) -> dict[str, Any]:
        """{status, json | text, location} of one request, or raise RuntimeError (retried while polling)."""
        payload = json.dumps(body) if body is not None else ""
        try:
            code, out = self.platform.exec(self.namespace, self.pod, HUB_CONTAINER,
                                           ["python3", "-c", HTTP_SCRIPT, method, url, payload],
                                           stdin=(token or "") + "\n", timeout=EXEC_TIMEOUT)
        except Exception as exc:  # noqa: BLE001 - the hub pod may have been replaced: find it again next time
            self.pod = _hub_pod(self.platform, self.namespace)
            raise RuntimeError(f"{method} {url}: exec in the hub pod failed: {type(exc).__name__}: {exc}"[:500])
        r = _result(out)
        if code != 0 or r is None:
            raise RuntimeError(f"{method} {url}: in-pod client exit {code}: {_redact(out, token)[-1500:]}")
        if r.get("error"):
            raise RuntimeError(f"{method} {url}: {r['error']}")
        return r

    def api(self, method: str, path: str, body: Any = None, token: str | None = None) -> dict[str, Any]:
        return self.request(method, f"{HUB_API}{path}", body, token)

    def proxy_url(self, path: str) -> str:
        return f"http://{PROXY_SERVICE}.{self.namespace}.svc.cluster.local:{PROXY_PORT}{path}"

    def diagnose(self, extra: str = "") -> str:
        logs = self.platform.pod_logs(self.namespace, self.pod, 60, container=HUB_CONTAINER)
        return (f"hub logs ({self.namespace}/{self.pod}):\n{logs}"
                f"\nrecent events in {self.namespace}:\n{self.platform.events(self.namespace, limit=20)}{extra}")


def _show(r: dict[str, Any]) -> str:
    body = r.get("json") if "json" in r else r.get("text")
    loc = f" -> {r['location']}" if r.get("location") else ""
    return f"HTTP {r.get('status')}{loc}: {json.dumps(body)[:800] if body is not None else '<empty>'}"


def _version(r: dict[str, Any]) -> str | None:
    body = r.get("json")
    return body.get("version") if isinstance(body, dict) else None


def _through_service_proxy(platform, namespace: str, path: str) -> tuple[int, Any]:
    """GET `path` on the proxy-public Service through the API server's service proxy: (status, JSON body).

    The client quotes the path (`hub%2Fapi`); the API server splits the decoded URL path, so it arrives
    as /hub/api."""
    from kubernetes.client.exceptions import ApiException

    try:
        resp = platform.core.connect_get_namespaced_service_proxy_with_path(
            f"{PROXY_SERVICE}:{PROXY_PORT}", namespace, path.lstrip("/"), _preload_content=False,
            _request_timeout=30)
        status, data = resp.status, resp.data
    except ApiException as exc:
        status, data = exc.status, exc.body or b""
    except Exception as exc:  # noqa: BLE001 - no answer at all: the caller falls back to an in-cluster client
        return 0, f"{type(exc).__name__}: {exc}"[:300]
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else str(data)
    try:
        return status, json.loads(text)
    except ValueError:
        return status, text[:500]


# ---------------------------------------------------------------------------------------------
# Tests


def test_hub_api_answers(platform, hub_layer):
    """GET /hub/api answers with JupyterHub 5 on the hub itself and through the proxy."""
    ns = hub_layer.namespace
    hub = Hub(platform, ns)

    seen: dict[str, Any] = {}

    def direct():
        r = hub.api("GET", "")
        seen["version"] = _version(r)
        return r.get("status") == 200 and seen["version"] is not None, _show(r)

    platform.wait_until(direct, f"GET {HUB_API} in {ns}/{hub.pod}", timeout=120, interval=3, diagnose=hub.diagnose)
    assert str(seen["version"]).startswith("5."), (
        f"the hub in {ns} runs JupyterHub {seen['version']}, expected 5.x (chart 4.4.0)")

    # Through the proxy (configurable-http-proxy routes /hub/ to the hub): the users' way in.
    where = f"API server service proxy to {ns}/{PROXY_SERVICE}:{PROXY_PORT}"
    status, body = _through_service_proxy(platform, ns, "/hub/api")
    if status != 200 or not isinstance(body, dict):
        # Some control planes cannot reach the pod network; ask from inside the cluster instead.
        first = f"{where}: HTTP {status}: {str(body)[:300]}"
        where = f"{hub.proxy_url('/hub/api')} from the hub pod (the service proxy answered {first})"
        r = hub.request("GET", hub.proxy_url("/hub/api"))
        status, body = r.get("status"), r.get("json") if "json" in r else r.get("text")
    assert status == 200 and isinstance(body, dict), f"GET /hub/api via {where}: HTTP {status}: {str(body)[:800]}"
    assert str(body.get("version", "")).startswith("5."), (
        f"GET /hub/api via {where} reports version {body.get('version')!r}, expected 5.x: {body}")


def _cpu_profile(layer):
    profiles = layer.profiles()
    chosen = next((p for p in profiles if p.slug == CPU_PROFILE), None) or next(
        (p for p in profiles if not p.gpus), None)
    if chosen is None:
        pytest.skip(f"cnai:layers.jupyterhub.profiles has no CPU-only profile: {[p.slug for p in profiles]}")
    return chosen


def _mint(hub: Hub, admins: list[str], note: str) -> tuple[str, str, str]:
    """(token, token id, admin name): a short-lived, scoped token for an admin, minted in the hub pod."""
    args = ["python3", "-c", MINT_SCRIPT, HUB_DB, json.dumps(admins), note, str(TOKEN_TTL),
            json.dumps(_scopes("{admin}"))]
    code, out = hub.platform.exec(hub.namespace, hub.pod, HUB_CONTAINER, args, timeout=EXEC_TIMEOUT)
    r = _result(out) or {}
    token = r.get("token")
    if code != 0 or not token or not r.get("token_id"):
        shown = {k: v for k, v in r.items() if k != "token"}
        pytest.fail(f"minting an admin API token in {hub.namespace}/{hub.pod} (exit {code}): {shown}\n"
                    f"{_redact(out, token)[-2000:]}", pytrace=False)
    return token, r["token_id"], r["admin"]


def _server(model: dict[str, Any] | None) -> dict[str, Any] | None:
    return ((model or {}).get("servers") or {}).get("")


def test_spawn_cpu_notebook(platform, hub_layer):
    """An admin creates a user and starts its server with a CPU profile: it becomes ready, runs the
    profile's limits and the platform's environment, and answers through the proxy; everything the
    test created is deleted afterwards."""
    _spawn_and_check(platform, hub_layer, team=None)


def test_team_member_notebook_runs_in_the_team_namespace(platform, hub_layer):
    """The same for a member of the first team's group: the server runs in the team's namespace."""
    teams = platform.teams if hub_layer.options.teamNamespaces else []
    if not teams:
        pytest.skip("no teams, or cnai:layers.jupyterhub.teamNamespaces is false")
    if hub_layer.options.auth != "native":
        pytest.skip("with oidc the identity provider manages JupyterHub groups; the test cannot join one")
    _spawn_and_check(platform, hub_layer, team=teams[0])


def _spawn_and_check(platform, hub_layer, team) -> None:
    from modules.shared.config import quantity

    ns = hub_layer.namespace
    profile = _cpu_profile(hub_layer)
    hub = Hub(platform, ns)
    user = f"cnai-smoke-{uuid.uuid4().hex[:8]}"
    token, token_id, admin = _mint(hub, sorted(hub_layer.options.admins), f"cnai-smoke {user}")
    expected_ns = team.namespace if team is not None else ns
    state: dict[str, Any] = {"created": False, "pod": None, "pod_ns": expected_ns, "pvc": None}
    passed = False
    try:
        r = hub.api("POST", f"/users/{user}", token=token)
        assert r.get("status") == 201, f"POST /hub/api/users/{user} as {admin}: {_show(r)}"
        state["created"] = True
        options: dict[str, Any] = {"profile": profile.slug}
        if team is not None:
            r = hub.api("POST", f"/groups/{team.rbac_group}/users", {"users": [user]}, token=token)
            assert r.get("status") == 200, f"POST /hub/api/groups/{team.rbac_group}/users: {_show(r)}"
            options["team"] = team.name

        r = hub.api("POST", f"/users/{user}/server", options, token=token)
        assert r.get("status") in (201, 202), (
            f"POST /hub/api/users/{user}/server with {options}: {_show(r)}")

        def user_pods() -> str:
            try:
                pods = platform.core.list_namespaced_pod(
                    state["pod_ns"], label_selector=f"hub.jupyter.org/username={user}", _request_timeout=20).items
            except Exception as exc:  # noqa: BLE001 - diagnostics only
                return f"\n<user pods not listed: {exc}>"[:300]
            return "".join(f"\npod {pod_summary(p)}:\n{platform.events(p.metadata.namespace, p.metadata.name)}\n"
                           + platform.pod_logs(p.metadata.namespace, p.metadata.name, 30, container=NOTEBOOK_CONTAINER)
                           for p in pods) or f"\nno pods of user {user} in {state['pod_ns']}"

        def diagnose() -> str:
            return hub.diagnose(user_pods())

        def ready():
            r = hub.api("GET", f"/users/{user}", token=token)
            assert r.get("status") == 200, f"GET /hub/api/users/{user}: {_show(r)}"
            server = _server(r.get("json"))
            if server is None:
                pytest.fail(f"the server of {user} (profile {profile.slug}) is gone: the spawn failed\n"
                            f"{diagnose()}", pytrace=False)
            spawner_state = server.get("state") or {}
            state["pod"] = spawner_state.get("pod_name") or state["pod"]
            state["pod_ns"] = spawner_state.get("namespace") or state["pod_ns"]
            state["pvc"] = spawner_state.get("pvc_name") or state["pvc"]
            return bool(server.get("ready")), (f"ready={server.get('ready')} pending={server.get('pending')} "
                                               f"pod={state['pod']} url={server.get('url')}")

        platform.wait_until(ready, f"server of JupyterHub user {user} (profile {profile.slug}) ready", interval=5,
                            diagnose=diagnose)

        # The notebook pod: where it runs, the profile's limits and the platform's wiring.
        pod_ns = state["pod_ns"]  # the spawner's own record (admin:servers includes admin:server_state)
        assert pod_ns == expected_ns, f"the server of {user} runs in {pod_ns}, expected {expected_ns}"
        if state["pod"]:
            pod = platform.core.read_namespaced_pod(state["pod"], pod_ns, _request_timeout=30)
        else:
            pods = platform.core.list_namespaced_pod(
                pod_ns, label_selector=f"component=singleuser-server,hub.jupyter.org/username={user}",
                _request_timeout=30).items
            assert len(pods) == 1, f"expected one notebook pod of {user} in {pod_ns}: {[pod_summary(p) for p in pods]}"
            pod = pods[0]
            state["pod"] = pod.metadata.name
        container = next((c for c in pod.spec.containers if c.name == NOTEBOOK_CONTAINER), pod.spec.containers[0])
        limits = (container.resources.limits or {}) if container.resources else {}
        where = f"notebook pod {pod_ns}/{pod.metadata.name}"
        assert "cpu" in limits and quantity(limits["cpu"]) == quantity(str(profile.cpu)), (
            f"{where}: CPU limit {limits.get('cpu')}, profile {profile.slug} sets {profile.cpu}")
        assert "memory" in limits and quantity(limits["memory"]) == quantity(profile.memory), (
            f"{where}: memory limit {limits.get('memory')}, profile {profile.slug} sets {profile.memory}")
        assert "nvidia.com/gpu" not in limits, f"{where}: CPU profile {profile.slug} got GPUs: {limits}"
        env = {e.name: e.value for e in container.env or []}
        mlflow = platform.layer("mlflow")
        if mlflow is not None:
            assert env.get("MLFLOW_TRACKING_URI") == mlflow.tracking_uri, (
                f"{where}: MLFLOW_TRACKING_URI={env.get('MLFLOW_TRACKING_URI')!r}, the mlflow layer serves "
                f"{mlflow.tracking_uri!r}")

        # The user's server answers through the proxy (the route the hub added), with the admin's token.
        url = hub.proxy_url(f"/user/{user}/api")

        def answers():
            r = hub.request("GET", url, token=token)
            return r.get("status") == 200 and _version(r) is not None, _show(r)

        platform.wait_until(answers, f"GET {url} (from the hub pod)", timeout=120, interval=3, diagnose=diagnose)
        passed = True
    finally:
        problems = _cleanup(platform, hub, token, token_id, admin, user, state)
        if problems and passed:
            pytest.fail(f"cleanup after the spawn test: {'; '.join(problems)}", pytrace=False)


def _cleanup(platform, hub: Hub, token: str, token_id: str, admin: str, user: str,
             state: dict[str, Any]) -> list[str]:
    """Stop the server, delete the user (KubeSpawner deletes its home PVC) and the token; best effort,
    every step tried; returns what did not work."""
    from kubernetes.client.exceptions import ApiException

    problems: list[str] = []

    def step(what: str, fn) -> None:
        try:
            fn()
        except (Exception, pytest.fail.Exception) as exc:  # noqa: BLE001 - keep cleaning up
            problems.append(f"{what}: {_redact(str(exc), token)[:600]}")

    def wait(check, what: str) -> None:
        platform.wait_until(check, what, timeout=CLEANUP_SECONDS, interval=3)

    if state["created"]:
        def stop():
            r = hub.api("DELETE", f"/users/{user}/server", token=token)
            assert r.get("status") in (202, 204, 404), f"DELETE /hub/api/users/{user}/server: {_show(r)}"

            def stopped():
                r = hub.api("GET", f"/users/{user}", token=token)
                if r.get("status") == 404:
                    return True, "user gone"
                server = _server(r.get("json"))
                return server is None, f"server {server}"

            wait(stopped, f"server of {user} stopped")

        def delete_user():
            def deleted():
                r = hub.api("DELETE", f"/users/{user}", token=token)
                if r.get("status") in (204, 404):
                    return True, _show(r)
                assert r.get("status") == 400, f"DELETE /hub/api/users/{user}: {_show(r)}"  # 400: still stopping
                return False, _show(r)

            wait(deleted, f"JupyterHub user {user} deleted")
            r = hub.api("GET", f"/users/{user}", token=token)
            assert r.get("status") == 404, f"GET /hub/api/users/{user} after the delete: {_show(r)}"

        step(f"stop the server of {user}", stop)
        step(f"delete user {user}", delete_user)

        # The hub deletes the pod and (delete_forever) the home PVC; make sure, then remove what is left.
        def leftovers():
            selector = f"hub.jupyter.org/username={user}"
            ns = state["pod_ns"]

            def gone():
                pods = platform.core.list_namespaced_pod(ns, label_selector=selector, _request_timeout=30).items
                pvcs = platform.core.list_namespaced_persistent_volume_claim(ns, label_selector=selector,
                                                                             _request_timeout=30).items
                pvc_names = {c.metadata.name for c in pvcs}
                if state["pvc"]:
                    try:
                        platform.core.read_namespaced_persistent_volume_claim(state["pvc"], ns, _request_timeout=30)
                        pvc_names.add(state["pvc"])
                    except ApiException as exc:
                        if exc.status != 404:
                            raise
                names = {p.metadata.name for p in pods}
                return not names and not pvc_names, f"pods {sorted(names)}, PVCs {sorted(pvc_names)}"

            try:
                wait(gone, f"pod and home PVC of {user} removed by the hub")
            except pytest.fail.Exception:
                for p in platform.core.list_namespaced_pod(ns, label_selector=selector, _request_timeout=30).items:
                    platform.core.delete_namespaced_pod(p.metadata.name, ns, grace_period_seconds=0,
                                                        _request_timeout=30)
                pvcs = {c.metadata.name for c in platform.core.list_namespaced_persistent_volume_claim(
                    ns, label_selector=selector, _request_timeout=30).items}
                for name in pvcs | ({state["pvc"]} if state["pvc"] else set()):
                    try:
                        platform.core.delete_namespaced_persistent_volume_claim(name, ns, _request_timeout=30)
                    except ApiException as exc:
                        if exc.status != 404:
                            raise
                raise

        step(f"pod and PVC of {user}", leftovers)

    def revoke():
        try:
            r = hub.api("DELETE", f"/users/{admin}/tokens/{token_id}", token=token)
            assert r.get("status") in (204, 404), f"DELETE /hub/api/users/{admin}/tokens/{token_id}: {_show(r)}"
        except (Exception, pytest.fail.Exception):  # noqa: BLE001 - fall back to the database
            code, out = platform.exec(hub.namespace, hub.pod, HUB_CONTAINER,
                                      ["python3", "-c", REVOKE_SCRIPT, HUB_DB, token_id], timeout=EXEC_TIMEOUT)
            assert code == 0, f"token {token_id} of {admin} not revoked (it expires in {TOKEN_TTL}s): {out[-500:]}"

    step(f"revoke API token {token_id} of {admin}", revoke)
    return problems
