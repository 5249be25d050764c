"""Shared fixtures: the program evaluated per stack under the mock engine (cached per session)."""

from __future__ import annotations

import functools
import json

import pytest

from modules.shared import upstream
from tools.harness import Recording, normalize, run, stacks

STACKS = stacks()
# Tests that read the upstream charts and CRDs in place skip, with one line, where there is no copy.
needs_upstream = pytest.mark.skipif(upstream.root() is None, reason=upstream.reason())


@functools.lru_cache(maxsize=None)
def _cached(stack: str, overrides_json: str) -> Recording:
    return run(stack, json.loads(overrides_json) or None)


def evaluate(stack: str, overrides: dict | None = None) -> Recording:
    """The recording of `stack` with optional `cnai:` config overrides (whole top-level keys)."""
    return _cached(stack, json.dumps(overrides or {}, sort_keys=True))


@pytest.fixture(params=STACKS)
def stack(request) -> str:
    return request.param


@pytest.fixture
def recording(stack) -> Recording:
    return evaluate(stack)


def values_of(rec: Recording, release: str) -> dict:
    from tools.harness import normalize

    return normalize(rec.get("kubernetes:helm.sh/v3:Release", release).inputs["values"], reveal=True)


def secret_data(rec: Recording, namespace: str, name: str) -> dict:
    """A Secret's data, after checking that it is a Pulumi secret as a whole."""
    reg = rec.get("kubernetes:core/v1:Secret", f"secret-{namespace}-{name}")
    assert normalize(reg.inputs)["stringData"] == "[secret]", f"{namespace}/{name} data is not a Pulumi secret"
    return normalize(reg.inputs, reveal=True)["stringData"]


def pytest_configure(config):
    # pulumi-aws and pulumi-gcp warn at import about their own deprecated resource classes, which the platform
    # does not use.
    config.addinivalue_line("filterwarnings", r"ignore::DeprecationWarning:pulumi_aws\..*")
    config.addinivalue_line("filterwarnings", r"ignore::DeprecationWarning:pulumi_gcp\..*")
