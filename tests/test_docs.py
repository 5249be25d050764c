"""The docs cannot drift from the code: generated tables are current, every layer and cluster has a page."""

from __future__ import annotations

from engine.registry import CLUSTERS, LAYERS
from modules.shared.versions import ROOT
from tools import docs


def test_generated_tables_are_current():
    assert docs.main(["--check"]) == 0, "run `python -m tools.docs` and commit the result"


def test_the_tools_table_states_every_pinned_tool_version():
    from modules.shared.versions import VERSIONS

    text = (ROOT / "docs" / "versions.md").read_text().split("## Tools", 1)[1].split("\n## ", 1)[0]
    missing = [f"{k} {v}" for k, v in VERSIONS.tools.items() if f"`{v}`" not in text and v not in text]
    assert not missing, f"docs/versions.md Tools table lacks {missing}"


def test_every_layer_has_a_page_naming_its_config_keys():
    for name, cls in LAYERS.items():
        page = ROOT / "docs" / "layers" / f"{name}.md"
        assert page.exists(), f"no docs/layers/{name}.md"
        text = page.read_text()
        own = set(cls.Options.model_fields) - {"enabled", "namespace", "values"}
        missing = [k for k in own if f"`{k}`" not in text]
        assert not missing, f"docs/layers/{name}.md does not document {missing}"


def test_every_cluster_module_has_a_page():
    for env in CLUSTERS:
        assert (ROOT / "docs" / "clusters" / f"{env}.md").exists(), f"no docs/clusters/{env}.md"


def test_configuration_reference_lists_every_layer_option():
    text = (ROOT / "docs" / "configuration.md").read_text()
    for name, cls in LAYERS.items():
        for key in set(cls.Options.model_fields) - {"enabled", "namespace", "values"}:
            row = f"| `{name}` | `{key}"
            assert row in text, f"docs/configuration.md has no row for cnai:layers.{name}.{key}"


def test_every_layer_page_names_its_pinned_versions():
    from modules.shared.versions import VERSIONS

    for name, cls in LAYERS.items():
        text = (ROOT / "docs" / "layers" / f"{name}.md").read_text()
        versions = [VERSIONS.chart(k).version for k in cls.chart_keys()]
        versions += [VERSIONS.manifest(k).version for k in cls.manifests]
        missing = [v for v in versions if v.lstrip("v") not in text]
        assert not missing, f"docs/layers/{name}.md does not name pinned version(s) {missing}"
