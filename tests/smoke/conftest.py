"""Smoke tests against a real cluster deployed from a stack (see docs/testing.md).

Expectations come from the stack file, exactly as the program reads it: `SMOKE_STACK` (default
`kind`) selects `stacks/Pulumi.<stack>.yaml`, the spec is resolved with `load_spec` and the enabled
layers with `resolve(spec)` (engine/program.py). The cluster is reached through the kubeconfig
(`KUBECONFIG`, else the stack's own kubeconfig path) and a context: `SMOKE_CONTEXT`, else the
stack's (`kind-<clusterName>` for kind, `cnai:existing.context`), else the current context.

When no cluster answers, every smoke test is skipped (never errors), so collecting this directory
in the offline suite is harmless. CI sets `SMOKE_REQUIRE_CLUSTER=1`, which turns that skip into a
failure: a broken kubeconfig must not pass as "all skipped".

Over 300 lines: the one session fixture every smoke test shares (cluster discovery, waits,
diagnostics); splitting it would scatter what a failing test prints.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # `pytest tests/smoke` (not `python -m pytest`) does not add the project root
    sys.path.insert(0, str(ROOT))

DOCS = "see docs/testing.md"


def _client():
    from kubernetes import client

    return client
DEFAULT_TIMEOUT = 600.0  # seconds to wait for pods, releases and devices (SMOKE_TIMEOUT overrides)
from tests.smoke.helpers import SMOKE_LABEL, pod_summary  # noqa: E402 - after the sys.path fix above

BUSYBOX = "registry.k8s.io/e2e-test-images/busybox:1.36.1-1"
CUDA = "nvcr.io/nvidia/cuda:12.9.1-base-ubuntu24.04"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "smoke: needs a real, deployed cluster (tests/smoke; skipped without one)")


# ---------------------------------------------------------------------------------------------
# The platform under test


@dataclass
class Platform:
    """The deployed stack: its resolved spec and enabled layers, and a client for its cluster."""

    stack: str
    spec: Any  # modules.config.PlatformSpec
    caps: Any  # modules.cluster.Capabilities
    layers: list[Any]  # addons.base.Layer, in dependency order
    api: Any  # kubernetes.client.ApiClient
    kubeconfig: str
    context: str
    timeout: float = DEFAULT_TIMEOUT
    _dynamic: Any = field(default=None, repr=False)

    # -- spec ------------------------------------------------------------------------------------
    def layer(self, name: str) -> Any | None:
        return next((lay for lay in self.layers if lay.name == name), None)

    def enabled_layer(self, name: str) -> Any:
        """The layer, or skip the test when the stack does not enable it."""
        layer = self.layer(name)
        if layer is None:
            pytest.skip(f"layer {name} is not enabled in stack {self.stack}")
        return layer

    @property
    def teams(self) -> list[Any]:
        return list(self.spec.teams) if self.layer("teams") else []

    # -- clients ---------------------------------------------------------------------------------
    # Typed API clients, built on demand from the session's ApiClient.
    core = property(lambda self: _client().CoreV1Api(self.api))
    batch = property(lambda self: _client().BatchV1Api(self.api))
    custom = property(lambda self: _client().CustomObjectsApi(self.api))
    rbac = property(lambda self: _client().RbacAuthorizationV1Api(self.api))
    networking = property(lambda self: _client().NetworkingV1Api(self.api))
    authz = property(lambda self: _client().AuthorizationV1Api(self.api))

    @property
    def dynamic(self):
        if self._dynamic is None:
            from kubernetes.dynamic import DynamicClient
            self._dynamic = DynamicClient(self.api)
        return self._dynamic

    # -- waiting ---------------------------------------------------------------------------------
    def wait_until(self, check: Callable[[], tuple[bool, str]], what: str, timeout: float | None = None,
                   interval: float = 5.0, diagnose: Callable[[], str] | None = None) -> str:
        """Poll `check` (returning (done, detail)) until done or the deadline; fail with the last detail.

        API errors while polling (a webhook restarting, a transient connection reset) are retried.
        `diagnose` adds context (events, logs) to the failure message.
        """
        from kubernetes.client.exceptions import ApiException

        timeout = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        detail = "not checked yet"
        while True:
            try:
                done, detail = check()
                if done:
                    return detail
            except AssertionError:
                raise
            except ApiException as exc:
                detail = f"API error {exc.status} {exc.reason}: {(exc.body or '')[:300]}"
            except Exception as exc:  # noqa: BLE001 - connection hiccups while polling
                detail = f"{type(exc).__name__}: {exc}"[:400]
            if time.monotonic() >= deadline:
                extra = f"\n{diagnose()}" if diagnose else ""
                pytest.fail(f"{what}: not done after {timeout:.0f}s; last state: {detail}{extra}", pytrace=False)
            time.sleep(interval)

    def exec(self, namespace: str, pod: str, container: str, command: list[str], stdin: str | None = None,
             timeout: float = 120) -> tuple[int | None, str]:
        """Run `command` in a container, feeding `stdin`; (exit code, stdout+stderr). None: still running."""
        from kubernetes.stream import stream

        resp = stream(self.core.connect_get_namespaced_pod_exec, pod, namespace, container=container,
                      command=command, stdin=stdin is not None, stdout=True, stderr=True, tty=False,
                      _preload_content=False)
        try:
            if stdin is not None:
                resp.write_stdin(stdin)
            resp.run_forever(timeout=timeout)
            code: int | None = None
            if not resp.is_open():
                try:
                    code = resp.returncode
                except Exception:  # noqa: BLE001 - no status on the error channel
                    code = -1
            return code, resp.read_all()
        finally:
            resp.close()

    # -- diagnostics -----------------------------------------------------------------------------
    def pod_logs(self, namespace: str, name: str, tail: int = 40, container: str | None = None) -> str:
        """Logs of a pod's container (`container` may be omitted for single-container pods)."""
        try:
            return self.core.read_namespaced_pod_log(name, namespace, container=container, tail_lines=tail,
                                                     _request_timeout=20)
        except Exception as exc:  # noqa: BLE001 - diagnostics only
            return f"<no logs: {exc}>"[:300]

    def pods_report(self, namespace: str, selector: str, container: str | None = None, tail: int = 30) -> str:
        """State, logs and events of the pods a label selector matches (failure messages)."""
        try:
            pods = self.core.list_namespaced_pod(namespace, label_selector=selector, _request_timeout=20).items
        except Exception as exc:  # noqa: BLE001 - diagnostics only
            return f"<pods {selector} not listed: {exc}>"[:300]
        if not pods:
            return f"no pods with {selector} in {namespace}"
        return "\n".join(f"pod {pod_summary(p)}:\n{self.pod_logs(namespace, p.metadata.name, tail, container)}\n"
                         f"events:\n{self.events(namespace, p.metadata.name, limit=8)}" for p in pods)

    def allowed(self, user: str, groups: list[str], namespace: str, verb: str = "create",
                resource: str = "pods", group: str = "") -> bool:
        """A SubjectAccessReview: may `user` in `groups` `verb` `resource` in `namespace`?"""
        from kubernetes import client

        review = client.V1SubjectAccessReview(spec=client.V1SubjectAccessReviewSpec(
            user=user, groups=groups,
            resource_attributes=client.V1ResourceAttributes(namespace=namespace, verb=verb, group=group,
                                                            resource=resource)))
        return bool(self.authz.create_subject_access_review(review, _request_timeout=30).status.allowed)

    def events(self, namespace: str, name: str | None = None, limit: int = 15) -> str:
        try:
            selector = f"involvedObject.name={name}" if name else None
            items = self.core.list_namespaced_event(namespace, field_selector=selector, _request_timeout=20).items
        except Exception as exc:  # noqa: BLE001 - diagnostics only
            return f"<no events: {exc}>"[:300]
        items = sorted(items, key=lambda e: str(e.last_timestamp or e.event_time or ""))[-limit:]
        return "\n".join(f"  {e.type} {e.reason} {e.involved_object.kind}/{e.involved_object.name}: {e.message}"
                         for e in items) or "  <none>"


