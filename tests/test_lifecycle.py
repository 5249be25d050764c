"""Clean lifecycle on the mock graph: Pulumi deletes in reverse dependency order, so every custom
resource must depend on what installs its CRD (and its controller), and every namespaced object on its
namespace. Then `pulumi destroy` removes custom resources while their operators still run (finalizers
are served) and namespaces last (nothing left to get stuck on)."""

from __future__ import annotations

import pytest

from modules.shared.versions import VERSIONS
from tests.conftest import evaluate
from tools.harness import stacks


def crd_sources() -> dict[str, set[str]]:
    """CRD group -> names of the releases/manifests that install it."""
    from engine.registry import LAYERS

    out: dict[str, set[str]] = {}
    for cls in LAYERS.values():
        for key in cls.chart_keys():
            for group in VERSIONS.chart(key).crd_groups:
                out.setdefault(group.partition("/")[0], set()).add(key)
        for key in cls.manifests:
            for group in VERSIONS.manifest(key).crd_groups:
                out.setdefault(group.partition("/")[0], set()).add(key)
    return out


@pytest.mark.parametrize("stack", stacks())
def test_custom_resources_depend_on_what_installs_their_crd(stack):
    rec = evaluate(stack)
    sources = crd_sources()
    # Release names differ from chart keys (object-store installs seaweedfs): map by chart reference.
    release_chart = {r.urn: next((k for k, c in VERSIONS.charts.items() if c.ref == r.inputs.get("chart")), None)
                     for r in rec.by_type("kubernetes:helm.sh/v3:Release")}
    installs = {urn: key for urn, key in release_chart.items() if key}
    installs.update({r.urn: r.name for r in rec.registrations
                     if r.type in ("kubernetes:yaml/v2:ConfigFile", "kubernetes:kustomize/v2:Directory")})
    for reg in rec.registrations:
        api = reg.inputs.get("apiVersion", "") if reg.type.startswith("kubernetes:") else ""
        group = api.rpartition("/")[0]
        if group not in sources:
            continue
        providers = {installs[u] for u in rec.waits_for(reg) if u in installs}
        assert providers & sources[group], \
            f"{reg.type} {reg.name} does not wait for {sorted(sources[group])} (its CRD); destroy could orphan it"


@pytest.mark.parametrize("stack", stacks())
def test_namespaced_objects_and_releases_depend_on_their_namespace(stack):
    rec = evaluate(stack)
    namespaces = {r.inputs["metadata"]["name"]: r.urn for r in rec.by_type("kubernetes:core/v1:Namespace")}
    for reg in rec.registrations:
        if not reg.type.startswith("kubernetes:"):
            continue
        ns = (reg.inputs.get("metadata") or {}).get("namespace") or reg.inputs.get("namespace")
        if ns in namespaces and reg.urn != namespaces[ns]:
            assert namespaces[ns] in rec.waits_for(reg), f"{reg.type} {reg.name} does not depend on namespace {ns}"
