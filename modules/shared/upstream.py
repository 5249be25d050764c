"""Upstream truth, read in place: the pinned charts' values keys and the pinned CRDs' schemas.

The offline tests check every values key the program sets (and every key a stack overrides) against the
pinned chart, and every custom resource against the pinned CRD schema. They read an upstream copy laid
out as

    <UPSTREAM>/charts/<key>/<version>/{Chart.yaml, values.yaml[, values.schema.json][, charts/<sub>/values.yaml]}
    <UPSTREAM>/crds/index.json   (group -> Kind -> repo, tag, served versions and their schema files)
    <UPSTREAM>/crds/<file>       (each served version's openAPIV3Schema as JSON)

UPSTREAM is `$CNAI_UPSTREAM` if set, else `../shared/upstream` beside the checkout, else the cache that
`make upstream` fills (`.cache/upstream`). Nothing of it is copied into the repository: key names, types
and structural schema keywords are read when the program or the tests run. Without any copy, the tests
that need it skip with one line (`reason()`), and the program checks chart value overrides as far as it
can and says so. `python -m tools.upstream` checks and fills the copy.
"""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path
from typing import Any

import yaml

from modules.shared.versions import ROOT, VERSIONS

CACHE = ROOT / ".cache" / "upstream"
_STRUCTURAL = {
    "type", "properties", "items", "required", "enum", "additionalProperties", "anyOf", "oneOf", "allOf",
    "x-kubernetes-preserve-unknown-fields", "x-kubernetes-int-or-string", "x-kubernetes-embedded-resource",
    "format", "minimum", "maximum", "minLength", "maxLength", "minItems", "maxItems", "pattern", "nullable",
}
# Values that charts pass through to a Kubernetes field (toYaml): any valid sub-key is the user's.
_K8S_PASSTHROUGH = {"affinity", "nodeSelector", "tolerations", "resources", "securityContext",
                    "podSecurityContext", "containerSecurityContext", "annotations", "labels",
                    "podAnnotations", "podLabels"}


def root() -> Path | None:
    """The upstream copy the checks read, or None where there is none."""
    env = os.environ.get("CNAI_UPSTREAM")
    candidates = [Path(env)] if env else [ROOT.parent / "shared" / "upstream", CACHE]
    return next((p for p in candidates if (p / "charts").is_dir() and (p / "crds" / "index.json").is_file()), None)


def reason() -> str:
    """One line: why upstream checks are skipped."""
    return ("no upstream copy: set CNAI_UPSTREAM, keep ../shared/upstream beside the checkout, "
            "or run `make upstream` (downloads the pinned charts and CRDs)")


# -- chart values keys -------------------------------------------------------------------------------

def _values_paths(node: Any, prefix: str, out: dict[str, str]) -> None:
    if isinstance(node, dict):
        if prefix:
            out[prefix] = "map" if node and prefix.rsplit(".", 1)[-1] not in _K8S_PASSTHROUGH else "free"
        for key, value in node.items():
            _values_paths(value, f"{prefix}.{key}" if prefix else str(key), out)
    elif prefix:
        out.setdefault(prefix, "list" if isinstance(node, list) else "scalar")


def _schema_paths(schema: dict[str, Any], top: dict[str, Any], prefix: str, out: dict[str, str], depth=0) -> None:
    if depth > 40:
        return
    while "$ref" in schema:
        ref = schema["$ref"]
        if not ref.startswith("#/"):
            out.setdefault(prefix, "free")
            return
        target: Any = top
        for part in ref[2:].split("/"):
            target = target[part]
        schema = {**target, **{k: v for k, v in schema.items() if k != "$ref"}}
    props = schema.get("properties")
    if props:
        if prefix:
            out.setdefault(prefix, "map")
        for key, sub in props.items():
            _schema_paths(sub, top, f"{prefix}.{key}" if prefix else key, out, depth + 1)
        if (schema.get("additionalProperties") not in (None, False) or schema.get("patternProperties")) and prefix:
            out[prefix] = "free"  # any key (patternProperties: e.g. z2jh hub.config's traitlets class names)
    elif prefix:
        types = schema.get("type")
        types = types if isinstance(types, list) else [types]
        kind = "free" if "object" in types or types == [None] else ("list" if "array" in types else "scalar")
        if out.get(prefix) in (None, "scalar") or kind == "free":
            out[prefix] = kind if out.get(prefix) != "map" else "map"


def chart_dir(key: str) -> Path | None:
    """The copy of the pinned chart (its directory is named after the chart version, with or without `v`)."""
    base = root()
    if base is None:
        return None
    version = VERSIONS.chart(key).version
    paths = [base / "charts" / key / v for v in dict.fromkeys((version, version.lstrip("v")))]
    return next((p for p in paths if (p / "values.yaml").is_file()), None)


