"""Every chart the program installs is the pinned upstream chart, and every values key it sets exists in
that chart (Helm silently ignores unknown keys). The charts are read in place from the upstream copy
(tools/upstream.py); the checks skip with one line where there is none."""

from __future__ import annotations

import pytest

from engine.registry import LAYERS
from modules.shared import upstream
from modules.shared.upstream import unknown_keys
from modules.shared.versions import VERSIONS
from tests.conftest import evaluate, needs_upstream
from tools.harness import normalize, stacks


def facts(chart_key: str) -> dict:
    found = upstream.chart_facts(chart_key)
    assert found is not None, f"{chart_key} {VERSIONS.chart(chart_key).version} is not in the upstream copy"
    return found


def chart_of(reg):
    """The pinned chart a release registration installs (by chart reference)."""
    found = [src for src in VERSIONS.charts.values() if src.ref == reg.inputs["chart"]]
    assert len(found) == 1, f"release {reg.name} installs {reg.inputs['chart']}, which versions.yaml does not pin"
    return found[0]


def releases():
    for stack in stacks():
        for reg in evaluate(stack).by_type("kubernetes:helm.sh/v3:Release"):
            yield pytest.param(stack, reg, id=f"{stack}:{reg.name}")


@pytest.mark.parametrize("stack,reg", list(releases()))
def test_release_is_the_pinned_upstream_chart(stack, reg):
    src = chart_of(reg)
    assert reg.inputs["version"] == src.version
    if src.oci:
        assert reg.inputs["chart"] == f"{src.repo}/{src.chart}" and "repositoryOpts" not in reg.inputs
    else:
        assert reg.inputs["chart"] == src.chart and reg.inputs["repositoryOpts"]["repo"] == src.repo


@needs_upstream
@pytest.mark.parametrize("stack,reg", list(releases()))
def test_every_values_key_exists_upstream(stack, reg):
    values = normalize(reg.inputs["values"], reveal=True)
    assert unknown_keys(values, facts(chart_of(reg).key)["keys"]) == []


@pytest.mark.parametrize("stack,reg", list(releases()))
def test_layers_install_only_the_charts_they_declare(stack, reg):
    layer = LAYERS[evaluate(stack).layer_of(reg)]
    assert chart_of(reg).key in layer.chart_keys(), f"{layer.name} installs {chart_of(reg).key} undeclared"


@needs_upstream
def test_the_key_check_catches_a_typo():
    keys = facts("gpu-operator")["keys"]
    assert unknown_keys({"driver": {"enabled": False}, "toolkit": {"installDir": "/x"}}, keys) == []
    assert unknown_keys({"driver": {"enable": False}}, keys) == ["driver.enable"]
    assert unknown_keys({"dcgmExporter": {"serviceMonitor": {"enable": True}}}, keys) == [
        "dcgmExporter.serviceMonitor.enable"]
    # Under a free-form map (resources: {}), any key is the user's own.
    assert unknown_keys({"driver": {"resources": {"requests": {"cpu": "1"}}}}, keys) == []


@needs_upstream
def test_every_pin_is_in_the_upstream_copy():
    """Charts at their pinned version; CRD groups at the tag of the release that ships them."""
    assert upstream.check() == []
    for key, src in VERSIONS.charts.items():
        assert facts(key)["chart"] in (src.chart, None), f"{key}: the copy is chart {facts(key)['chart']}"


def test_upstream_checks_skip_with_one_line_without_a_copy(monkeypatch, tmp_path):
    """A fork without the shared copy: no copy is found, and the reason names how to get one."""
    monkeypatch.setenv("CNAI_UPSTREAM", str(tmp_path / "none"))
    assert upstream.root() is None
    assert "\n" not in upstream.reason() and "make upstream" in upstream.reason()
