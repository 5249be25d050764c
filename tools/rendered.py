"""What a rendered release holds, checked: the CRDs it ships, objects the API server would refuse, the pods
it runs and what they request, the images they pull (tools/render.py renders; this reads the objects)."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any, Iterable

from modules.shared.config import quantity
from policies.framework import IMAGE_KEYS, image_pinned

LONG_RUNNING = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Pod"}
POD_HOLDERS = LONG_RUNNING | {"Job", "CronJob"}


def crd_versions(objects: list[dict[str, Any]]) -> dict[tuple[str, str, str], dict[str, Any]]:
    """(group, version, kind) -> openAPIV3Schema of every served version of the rendered CRDs."""
    out = {}
    for o in objects:
        if o.get("kind") != "CustomResourceDefinition":
            continue
        spec = o.get("spec") or {}
        for v in spec.get("versions") or []:
            if v.get("served", True):
                schema = ((v.get("schema") or {}).get("openAPIV3Schema")) or {}
                out[(spec.get("group"), v.get("name"), (spec.get("names") or {}).get("kind"))] = schema
    return out


def strict(schema: Any) -> Any:
    """A structural schema as a JSON schema that rejects unknown fields (as the API server prunes them)."""
    if isinstance(schema, list):
        return [strict(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: strict(v) if k in ("items", "additionalProperties", "anyOf", "oneOf", "allOf", "not") else v
           for k, v in schema.items() if k not in ("properties", "x-kubernetes-validations")}
    if "properties" in schema:
        out["properties"] = {k: strict(v) for k, v in schema["properties"].items()}
        if "additionalProperties" not in schema and not schema.get("x-kubernetes-preserve-unknown-fields"):
            out["additionalProperties"] = False
    if schema.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    return out


def validate(obj: dict[str, Any], kube_version: str, crds: dict[tuple[str, str, str], dict[str, Any]]) -> str | None:
    """One line: why the API server would refuse `obj` (or prune fields of it), or None."""
    import jsonschema
    import kubernetes_validate

    group, _, version = obj["apiVersion"].rpartition("/")
    schema = crds.get((group, version, obj["kind"]))
    if schema is None and group:  # a CRD another layer's install manifest brings: the pinned copy
        from modules.shared import upstream

        facts = upstream.crd_facts(obj["apiVersion"], obj["kind"])
        schema = facts.get("schema") if facts and facts.get("served") else None
    name = f"{obj['kind']} {(obj.get('metadata') or {}).get('name')}"
    if schema is not None:
        body = {k: v for k, v in obj.items() if k not in ("apiVersion", "kind", "metadata")}
        s = strict(schema)
        for k in ("apiVersion", "kind", "metadata", "status"):
            s.get("properties", {}).pop(k, None)
        s["required"] = [k for k in s.get("required", []) if k not in ("apiVersion", "kind", "metadata")]
        errors = list(jsonschema.Draft7Validator(s).iter_errors(body))
        return f"{name}: {errors[0].message[:200]}" if errors else None
    try:
        kubernetes_validate.validate(obj, kube_version, strict=True)
    except kubernetes_validate.ValidationError as exc:
        return f"{name}: {str(exc).splitlines()[0][:200]}"
    except (kubernetes_validate.SchemaNotFoundError, kubernetes_validate.InvalidSchemaError):
        return f"{name}: no schema for {obj['apiVersion']} {obj['kind']} (a CRD the charts do not ship)"
    return None


def pod_template(obj: dict[str, Any]) -> tuple[dict[str, Any], int] | None:
    """The pod spec of a pod-holding object and how many such pods it runs (DaemonSets: -1, per node)."""
    kind, spec = obj["kind"], obj.get("spec") or {}
    if kind == "Pod":
        return spec, 1
    if kind == "CronJob":
        spec = ((spec.get("jobTemplate") or {}).get("spec")) or {}
    if kind not in POD_HOLDERS:
        return None
    pod = ((spec.get("template") or {}).get("spec")) or {}
    count = -1 if kind == "DaemonSet" else 1 if kind in ("Job", "CronJob") else int(spec.get("replicas", 1) or 0)
    return pod, count


def pod_requests(pod: dict[str, Any]) -> tuple[Decimal, Decimal]:
    """Effective CPU (cores) and memory (MiB) requests of one pod: the larger of its containers' sum and its
    largest init container, as the scheduler counts them."""
    def req(c: dict[str, Any], r: str) -> Decimal:
        value = (((c.get("resources") or {}).get("requests")) or {}).get(r)
        return quantity(str(value)) if value is not None else Decimal(0)

    main = [c for c in pod.get("containers") or []]
    init = [c for c in pod.get("initContainers") or []]
    cpu = max([sum((req(c, "cpu") for c in main), Decimal(0))] + [req(c, "cpu") for c in init])
    mem = max([sum((req(c, "memory") for c in main), Decimal(0))] + [req(c, "memory") for c in init])
    return cpu, mem / (1 << 20)


def missing_requests(obj: dict[str, Any]) -> list[str]:
    """Containers of a long-running pod that request no CPU or no memory (init containers run to completion
    and are not counted here; their requests still count in `pod_requests`)."""
    if obj["kind"] not in LONG_RUNNING:
        return []
    pod, _ = pod_template(obj)
    out = []
    for c in pod.get("containers") or []:
        requests = ((c.get("resources") or {}).get("requests")) or {}
        lacking = [r for r in ("cpu", "memory") if r not in requests]
        if lacking:
            out.append(f"{obj['kind']} {obj['metadata']['name']} container {c.get('name')}: no "
                       f"{' or '.join(lacking)} request")
    return out


def images(objects: list[dict[str, Any]]) -> set[str]:
    out = set()
    for o in objects:
        found = pod_template(o) if o["kind"] in POD_HOLDERS else None
        if found:
            pod, _ = found
            out.update(c["image"] for c in [*(pod.get("initContainers") or []), *(pod.get("containers") or [])]
                       if c.get("image"))
    return out


# An image reference (registry/name[:tag][@digest]), not a template or prose an image-like key holds.
REFERENCE = re.compile(r"^[a-z0-9][a-z0-9._/:-]*(@sha256:[0-9a-f]{64})?$")
# Serving runtimes are a catalog: their images run only when a model selects the runtime.
CATALOG = {"ClusterServingRuntime", "ServingRuntime"}


def named_images(value: Any) -> Iterable[str]:
    """Images a custom resource names: `image`-like keys, `repository` + `tag`, and the GPU operator's
    `repository` + `image` + `version` triples; parts switched off (`enabled: false`) run nothing."""
    if isinstance(value, dict):
        if value.get("enabled") is False:
            return
        repo, image, version, tag = (value.get(k) for k in ("repository", "image", "version", "tag"))
        used: set[str] = set()
        if all(isinstance(x, str) and x for x in (repo, image, version)):
            yield f"{repo}/{image}{'@' if version.startswith('sha256:') else ':'}{version}"
            used = {"repository", "image", "version"}
        elif isinstance(repo, str) and isinstance(tag, str) and tag:
            yield f"{repo}:{tag}"
            used = {"repository", "tag"}
        for k, v in value.items():
            if k in used:
                continue
            if IMAGE_KEYS.match(str(k)) and isinstance(v, str):
                if REFERENCE.match(v):
                    yield v
            else:
                yield from named_images(v)
    elif isinstance(value, list):
        for v in value:
            yield from named_images(v)


def stack_images(objects: list[dict[str, Any]]) -> tuple[list[str], list[str]]:
    """(images the stack runs, images of the serving-runtime catalog): pod templates and the images
    custom resources name (GPU operator operands, notebooks, jobs, databases)."""
    runs, catalog = images(objects), set()
    for obj in objects:
        if obj["kind"] not in POD_HOLDERS:
            spec = {k: v for k, v in obj.items() if k not in ("metadata", "apiVersion", "kind")}
            (catalog if obj["kind"] in CATALOG else runs).update(named_images(spec))
    return sorted(runs), sorted(catalog - runs)


def unpinned(refs: Iterable[str]) -> list[str]:
    return [f"image {i} is not pinned (a tag other than latest, or a digest)" for i in refs if not image_pinned(i)]