@functools.lru_cache(maxsize=None)
def chart_facts(key: str) -> dict[str, Any] | None:
    """The pinned chart's values key paths (path -> map | list | scalar | free), from its values.yaml,
    values.schema.json, the values of its subcharts where the copy has them, and the keys versions.yaml
    records for what the copy lacks (`template_keys`). None when the copy lacks the chart."""
    path = chart_dir(key)
    if path is None:
        return None
    keys: dict[str, str] = {}
    _values_paths(yaml.safe_load((path / "values.yaml").read_text()) or {}, "", keys)
    schema_file = path / "values.schema.json"
    if schema_file.exists():
        schema = json.loads(schema_file.read_text())
        _schema_paths(schema, schema, "", keys)
    src = VERSIONS.chart(key)
    for name, _ in src.subcharts:
        sub = path / "charts" / name / "values.yaml"
        if sub.exists():
            sub_keys: dict[str, str] = {}
            _values_paths(yaml.safe_load(sub.read_text()) or {}, "", sub_keys)
            keys[name] = "map"
            keys.update({f"{name}.{k}": v for k, v in sub_keys.items()})
    keys.update(dict(src.template_keys))
    chart = yaml.safe_load((path / "Chart.yaml").read_text()) if (path / "Chart.yaml").exists() else {}
    return {"chart": chart.get("name"), "version": src.version, "schema": schema_file.exists(),
            "keys": dict(sorted(keys.items()))}


def unknown_keys(values: dict[str, Any], keys: dict[str, str]) -> list[str]:
    """Leaf paths of `values` the chart does not have (keys under a free-form map are the user's)."""
    bad = []
    for path in _leaf_paths(values):
        parts = path.split(".")
        prefixes = [".".join(parts[:i]) for i in range(len(parts), 0, -1)]
        if not (path in keys or any(keys.get(p) in ("free", "list") for p in prefixes[1:])):
            bad.append(path)
    return bad


def _leaf_paths(values: Any, prefix: str = ""):
    if isinstance(values, dict) and values:
        for key, value in values.items():
            yield from _leaf_paths(value, f"{prefix}.{key}" if prefix else key)
    elif prefix:
        yield prefix


# -- CRD schemas -------------------------------------------------------------------------------------

def _prune(schema: Any) -> Any:
    if isinstance(schema, dict):
        return {k: ({p: _prune(s) for p, s in v.items()} if k == "properties" else _prune(v))
                for k, v in schema.items() if k == "properties" or k in _STRUCTURAL}
    if isinstance(schema, list):
        return [_prune(v) for v in schema]
    return schema


@functools.lru_cache(maxsize=1)
def _index() -> dict[str, Any]:
    base = root()
    return json.loads((base / "crds" / "index.json").read_text())["groups"] if base else {}


def pinned_crd(group: str, kind: str) -> tuple[str, str] | None:
    """(versions.yaml key, pinned tag) of the chart or manifest that declares this CRD (`crd_groups`)."""
    for key, src in sorted([*VERSIONS.charts.items(), *VERSIONS.manifests.items()]):
        for entry in src.crd_groups:
            entry, _, tag = entry.partition("@")
            g, _, only = entry.partition("/")
            if g == group and only in ("", kind):
                return key, tag or src.version
    return None


@functools.lru_cache(maxsize=None)
def crd_facts(api_version: str, kind: str) -> dict[str, Any] | None:
    """A pinned custom resource's served version: its structural schema, whether it is the storage
    version, whether it is deprecated, and where it comes from. None when no pin declares the CRD's group
    (then the object is a built-in kind) or the copy lacks it."""
    group, _, version = api_version.rpartition("/")
    pinned = pinned_crd(group, kind)
    crd = _index().get(group, {}).get(kind)
    if pinned is None or crd is None:
        return None
    meta = crd["versions"].get(version)
    if not meta or not meta.get("served"):
        return {"served": False, "source": f"{crd['repo']}@{crd['tag']}", "pinned": pinned}
    schema = json.loads((root() / "crds" / meta["file"]).read_text())
    return {"served": True, "storage": bool(meta.get("storage")), "deprecated": bool(meta.get("deprecated")),
            "tag": crd["tag"], "pinned": pinned, "source": f"{crd['repo']}@{crd['tag']}:{crd['path']}",
            "schema": _prune(schema)}


# -- the copy matches the pins -----------------------------------------------------------------------

def check() -> list[str]:
    """Problems: pins without an upstream copy at their version (charts; CRD groups and their tags)."""
    problems = []
    for key, src in sorted(VERSIONS.charts.items()):
        if chart_dir(key) is None:
            problems.append(f"chart {key} {src.version}: not in the upstream copy")
    for key, src in sorted([*VERSIONS.charts.items(), *VERSIONS.manifests.items()]):
        for entry in src.crd_groups:
            entry, _, tag = entry.partition("@")
            group, _, only = entry.partition("/")
            kinds = _index().get(group)
            if not kinds:
                problems.append(f"{key}: no CRDs of group {group} in the upstream copy")
                continue
            for kind, crd in sorted(kinds.items()):
                if only and kind != only:
                    continue
                pinned = tag or src.version
                if not crd["tag"].endswith(pinned.lstrip("v")):
                    problems.append(f"{group}/{kind}: the copy is from {crd['tag']}, {key} pins {pinned}")
    return problems
