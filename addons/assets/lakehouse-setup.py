"""Set up the lakehouse's Iceberg catalog in Apache Polaris through its management and catalog REST APIs.

Runs in a Job after the Polaris release (the realm is bootstrapped before the server starts), with the
plan the program generated in /plan/plan.json (a Secret: it holds the root and principals' credentials):

- the catalog (its storage: S3 or GCS, allowed locations, endpoint);
- namespaces other layers share (Feast's temporary tables);
- per principal: the principal with the client id and secret the program generated (set with Polaris'
  credential reset), a principal role and a catalog role of the same name, the role assignments, its
  grants (catalog-wide, or on its own Iceberg namespace, which is created);

Every step is idempotent: what exists is kept (HTTP 409), credentials are set again, grants re-added, so
the Job can run again whenever the plan changes. Standard library only.
"""

from __future__ import annotations

import json
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

PLAN = os.environ.get("PLAN", "/plan/plan.json")
TIMEOUT = float(os.environ.get("SETUP_TIMEOUT", "600"))  # seconds to wait for the server's first token


class Polaris:
    def __init__(self, base: str, realm: str):
        self.base = base.rstrip("/")
        self.realm = realm
        self.token = ""

    def call(self, method: str, path: str, body: Any = None, form: dict[str, str] | None = None,
             ok: tuple[int, ...] = (200, 201, 204)) -> tuple[int, Any]:
        headers = {"Polaris-Realm": self.realm, "Accept": "application/json"}
        data = None
        if form is not None:
            data = urllib.parse.urlencode(form).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        elif body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        req = urllib.request.Request(self.base + path, data=data, headers=headers, method=method)
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                status, raw = resp.status, resp.read()
        except urllib.error.HTTPError as exc:
            status, raw = exc.code, exc.read()
        payload = json.loads(raw) if raw else None
        if status not in ok:
            raise RuntimeError(f"{method} {path}: HTTP {status}: {raw[:500]!r}")
        return status, payload

    def login(self, client_id: str, client_secret: str) -> None:
        _, payload = self.call("POST", "/api/catalog/v1/oauth/tokens", form={
            "grant_type": "client_credentials", "client_id": client_id, "client_secret": client_secret,
            "scope": "PRINCIPAL_ROLE:ALL"})
        self.token = payload["access_token"]

    def create(self, path: str, body: Any) -> bool:
        """POST, keeping what exists: True when created."""
        status, _ = self.call("POST", path, body, ok=(200, 201, 204, 409))
        return status != 409

    def put(self, path: str, body: Any) -> None:
        self.call("PUT", path, body, ok=(200, 201, 204, 409))


def wait_for_login(api: Polaris, client_id: str, client_secret: str) -> None:
    deadline = time.monotonic() + TIMEOUT
    while True:
        try:
            api.login(client_id, client_secret)
            return
        except (OSError, RuntimeError) as exc:  # not serving yet, or the realm still settling
            if time.monotonic() > deadline:
                raise RuntimeError(f"no token from {api.base} after {TIMEOUT:.0f}s: {exc}") from exc
            print(f"waiting for Polaris: {exc}", flush=True)
            time.sleep(5)


def setup(plan: dict[str, Any]) -> list[str]:
    api = Polaris(plan["polaris"], plan["realm"])
    wait_for_login(api, plan["root"]["clientId"], plan["root"]["clientSecret"])
    mgmt = "/api/management/v1"
    catalog = plan["catalog"]
    name = catalog["name"]
    done = []
    if api.create(f"{mgmt}/catalogs", {"catalog": catalog}):
        done.append(f"catalog {name} created")
    else:  # keep its storage settings current (an endpoint or a location may have changed)
        _, current = api.call("GET", f"{mgmt}/catalogs/{name}")
        api.call("PUT", f"{mgmt}/catalogs/{name}", {
            "currentEntityVersion": current["entityVersion"], "properties": catalog["properties"],
            "storageConfigInfo": catalog["storageConfigInfo"]})
        done.append(f"catalog {name} updated")
    for namespace in plan.get("namespaces", []):  # shared ones other layers use (Feast's temporary tables)
        if api.create(f"/api/catalog/v1/{name}/namespaces", {"namespace": [namespace], "properties": {}}):
            done.append(f"namespace {namespace} created")
    for p in plan["principals"]:
        who = p["name"]
        api.create(f"{mgmt}/principals", {"principal": {"name": who}, "credentialRotationRequired": False})
        # The program's credentials, set again on every run (Polaris keeps only a hash of the secret).
        api.call("POST", f"{mgmt}/principals/{who}/reset", {"clientId": p["clientId"],
                                                             "clientSecret": p["clientSecret"]})
        api.create(f"{mgmt}/principal-roles", {"principalRole": {"name": who}})
        api.put(f"{mgmt}/principals/{who}/principal-roles", {"principalRole": {"name": who}})
        api.create(f"{mgmt}/catalogs/{name}/catalog-roles", {"catalogRole": {"name": who}})
        api.put(f"{mgmt}/principal-roles/{who}/catalog-roles/{name}", {"catalogRole": {"name": who}})
        for privilege in p.get("catalogGrants", []):
            api.put(f"{mgmt}/catalogs/{name}/catalog-roles/{who}/grants",
                    {"grant": {"type": "catalog", "privilege": privilege}})
        namespace = p.get("namespace")
        if namespace:
            api.create(f"/api/catalog/v1/{name}/namespaces", {"namespace": [namespace], "properties": {}})
            for privilege in p.get("namespaceGrants", []):
                api.put(f"{mgmt}/catalogs/{name}/catalog-roles/{who}/grants",
                        {"grant": {"type": "namespace", "namespace": [namespace], "privilege": privilege}})
        done.append(f"principal {who}" + (f" on namespace {namespace}" if namespace else ""))
    return done


def main() -> int:
    with open(PLAN, encoding="utf-8") as f:
        plan = json.load(f)
    for line in setup(plan):
        print(line, flush=True)
    print("lakehouse catalog ready", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
