"""The pin table: every chart, image, node image and tool version, loaded from `versions.yaml`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]  # the repository (modules/shared/versions.py)


@dataclass(frozen=True)
class ChartSource:
    """A pinned upstream Helm chart: where Helm pulls it from and where its source lives."""

    key: str
    repo: str
    chart: str
    version: str
    source: str
    subcharts: tuple[tuple[str, str], ...] = ()
    crd_groups: tuple[str, ...] = ()
    template_keys: tuple[tuple[str, str], ...] = ()  # keys templates read that values.yaml only comments

    @property
    def oci(self) -> bool:
        return self.repo.startswith("oci://")

    @property
    def ref(self) -> str:
        """The chart reference Helm resolves: an OCI URL, or the chart name within `repo`."""
        return f"{self.repo}/{self.chart}" if self.oci else self.chart


@dataclass(frozen=True)
class ManifestSource:
    """A pinned upstream install manifest (for components that publish no Helm chart)."""

    key: str
    url: str
    version: str
    source: str
    crd_groups: tuple[str, ...] = ()
    kustomize: bool = False  # a kustomization (built by the provider) rather than one YAML file


@dataclass(frozen=True)
class Versions:
    charts: dict[str, ChartSource]
    manifests: dict[str, ManifestSource]
    images: dict[str, str]
    components: dict[str, str]
    models: dict[str, str]
    tools: dict[str, str]
    kind_node_images: dict[str, str]
    kubernetes_supported: tuple[str, ...]
    kubernetes_default: str

    def chart(self, key: str) -> ChartSource:
        return self.charts[key]

    def manifest(self, key: str) -> ManifestSource:
        return self.manifests[key]


def load(path: Path = ROOT / "versions.yaml") -> Versions:
    data = yaml.safe_load(path.read_text())
    charts = {
        key: ChartSource(key=key, repo=c["repo"], chart=c["chart"], version=str(c["version"]),
                         source=c["source"], subcharts=tuple(sorted((c.get("subcharts") or {}).items())),
                         crd_groups=tuple(c.get("crd_groups") or ()),
                         template_keys=tuple(sorted((c.get("template_keys") or {}).items())))
        for key, c in data["charts"].items()
    }
    manifests = {
        key: ManifestSource(key=key, url=m["url"].format(version=m["version"]), version=str(m["version"]),
                            source=m["source"], crd_groups=tuple(m.get("crd_groups") or ()),
                            kustomize=bool(m.get("kustomize")))
        for key, m in (data.get("manifests") or {}).items()
    }
    return Versions(
        charts=charts,
        manifests=manifests,
        images=dict(data.get("images") or {}),
        components={k: str(v) for k, v in (data.get("components") or {}).items()},
        models={k: str(v) for k, v in (data.get("models") or {}).items()},
        tools={k: str(v) for k, v in data["tools"].items()},
        kind_node_images={str(k): v for k, v in (data["kind"]["node_images"] or {}).items()},
        kubernetes_supported=tuple(str(v) for v in data["kubernetes"]["supported"]),
        kubernetes_default=str(data["kubernetes"]["default"]),
    )


VERSIONS = load()