# ---------------------------------------------------------------------------------------------
# Session setup: resolve the stack, find the cluster, skip everything when there is none


def _load_stack(stack: str):
    from engine.program import load_spec, resolve
    from tools.harness import stack_config

    platform = resolve(load_spec(stack_config(stack)[0], stack))
    return platform.spec, platform.caps, platform.layers


def _kubeconfig(spec) -> str | None:
    """The kubeconfig file: KUBECONFIG if set (the client reads it), else the stack's own path."""
    if os.environ.get("KUBECONFIG"):
        return None
    if spec is not None and spec.environment == "kind" and spec.kind.kubeconfigPath:
        return os.path.expanduser(spec.kind.kubeconfigPath)
    if spec is not None and spec.environment == "existing":
        return os.path.expanduser(spec.existing.kubeconfig)
    return None


def _wanted_context(spec) -> str:
    """SMOKE_CONTEXT, else the stack's own context ('' for "the kubeconfig's current context")."""
    if os.environ.get("SMOKE_CONTEXT"):
        return os.environ["SMOKE_CONTEXT"]
    if spec is not None and spec.environment == "kind":
        return f"kind-{spec.kind.clusterName}"
    if spec is not None and spec.environment == "existing":
        return spec.existing.context
    return ""


def _context(spec, contexts: list[str], active: str) -> str:
    wanted = _wanted_context(spec)
    if spec is not None and spec.environment == "kind" and not os.environ.get("SMOKE_CONTEXT") \
            and wanted not in contexts:
        return active  # kind's context renamed or merged elsewhere: fall back to the current one
    return wanted or active


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:240]


