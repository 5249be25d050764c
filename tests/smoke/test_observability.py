"""Smoke: Prometheus scrapes the platform's own targets.

Through the API server's service proxy, Prometheus's `/api/v1/targets` lists a healthy target for
Kueue, MLflow (unless MLflow auth is on) and, in KServe Standard mode with the example on, the
example model server's `metrics` port (the `kserve-predictors` PodMonitor).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

pytestmark = pytest.mark.smoke


@pytest.fixture(scope="module")
def observability(platform):
    return platform.enabled_layer("observability")


def _targets(platform, layer) -> list[dict[str, Any]]:
    from addons.observability import RELEASE, chart_fullname

    svc = f"{chart_fullname(RELEASE, layer.chart)}-prometheus:9090"
    body = platform.core.connect_get_namespaced_service_proxy_with_path(
        svc, layer.namespace, "api/v1/targets", _request_timeout=30, _preload_content=False).data
    return json.loads(body)["data"]["activeTargets"]


def _expected(platform) -> dict[str, str]:
    """What must be scraped: a description -> the `scrapePool` prefix of its monitor."""
    out: dict[str, str] = {}
    kueue = platform.layer("kueue")
    if kueue is not None:
        out["Kueue controller"] = f"serviceMonitor/{kueue.namespace}/"
    mlflow = platform.layer("mlflow")
    if mlflow is not None and mlflow.scraped:
        out["MLflow server"] = f"serviceMonitor/{mlflow.namespace}/"
    kserve = platform.layer("kserve")
    if kserve is not None and kserve.scraped and kserve.options.example:
        from addons.kserve import EXAMPLE_NAMESPACE

        out["KServe example model server"] = f"podMonitor/{EXAMPLE_NAMESPACE}/kserve-predictors/"
    return out


def test_prometheus_scrapes_the_platform_targets(platform, observability):
    expected = _expected(platform)
    if not expected:
        pytest.skip("no layer with metrics (kueue, mlflow, kserve) is enabled next to observability")
    state: dict[str, Any] = {}

    def all_up():
        targets = _targets(platform, observability)
        missing = {}
        for what, pool in expected.items():
            mine = [t for t in targets if t.get("scrapePool", "").startswith(pool)]
            if not any(t.get("health") == "up" for t in mine):
                missing[what] = [(t.get("scrapeUrl"), t.get("health"), t.get("lastError")) for t in mine] or "no target"
        state["missing"] = missing
        return not missing, f"not scraped yet: {missing}"

    platform.wait_until(all_up, f"Prometheus targets up for {sorted(expected)}")
    assert state["missing"] == {}
