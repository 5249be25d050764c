"""Every object the program creates directly is valid: built-in kinds against the Kubernetes OpenAPI
schema of the stack's version (kubernetes-validate, strict), custom resources against the upstream CRD
schema of the pinned release, read in place (tools/upstream.py; unknown fields rejected as the API server
would prune them). Custom resources are skipped, with one line, where no upstream copy exists."""

from __future__ import annotations

import jsonschema
import kubernetes_validate
import pytest

from engine.program import load_spec
from modules.shared import upstream
from tests.conftest import evaluate, needs_upstream
from tools.harness import normalize, stack_config, stacks
from tools.rendered import strict  # the one structural-schema -> JSON schema conversion


def crd_schema(api_version: str, kind: str) -> dict | None:
    return upstream.crd_facts(api_version, kind)


def is_custom(obj: dict) -> bool:
    group = obj["apiVersion"].rpartition("/")[0]
    return upstream.pinned_crd(group, obj["kind"]) is not None


def objects():
    for stack in stacks():
        version = load_spec(stack_config(stack)[0], stack).kubernetesVersion
        for obj in evaluate(stack).objects():
            obj = normalize(obj, reveal=True)
            yield pytest.param(version, obj,
                               id=f"{stack}:{obj['kind']}/{obj['metadata'].get('namespace', '')}/"
                                  f"{obj['metadata']['name']}")


@pytest.mark.parametrize("k8s_version,obj", list(objects()))
def test_object_is_valid(k8s_version, obj):
    if is_custom(obj) and upstream.root() is None:
        pytest.skip(upstream.reason())
    validate_object(k8s_version, obj)


def validate_object(k8s_version: str, obj: dict) -> None:
    """Raise unless `obj` is valid: a built-in kind against the Kubernetes schema of `k8s_version`, a custom
    resource against its pinned CRD (which must be in the upstream copy)."""
    if not is_custom(obj):
        kubernetes_validate.validate(obj, k8s_version, strict=True)
        return
    doc = crd_schema(obj["apiVersion"], obj["kind"])
    assert doc is not None, f"{obj['apiVersion']} {obj['kind']}: its CRD is not in the upstream copy"
    assert doc["served"], f"{obj['apiVersion']} {obj['kind']} is not served by the pinned CRD ({doc['source']})"
    assert doc["storage"], f"{obj['apiVersion']} {obj['kind']} is not the CRD's storage version"
    assert not doc["deprecated"], f"{obj['apiVersion']} {obj['kind']} is deprecated upstream"
    body = {k: v for k, v in obj.items() if k not in ("apiVersion", "kind", "metadata")}
    schema = strict(doc["schema"])
    schema.setdefault("properties", {})
    for k in ("apiVersion", "kind", "metadata", "status"):
        schema["properties"].pop(k, None)
    schema["required"] = [k for k in schema.get("required", []) if k not in ("apiVersion", "kind", "metadata")]
    jsonschema.validate(body, schema, cls=jsonschema.Draft7Validator)


@needs_upstream
def test_validation_catches_an_unknown_crd_field():
    cq = next(o for o in evaluate("kind").objects() if o["kind"] == "ClusterQueue")
    bad = normalize(cq, reveal=True)
    bad["spec"]["cohort"] = "old-v1beta1-name"
    doc = crd_schema(bad["apiVersion"], "ClusterQueue")
    with pytest.raises(jsonschema.ValidationError, match="cohort"):
        jsonschema.validate({"spec": bad["spec"]}, strict(doc["schema"]))


def test_validation_catches_a_bad_builtin_field():
    ns = next(o for o in evaluate("kind").objects() if o["kind"] == "NetworkPolicy")
    bad = normalize(ns, reveal=True)
    bad["spec"]["podSelectors"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, "1.36", strict=True)
