"""The policy framework: a stack's resources as policies see them, the rule registry and the helpers rules share.

Each rule takes every resource of a stack (`Res`: type, name, urn, props, protect, parent) and returns
violations (`(urn, message)`). Props use the engine's camelCase names."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

RELEASE = "kubernetes:helm.sh/v3:Release"
GPU = "nvidia.com/gpu"
ENFORCE = "pod-security.kubernetes.io/enforce"
TEAM_LABEL = "platform.cnai.dev/team"
PLATFORM_LABEL = "platform.cnai.dev/part-of"
# Layers whose namespaces may run below `restricted` (each layer documents why: docs/layers/*.md).
BELOW_RESTRICTED = {"gpu-operator": "privileged", "observability": "privileged", "feast": "baseline",
                    "jupyterhub": "baseline", "kserve": "baseline",
                    "katib": "baseline", "pipelines": "baseline"}
_EXACT_VERSION = re.compile(r"^v?\d+\.\d+\.\d+([-+][0-9A-Za-z.-]+)?$")
_PINNED_REF = re.compile(r"(/v?\d+\.\d+\.\d+/|[?&]ref=v?\d+\.\d+\.\d+$)")


@dataclass
class Res:
    """One resource as a policy sees it."""

    type: str
    name: str
    urn: str
    props: dict[str, Any]
    protect: bool = False
    parent: str = ""
    depends_on: list[str] = field(default_factory=list)

    @property
    def kind(self) -> str:
        return self.props.get("kind", "")

    @property
    def meta(self) -> dict[str, Any]:
        return self.props.get("metadata") or {}


Violation = tuple[str, str]


@dataclass(frozen=True)
class Rule:
    name: str
    description: str
    check: Callable[[list[Res]], list[Violation]]


RULES: list[Rule] = []


def rule(name: str, description: str):
    def register(fn: Callable[[list[Res]], Iterable[Violation]]):
        RULES.append(Rule(name, description, lambda rs: list(fn(rs))))
        return fn
    return register


def of(resources: list[Res], *types: str) -> list[Res]:
    return [r for r in resources if r.type in types]


def objects(resources: list[Res], kind: str | None = None) -> list[Res]:
    """Kubernetes objects the program creates directly (not releases or components)."""
    return [r for r in resources if r.type.startswith("kubernetes:") and "apiVersion" in r.props
            and r.type != RELEASE and (kind is None or r.kind == kind)]


def pod_specs(obj: Res) -> list[dict[str, Any]]:
    """Pod specs inside an object (Pod, Job, Deployment-like, InferenceService predictor)."""
    spec = obj.props.get("spec") or {}
    found = []
    if obj.kind == "Pod":
        found.append(spec)
    template = (spec.get("template") or {}).get("spec")
    if template:
        found.append(template)
    predictor = spec.get("predictor")
    if predictor:
        model = predictor.get("model")
        found.append({"containers": [model] if model else predictor.get("containers", []),
                      "tolerations": predictor.get("tolerations", [])})
    return found


def containers(pod: dict[str, Any]) -> list[dict[str, Any]]:
    return list(pod.get("containers") or []) + list(pod.get("initContainers") or [])


# -- supply chain ------------------------------------------------------------------------------------


def evaluate(resources: list[Res]) -> dict[str, list[Violation]]:
    """Every rule's violations (empty lists when the stack complies)."""
    return {r.name: r.check(resources) for r in RULES}
