"""Every chart the program installs is the pinned upstream chart, and every values key it sets
exists in that chart (Helm silently ignores unknown keys). Facts come from tests/upstream/values."""

from __future__ import annotations

import json

import pytest

from modules.shared.versions import VERSIONS
from tests.conftest import UPSTREAM, evaluate
from tools.harness import stacks


def facts(chart_key: str) -> dict:
    return json.loads((UPSTREAM / "values" / f"{chart_key}.json").read_text())


def leaf_paths(values, prefix=""):
    if isinstance(values, dict) and values:
        for key, value in values.items():
            yield from leaf_paths(value, f"{prefix}.{key}" if prefix else key)
    elif prefix:
        yield prefix


def unknown_keys(values: dict, keys: dict[str, str]) -> list[str]:
    bad = []
    for path in leaf_paths(values):
        parts = path.split(".")
        prefixes = [".".join(parts[:i]) for i in range(len(parts), 0, -1)]
        known = path in keys or any(keys.get(p) in ("free", "list") for p in prefixes[1:])
        if not known:
            bad.append(path)
    return bad


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
    f = facts(src.key)
    assert (reg.inputs["version"], src.version, f["version"]) == (src.version,) * 3
    if src.oci:
        assert reg.inputs["chart"] == f"{src.repo}/{src.chart}" and "repositoryOpts" not in reg.inputs
    else:
        assert reg.inputs["chart"] == src.chart and reg.inputs["repositoryOpts"]["repo"] == src.repo


@pytest.mark.parametrize("stack,reg", list(releases()))
def test_every_values_key_exists_upstream(stack, reg):
    from tools.harness import normalize

    values = normalize(reg.inputs["values"], reveal=True)
    assert unknown_keys(values, facts(chart_of(reg).key)["keys"]) == []


@pytest.mark.parametrize("stack,reg", list(releases()))
def test_layers_install_only_the_charts_they_declare(stack, reg):
    from engine.registry import LAYERS

    rec = evaluate(stack)
    layer = LAYERS[rec.layer_of(reg)]
    assert chart_of(reg).key in layer.chart_keys(), f"{layer.name} installs {chart_of(reg).key} undeclared"


def test_the_key_check_catches_a_typo():
    keys = facts("gpu-operator")["keys"]
    assert unknown_keys({"driver": {"enabled": False}, "toolkit": {"installDir": "/x"}}, keys) == []
    assert unknown_keys({"driver": {"enable": False}}, keys) == ["driver.enable"]
    assert unknown_keys({"dcgmExporter": {"serviceMonitor": {"enable": True}}},
                        keys) == ["dcgmExporter.serviceMonitor.enable"]
    # Under a free-form map (resources: {}), any key is the user's own.
    assert unknown_keys({"driver": {"resources": {"requests": {"cpu": "1"}}}}, keys) == []


def test_every_pinned_chart_has_facts():
    for key, src in VERSIONS.charts.items():
        f = facts(key)
        assert (f["chart"], f["version"], f["source"]) == (src.chart, src.version, src.source)
        for sub, _ in src.subcharts:
            assert any(k.startswith(sub + ".") for k in f["keys"]), f"{key}: no facts for subchart {sub}"
