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
POD_SECURITY_REASON = "platform.cnai.dev/pod-security-reason"
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


IMAGE_KEYS = re.compile(r"^(image|imageName|[a-z][A-Za-z]*Image)$")


def image_refs(value: Any, path: str = "") -> Iterable[tuple[str, str]]:
    """(path, image) for every image a structure names: `image`-like keys holding a reference, and
    `repository` + `tag` pairs (a missing or empty tag leaves the chart's pinned default)."""
    if isinstance(value, dict):
        tag = value.get("tag")
        # A repository and its tag in sibling keys (`repository`, or `image` as KServe's runtimes name it).
        repo_key = next((k for k in ("repository", "image") if isinstance(value.get(k), str)), None)
        if repo_key and isinstance(tag, str) and tag:
            yield path, f"{value[repo_key]}:{tag}"
        for k, v in value.items():
            sub = f"{path}.{k}" if path else str(k)
            if k == repo_key and isinstance(tag, str):
                continue  # paired with its tag above (an empty tag leaves the chart's pinned default)
            if IMAGE_KEYS.match(str(k)) and isinstance(v, str) and v:
                yield sub, v
            else:
                yield from image_refs(v, sub)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from image_refs(v, f"{path}[{i}]")


def image_pinned(image: str) -> bool:
    """A tag (not `latest`) or a digest."""
    if "@sha256:" in image:
        return True
    name = image.rsplit("/", 1)[-1]
    return ":" in name and not name.endswith(":latest")


_CREDENTIAL_ENV = re.compile(r"(SECRET|PASSWORD|PASSWD|TOKEN)", re.I)
_NOT_A_CREDENTIAL = re.compile(r"(_FILE|_PATH|_NAME|_URL|_ENDPOINT|_KEY_ID)$", re.I)


def env_credentials(value: Any, path: str = "") -> Iterable[tuple[str, str]]:
    """(path, name) for environment variables named like credentials that hold a literal value: `env`
    lists of {name, value} and maps of NAME: value (chart `extraEnv`-style)."""
    if isinstance(value, dict):
        name, literal = value.get("name"), value.get("value")
        if isinstance(name, str) and isinstance(literal, str) and literal and _credential_name(name):
            yield path, name
        for k, v in value.items():
            sub = f"{path}.{k}" if path else str(k)
            if isinstance(v, str) and v and str(k).isupper() and _credential_name(str(k)):
                yield sub, str(k)
            else:
                yield from env_credentials(v, sub)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from env_credentials(v, f"{path}[{i}]")


def _credential_name(name: str) -> bool:
    return bool(_CREDENTIAL_ENV.search(name)) and not _NOT_A_CREDENTIAL.search(name)
