"""Smoke: every team namespace is fenced in as the teams layer declares.

Each `team-<name>` namespace has the ResourceQuota `team-quota` (with the stack's figures), the
LimitRange `container-defaults`, the NetworkPolicy `default-deny` (all ingress and egress) and the
RoleBinding `team-edit`; the API server's authorizer lets the team's group create pods there and
refuses an outsider, and the group elsewhere.
"""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.smoke


@pytest.fixture(scope="module")
def teams(platform):
    layer = platform.enabled_layer("teams")
    if not platform.spec.teams:
        pytest.skip(f"stack {platform.stack} declares no teams")
    return layer, list(platform.spec.teams)


def _read(read, kind: str, name: str, namespace: str):
    """read(name, namespace) with a 404 turned into a plain assertion failure."""
    from kubernetes.client.exceptions import ApiException

    try:
        return read(name, namespace, _request_timeout=30)
    except ApiException as exc:
        if exc.status == 404:
            pytest.fail(f"{kind} {namespace}/{name} is missing", pytrace=False)
        raise


def _expected(layer, team, kind: str, name: str) -> dict:
    return next(m for m in layer.team_objects(team) if m["kind"] == kind and m["metadata"]["name"] == name)


def _same_quantities(expected: dict[str, str], actual: dict[str, str]) -> dict[str, tuple]:
    from modules.shared.config import quantity

    diff = {}
    for key, value in expected.items():
        got = actual.get(key)
        if got is None or quantity(str(got)) != quantity(str(value)):
            diff[key] = (value, got)
    return diff


def test_team_namespaces(platform, teams):
    layer, members = teams
    problems = []
    for team in members:
        try:
            ns = platform.core.read_namespace(team.namespace, _request_timeout=30)
        except Exception as exc:  # noqa: BLE001 - reported below
            problems.append(f"{team.namespace}: {getattr(exc, 'status', exc)}")
            continue
        want = _expected(layer, team, "Namespace", team.namespace)["metadata"]["labels"]
        labels = ns.metadata.labels or {}
        wrong = {k: (v, labels.get(k)) for k, v in want.items() if labels.get(k) != v}
        if wrong:
            problems.append(f"{team.namespace}: labels (expected, actual) {wrong}")
    assert not problems, "; ".join(problems)


def test_resource_quota(platform, teams):
    layer, members = teams
    for team in members:
        rq = _read(platform.core.read_namespaced_resource_quota, "ResourceQuota", "team-quota", team.namespace)
        want = _expected(layer, team, "ResourceQuota", "team-quota")["spec"]["hard"]
        diff = _same_quantities(want, rq.spec.hard or {})
        assert not diff, f"{team.namespace}/team-quota hard limits differ (expected, actual): {diff}"


def test_limit_range(platform, teams):
    layer, members = teams
    for team in members:
        lr = _read(platform.core.read_namespaced_limit_range, "LimitRange", "container-defaults", team.namespace)
        want = _expected(layer, team, "LimitRange", "container-defaults")["spec"]["limits"][0]
        got = next((limit for limit in lr.spec.limits if limit.type == "Container"), None)
        assert got is not None, f"{team.namespace}/container-defaults has no Container limits"
        diff = {**_same_quantities(want["defaultRequest"], got.default_request or {}),
                **{f"limit {k}": v for k, v in _same_quantities(want["default"], got.default or {}).items()}}
        assert not diff, f"{team.namespace}/container-defaults defaults differ (expected, actual): {diff}"


def test_default_deny(platform, teams):
    _, members = teams
    for team in members:
        np = _read(platform.networking.read_namespaced_network_policy, "NetworkPolicy", "default-deny", team.namespace)
        selector = np.spec.pod_selector
        assert not (selector.match_labels or selector.match_expressions), (
            f"{team.namespace}/default-deny must select every pod (podSelector: {{}}), has {selector}")
        assert sorted(np.spec.policy_types or []) == ["Egress", "Ingress"], (
            f"{team.namespace}/default-deny policyTypes: {np.spec.policy_types}")
        assert not np.spec.ingress and not np.spec.egress, f"{team.namespace}/default-deny must allow nothing"


def test_role_binding(platform, teams):
    _, members = teams
    for team in members:
        rb = _read(platform.rbac.read_namespaced_role_binding, "RoleBinding", "team-edit", team.namespace)
        assert (rb.role_ref.kind, rb.role_ref.name) == ("ClusterRole", "edit"), (
            f"{team.namespace}/team-edit binds {rb.role_ref.kind} {rb.role_ref.name}, expected ClusterRole edit")
        groups = [s.name for s in rb.subjects or [] if s.kind == "Group"]
        assert team.rbac_group in groups, f"{team.namespace}/team-edit subjects {groups} lack group {team.rbac_group}"


def test_team_access(platform, teams):
    """The authorizer's answer, not just the objects: members may create pods, outsiders may not."""
    _, members = teams
    for team in members:
        ns = team.namespace
        member = ("cnai-smoke-member", [team.rbac_group, "system:authenticated"])
        outsider = ("cnai-smoke-outsider", ["system:authenticated"])
        assert platform.allowed(*member, ns), f"group {team.rbac_group} cannot create pods in {ns}"
        assert platform.allowed(*member, ns, resource="jobs", group="batch"), (
            f"group {team.rbac_group} cannot create batch Jobs in {ns}")
        assert not platform.allowed(*outsider, ns), f"a user outside group {team.rbac_group} can create pods in {ns}"
        assert not platform.allowed(*member, "kube-system"), (
            f"group {team.rbac_group} can create pods in kube-system: team RBAC reaches beyond {ns}")
        others = [t.namespace for t in members if t.rbac_group != team.rbac_group]
        for other in others:
            assert not platform.allowed(*member, other), f"group {team.rbac_group} can create pods in {other}"
