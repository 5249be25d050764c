"""Smoke: the Kubeflow platform (kubeflow-platform layer) lets a team owner log in and keeps teams apart.

- Every team's Profile adopted the team namespace: the profile controller created the owner's
  `namespaceAdmin` RoleBinding and `ns-owner-access-istio` AuthorizationPolicy there.
- A client Job in `istio-system` (the ingress gateway admits only its own namespace) logs in as the
  first team's owner through the gateway: oauth2-proxy -> Dex's password form -> callback. The
  dashboard's `env-info` then lists the team namespace for that user; the Jupyter web app lists the
  team's notebooks (200) and refuses the `kubeflow` namespace (403); without the session cookie the
  API answers 401.
The owner's password is the secret stack output `layer:kubeflow-platform` (read with the Pulumi CLI,
which CI has); the Job gets it from a temporary Secret, deleted afterwards.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest

from tests.smoke.helpers import MARKER, SMOKE_LABEL, client_job, client_result, run_job, unique_suffix

pytestmark = pytest.mark.smoke

CLIENT_IMAGE = "docker.io/burakince/mlflow:3.15.1"  # python with requests (as the model lifecycle tests use)
CLIENT_UID = 1001
GATEWAY_NS = "istio-system"

_LOGIN = '''
import html, json, re, sys
from urllib.parse import urljoin
import requests
base = "http://istio-ingressgateway.istio-system.svc.cluster.local"
email, own, other = sys.argv[1:4]
password = open("/login/password").read()
out = {}
anon = requests.get(base + "/api/workgroup/env-info", allow_redirects=False, timeout=30)
out["anonymous"] = anon.status_code
s = requests.Session()
r = s.get(base + "/oauth2/start?rd=%2F", timeout=60)
form = re.search(r'<form[^>]*action="([^"]+)"', r.text)
out["login_page"] = r.url
if form:
    r = s.post(urljoin(r.url, html.unescape(form.group(1))), data={"login": email, "password": password}, timeout=60)
    out["after_login"] = r.url
env = s.get(base + "/api/workgroup/env-info", timeout=30)
out["env_status"] = env.status_code
out["env"] = env.json() if env.headers.get("content-type", "").startswith("application/json") else env.text[:500]
out["own_notebooks"] = s.get(f"{base}/jupyter/api/namespaces/{own}/notebooks", timeout=30).status_code
out["other_notebooks"] = s.get(f"{base}/jupyter/api/namespaces/{other}/notebooks", timeout=30).status_code
print("@MARKER@" + json.dumps(out))
'''.replace("@MARKER@", MARKER)


def _owner_password(stack: str, email: str) -> str:
    if shutil.which("pulumi") is None:
        pytest.skip("reading the Kubeflow users' passwords needs the Pulumi CLI (stack output layer:kubeflow-platform)")
    done = subprocess.run(["pulumi", "stack", "output", "layer:kubeflow-platform", "--show-secrets", "--json",
                           "-s", stack], capture_output=True, text=True, timeout=120, env=os.environ)
    if done.returncode != 0:
        pytest.skip(f"pulumi stack output failed for stack {stack}: {done.stderr.strip()[-300:]}")
    return json.loads(done.stdout)["users"][email]


def _team(platform):
    platform.enabled_layer("kubeflow-platform")
    teams = platform.teams
    if not teams:
        pytest.skip("the stack has no teams, so no Kubeflow profiles")
    return teams


def test_profiles_adopt_the_team_namespaces(platform):
    rbac = platform.rbac
    for team in _team(platform):
        ns = team.namespace

        def adopted(ns=ns):
            names = {b.metadata.name for b in rbac.list_namespaced_role_binding(ns, _request_timeout=30).items}
            policies = platform.custom.list_namespaced_custom_object(
                "security.istio.io", "v1", ns, "authorizationpolicies", _request_timeout=30)["items"]
            have = {p["metadata"]["name"] for p in policies}
            return {"namespaceAdmin"} <= names and "ns-owner-access-istio" in have, \
                f"role bindings {sorted(names)}, authorization policies {sorted(have)}"

        platform.wait_until(adopted, f"profile {ns} adopts namespace {ns}", timeout=300)
        binding = rbac.read_namespaced_role_binding("namespaceAdmin", ns, _request_timeout=30)
        assert [s.name for s in binding.subjects] == [team.owner.lower()]


def test_owner_logs_in_and_sees_only_the_team_namespace(platform, jobs):
    team = _team(platform)[0]
    password = _owner_password(platform.stack, team.owner.lower())
    from kubernetes import client

    secret_name = f"smoke-kubeflow-login-{unique_suffix()}"
    platform.core.create_namespaced_secret(GATEWAY_NS, client.V1Secret(
        metadata=client.V1ObjectMeta(name=secret_name, labels=dict(SMOKE_LABEL)), string_data={"password": password}))
    try:
        job = client_job("kubeflow-login", CLIENT_IMAGE, ["python", "-c", _LOGIN, team.owner.lower(), team.namespace,
                                                          "kubeflow"], CLIENT_UID, deadline=300)
        pod = job["spec"]["template"]["spec"]
        pod["volumes"].append({"name": "login", "secret": {"secretName": secret_name}})
        pod["containers"][0]["volumeMounts"].append({"name": "login", "mountPath": "/login", "readOnly": True})
        what = f"Kubeflow login as {team.owner}"
        out = client_result(run_job(platform, jobs, GATEWAY_NS, job, what), what)
    finally:
        platform.core.delete_namespaced_secret(secret_name, GATEWAY_NS)
    assert out["anonymous"] in (401, 403), f"the dashboard API answered {out['anonymous']} without a login"
    assert out["env_status"] == 200, f"env-info after login: {out}"
    env = out["env"]
    assert env["user"] == team.owner.lower(), env
    assert team.namespace in {n["namespace"] for n in env["namespaces"]}, env
    assert out["own_notebooks"] == 200, out
    assert out["other_notebooks"] == 403, out