def _connect(spec) -> tuple[Any, str, str]:
    """(ApiClient, kubeconfig, context) for a cluster that answers, or pytest.skip with the reason."""
    from kubernetes import client, config

    config_file = _kubeconfig(spec)
    where = config_file or os.environ.get("KUBECONFIG") or "~/.kube/config"

    def skip(context: str, why: str):
        reason = (f"no Kubernetes cluster reachable (KUBECONFIG={where}, context={context or '<current>'}: "
                  f"{why}): smoke tests need a real cluster; {DOCS}")
        if os.environ.get("SMOKE_REQUIRE_CLUSTER", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"SMOKE_REQUIRE_CLUSTER is set and {reason}", pytrace=False)  # CI: never pass by skipping
        pytest.skip(reason)

    problem = ""
    try:
        listed, current = config.list_kube_config_contexts(config_file=config_file)
    except Exception as exc:  # noqa: BLE001 - missing or unreadable kubeconfig: nothing to test
        problem = _short(exc)
    if problem:
        skip(_wanted_context(spec), problem)
    names = [c["name"] for c in listed or []]
    context = _context(spec, names, (current or {}).get("name", ""))
    if context not in names:
        skip(context, f"context {context!r} not in the kubeconfig (has: {', '.join(names) or 'none'})")

    def make(retries: int | None) -> Any:
        cfg = client.Configuration()
        config.load_kube_config(config_file=config_file, context=context, client_configuration=cfg,
                                persist_config=False)
        cfg.retries = retries
        return client.ApiClient(cfg)

    try:
        probe = make(0)
        try:
            client.VersionApi(probe).get_code(_request_timeout=(3, 10))
        finally:
            probe.close()
    except Exception as exc:  # noqa: BLE001 - any failure to talk to the API server means "no cluster"
        problem = _short(exc)
    if problem:
        skip(context, problem)
    return make(None), where, context


@pytest.fixture(scope="session")
def platform() -> Platform:
    stack = os.environ.get("SMOKE_STACK", "kind")
    spec = caps = planned = None
    spec_error: Exception | None = None
    try:
        spec, caps, planned = _load_stack(stack)
    except Exception as exc:  # noqa: BLE001 - reported below, once a cluster is known to be there
        spec_error = exc
    api, kubeconfig, context = _connect(spec)
    if spec_error is not None:
        api.close()
        pytest.fail(f"SMOKE_STACK={stack}: cannot resolve stacks/Pulumi.{stack}.yaml: {spec_error}", pytrace=False)
    timeout = float(os.environ.get("SMOKE_TIMEOUT", DEFAULT_TIMEOUT))
    p = Platform(stack=stack, spec=spec, caps=caps, layers=planned, api=api, kubeconfig=kubeconfig,
                 context=context, timeout=timeout)
    yield p
    api.close()


@pytest.fixture(autouse=True)
def _require_cluster(platform: Platform) -> None:
    """Every smoke test needs the cluster: without one, the session fixture skips them all."""


# ---------------------------------------------------------------------------------------------
# Objects the tests create, removed afterwards


@pytest.fixture
def jobs(platform: Platform):
    """Create Jobs (`jobs(namespace, manifest)`); all are deleted (Background propagation) after the test."""
    created: list[tuple[str, str]] = []

    def create(namespace: str, manifest: dict[str, Any]):
        job = platform.batch.create_namespaced_job(namespace, manifest)
        created.append((namespace, job.metadata.name))
        return job

    yield create
    from kubernetes import client
    for namespace, name in created:
        try:
            platform.batch.delete_namespaced_job(
                name, namespace, body=client.V1DeleteOptions(propagation_policy="Background"))
        except Exception:  # noqa: BLE001 - already gone, or the cluster went away
            pass


@pytest.fixture
def scratch_namespace(platform: Platform):
    """A throwaway namespace (Pod Security baseline), deleted after the test."""
    from kubernetes import client

    ns = platform.core.create_namespace(client.V1Namespace(api_version="v1", kind="Namespace",
                                                           metadata=client.V1ObjectMeta(
        generate_name="cnai-smoke-",
        labels={**SMOKE_LABEL, "pod-security.kubernetes.io/enforce": "baseline"})))
    name = ns.metadata.name
    yield name
    try:
        platform.core.delete_namespace(name, body=client.V1DeleteOptions(propagation_policy="Background"))
    except Exception:  # noqa: BLE001
        pass
