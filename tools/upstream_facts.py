"""Extract upstream *facts* for the offline tests: chart values key paths and CRD structural schemas.

The tests check every values key the program sets against the pinned chart, and every custom
resource against the pinned CRD schema, without network. They read small fact files under
`tests/upstream/` that this tool writes from upstream sources you have locally (a copy of the charts'
`Chart.yaml`/`values.yaml`/`values.schema.json` and the CRDs' `openAPIV3Schema` as JSON):

    python -m tools.upstream_facts --upstream ../shared/upstream \
        [--subchart gpu-operator/node-feature-discovery=/path/to/nfd/chart]

Only key names, types and structural schema keywords are kept (no descriptions, no templates):
facts, not copies. Run it after bumping a pin in versions.yaml; `--check` fails if the committed
facts differ from what the sources give (CI runs it when the sources are present).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import yaml

from modules.shared.versions import ROOT, VERSIONS

FACTS = ROOT / "tests" / "upstream"
_STRUCTURAL = {
    "type", "properties", "items", "required", "enum", "additionalProperties", "anyOf", "oneOf", "allOf",
    "x-kubernetes-preserve-unknown-fields", "x-kubernetes-int-or-string", "x-kubernetes-embedded-resource",
    "format", "minimum", "maximum", "minLength", "maxLength", "minItems", "maxItems", "pattern", "nullable",
}


# Values that charts pass through to a Kubernetes field (toYaml): any valid sub-key is the user's.
_K8S_PASSTHROUGH = {"affinity", "nodeSelector", "tolerations", "resources", "securityContext",
                    "podSecurityContext", "containerSecurityContext", "annotations", "labels",
                    "podAnnotations", "podLabels"}


def _values_paths(node: Any, prefix: str, out: dict[str, str]) -> None:
    if isinstance(node, dict):
        if prefix:
            out[prefix] = "map" if node and prefix.rsplit(".", 1)[-1] not in _K8S_PASSTHROUGH else "free"
        for key, value in node.items():
            _values_paths(value, f"{prefix}.{key}" if prefix else str(key), out)
    elif prefix:
        out.setdefault(prefix, "list" if isinstance(node, list) else "scalar")


def _schema_paths(schema: dict[str, Any], root: dict[str, Any], prefix: str, out: dict[str, str], depth=0) -> None:
    if depth > 40:
        return
    while "$ref" in schema:
        ref = schema["$ref"]
        if not ref.startswith("#/"):
            out.setdefault(prefix, "free")
            return
        target: Any = root
        for part in ref[2:].split("/"):
            target = target[part]
        schema = {**target, **{k: v for k, v in schema.items() if k != "$ref"}}
    props = schema.get("properties")
    if props:
        if prefix:
            out.setdefault(prefix, "map")
        for key, sub in props.items():
            _schema_paths(sub, root, f"{prefix}.{key}" if prefix else key, out, depth + 1)
        if (schema.get("additionalProperties") not in (None, False) or schema.get("patternProperties")) and prefix:
            out[prefix] = "free"  # any key (patternProperties: e.g. z2jh hub.config's traitlets class names)
    elif prefix:
        types = schema.get("type")
        types = types if isinstance(types, list) else [types]
        kind = "free" if "object" in types or types == [None] else ("list" if "array" in types else "scalar")
        if out.get(prefix) in (None, "scalar") or kind == "free":
            out[prefix] = kind if out.get(prefix) != "map" else "map"


def chart_facts(chart_dir: Path, subcharts: dict[str, Path]) -> dict[str, Any]:
    keys: dict[str, str] = {}
    _values_paths(yaml.safe_load((chart_dir / "values.yaml").read_text()) or {}, "", keys)
    schema_file = chart_dir / "values.schema.json"
    if schema_file.exists():
        schema = json.loads(schema_file.read_text())
        _schema_paths(schema, schema, "", keys)
    for name, sub in sorted(subcharts.items()):
        sub_keys: dict[str, str] = {}
        _values_paths(yaml.safe_load((sub / "values.yaml").read_text()) or {}, "", sub_keys)
        keys[name] = "map"
        keys.update({f"{name}.{k}": v for k, v in sub_keys.items()})
    return {"schema": schema_file.exists(), "keys": dict(sorted(keys.items()))}


def prune(schema: Any) -> Any:
    if isinstance(schema, dict):
        out = {}
        for key, value in schema.items():
            if key == "properties":
                out[key] = {k: prune(v) for k, v in value.items()}
            elif key in _STRUCTURAL:
                out[key] = prune(value)
        return out
    if isinstance(schema, list):
        return [prune(v) for v in schema]
    return schema


def build(upstreams: list[Path], extra_subcharts: dict[str, dict[str, Path]],
          require_subcharts: bool = True, complete: bool = True) -> dict[Path, str]:
    """Return {fact file: content} for every pinned chart and the CRD groups it declares, reading
    each from the first upstream copy that has it. With `complete=False`, sources no copy has are
    skipped (checking against a copy that holds only some of them)."""
    files: dict[Path, str] = {}
    index: dict[str, Any] = {}
    for upstream in reversed(upstreams):
        data = json.loads((upstream / "crds" / "index.json").read_text())["groups"]
        for group, kinds in data.items():  # per kind: the first copy that has it wins
            index.setdefault(group, {}).update({k: {**v, "root": upstream} for k, v in kinds.items()})
    for key, src in sorted(VERSIONS.charts.items()):
        found = [u / "charts" / key / src.version for u in upstreams if (u / "charts" / key / src.version).exists()]
        if not found:
            if complete:
                raise SystemExit(f"no upstream copy of {key} {src.version} in {', '.join(map(str, upstreams))}")
            continue
        chart_dir = found[0]
        facts = {"chart": src.chart, "version": src.version, "source": src.source,
                 "subcharts": dict(src.subcharts), **chart_facts(chart_dir, extra_subcharts.get(key, {}))}
        facts["keys"] = dict(sorted({**facts["keys"], **dict(src.template_keys)}.items()))
        missing = set(dict(src.subcharts)) - set(extra_subcharts.get(key, {}))
        if missing and require_subcharts:
            raise SystemExit(f"{key}: pass --subchart {key}/{sorted(missing)[0]}=DIR (values of the pinned subchart)")
        files[FACTS / "values" / f"{key}.json"] = json.dumps(facts, indent=1, sort_keys=True) + "\n"
    sources = sorted([*VERSIONS.charts.items(), *VERSIONS.manifests.items()])
    for key, src in sources:
        for entry in src.crd_groups:
            # "group", or "group/Kind" (groups several projects share), optionally "@tag" when the CRD
            # comes from a component release other than the source's own version.
            entry, _, tag = entry.partition("@")
            group, _, only = entry.partition("/")
            if group not in index:
                if complete:
                    raise SystemExit(f"no upstream CRDs of group {group} ({key})")
                continue
            for kind, crd in sorted(index[group].items()):
                if only and kind != only:
                    continue
                pinned = tag or src.version
                if not crd["tag"].endswith(pinned.lstrip("v")):
                    raise SystemExit(f"{group}/{kind}: CRD copy is from {crd['tag']}, pinned at {pinned}")
                for version, meta in sorted(crd["versions"].items()):
                    if not meta.get("served"):
                        continue
                    schema = json.loads((crd["root"] / "crds" / meta["file"]).read_text())
                    doc = {"group": group, "kind": kind, "version": version, "scope": crd["scope"],
                           "storage": bool(meta.get("storage")), "deprecated": bool(meta.get("deprecated")),
                           "source": f"{crd['repo']}@{crd['tag']}:{crd['path']}", "schema": prune(schema)}
                    path = FACTS / "crds" / group / f"{kind}.{version}.json"
                    files[path] = json.dumps(doc, indent=1, sort_keys=True) + "\n"
    return files


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--upstream", type=Path, action="append",
                    help="upstream copy (charts/, crds/index.json); repeat to combine, first wins "
                         "(default: ../shared/upstream)")
    ap.add_argument("--subchart", action="append", default=[], metavar="CHART/NAME=DIR")
    ap.add_argument("--check", action="store_true", help="compare with the committed facts instead of writing")
    args = ap.parse_args(argv)
    subs: dict[str, dict[str, Path]] = {}
    for item in args.subchart:
        target, _, path = item.partition("=")
        chart, _, name = target.partition("/")
        subs.setdefault(chart, {})[name] = Path(path)
    args.upstream = args.upstream or [ROOT.parent / "shared" / "upstream"]
    if args.check:
        # The shared copy has no subchart values: compare everything but the subchart keys.
        files = build(args.upstream, subs, require_subcharts=False, complete=False)
        stale = [str(p.relative_to(ROOT)) for p, text in files.items()
                 if not p.exists() or _strip(p.read_text()) != _strip(text)]
        if stale:
            print("upstream facts are stale: " + ", ".join(stale), file=sys.stderr)
            return 1
        print(f"upstream facts match {', '.join(map(str, args.upstream))} ({len(files)} files checked)")
        return 0
    files = build(args.upstream, subs)
    for path, text in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    print(f"wrote {len(files)} fact files under {FACTS.relative_to(ROOT)}")
    return 0


def _strip(text: str) -> str:
    doc = json.loads(text)
    if "keys" in doc:
        doc["keys"] = {k: v for k, v in doc["keys"].items()
                       if not any(k == s or k.startswith(s + ".") for s in doc.get("subcharts", {}))}
    return json.dumps(doc, sort_keys=True)


if __name__ == "__main__":
    sys.exit(main())
