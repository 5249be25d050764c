"""Stack overrides of chart values (`cnai:layers.<layer>.values`), checked against the pinned chart
before any resource exists: unknown keys (with a "did you mean"), value types, replica counts, and the
chart's own values.schema.json on the merged values, as Helm would apply it."""

from __future__ import annotations

import difflib
import functools
import json
import re
from typing import Any

import yaml

from modules.shared.upstream import chart_dir, chart_facts
from modules.shared.versions import VERSIONS

_REPLICAS = re.compile(r"(^|\.)(replicas|replicaCount|[a-z]+Replicas)$")
_TYPE_WORDS = {bool: "true or false", int: "a whole number", float: "a number", str: "a string", list: "a list",
               dict: "a mapping"}


@functools.lru_cache(maxsize=None)
def chart_defaults(key: str) -> dict[str, Any]:
    """The pinned chart's values.yaml, parsed ({} when the copy lacks it)."""
    path = chart_dir(key)
    return (yaml.safe_load((path / "values.yaml").read_text()) or {}) if path else {}


@functools.lru_cache(maxsize=None)
def chart_schema(key: str) -> dict[str, Any] | None:
    path = chart_dir(key)
    return json.loads((path / "values.schema.json").read_text()) if path and (path / "values.schema.json").exists() \
        else None


def coalesce(base: Any, override: Any) -> Any:
    """Helm's merge of user values over chart values: maps merge key by key, `null` removes a key, anything
    else replaces."""
    if not (isinstance(base, dict) and isinstance(override, dict)):
        return override
    out = dict(base)
    for k, v in override.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = coalesce(out.get(k), v)
    return out


def _default_at(defaults: dict[str, Any], path: str) -> tuple[bool, Any]:
    node: Any = defaults
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return False, None
        node = node[part]
    return True, node


def _kind_of(value: Any) -> type | None:
    for t in (bool, int, float, str, list, dict):
        if isinstance(value, t):
            return t
    return None


def _walk_overrides(values: Any, prefix: str = ""):
    """(path, value) for every key given, maps included (a map given where a scalar is expected is an error)."""
    if isinstance(values, dict):
        for key, value in values.items():
            path = f"{prefix}.{key}" if prefix else str(key)
            yield path, value
            yield from _walk_overrides(value, path)


def check_overrides(where: str, chart_key: str, built: dict[str, Any], overrides: dict[str, Any]) -> str | None:
    """A one-line problem with a stack's chart value overrides, or None. `where` is the config key the
    overrides sit at (`cnai:layers.kueue.values`). Checks every key against the pinned chart's keys (with a
    "did you mean"), value types against the chart's defaults, replica counts, and the merged values against
    the chart's values.schema.json where it ships one. Keys under maps the chart passes through to
    Kubernetes (resources, nodeSelector, annotations, ...) are the user's own."""
    facts = chart_facts(chart_key)
    if facts is None:
        return None
    keys, defaults = facts["keys"], chart_defaults(chart_key)
    chart = f"the {VERSIONS.chart(chart_key).chart} chart {VERSIONS.chart(chart_key).version}"
    for path, value in _walk_overrides(overrides):
        parts = path.split(".")
        if any(keys.get(".".join(parts[:i])) in ("free", "list") for i in range(1, len(parts))):
            continue  # inside a map the chart passes through whole
        if path not in keys:
            parent = ".".join(parts[:-1])
            siblings = sorted({k[len(parent) + 1:].split(".")[0] if parent else k.split(".")[0]
                               for k in keys if (k.startswith(parent + ".") if parent else True)})
            close = difflib.get_close_matches(parts[-1], siblings, n=1, cutoff=0.6)
            hint = f"; did you mean {'.'.join([*parts[:-1], close[0]])}?" if close else ""
            return f"{where}.{path}: {chart} has no such key{hint}"
        if value is None:
            continue  # null removes a chart default
        known, default = _default_at(defaults, path)
        want = _kind_of(default) if known and default is not None else None
        if keys[path] == "map" and not isinstance(value, dict):
            return f"{where}.{path}: must be a mapping (a section of {chart}), got {value!r}"
        got = _kind_of(value)
        if want is not None and got is not want and not (want is float and got is int):
            return (f"{where}.{path}: must be {_TYPE_WORDS[want]} like the chart's default "
                    f"({json.dumps(default)}), got {value!r}")
        if _REPLICAS.search(path) and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
            return f"{where}.{path}: a replica count must be a whole number of 0 or more, got {value!r}"
    schema = chart_schema(chart_key)
    if schema is not None:
        import jsonschema  # only where a chart ships a schema

        merged = coalesce(coalesce(defaults, built), overrides)
        # Helm validates values schemas with draft-07 semantics, whatever `$schema` a chart names.
        errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(merged), key=lambda e: list(e.absolute_path))
        if errors:
            err = errors[0]
            path = ".".join(str(p) for p in err.absolute_path)
            return f"{where}.{path}: {chart}'s values schema rejects it: {err.message}"[:300]
    return None
