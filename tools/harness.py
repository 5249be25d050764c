"""Run the real program for a stack under Pulumi's mock engine and record every registration.

Shared by the offline plan (`tools/plan.py`) and the tests. No Pulumi CLI, cluster or cloud
credentials are involved: `set_mocks` replaces the engine, and a recording monitor keeps each
resource's type, name, parent, dependencies and resolved inputs.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import yaml
from pulumi.runtime import mocks, rpc, settings
from pulumi.runtime.config import set_all_config

from modules.shared.versions import ROOT

warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"pulumi(_[a-z]+)?(\..*)?$")

PROJECT = "cnai"
SECRET = "[secret]"
_SECRET_SIG = (rpc._special_sig_key, rpc._special_secret_sig)
FAKE_KUBECONFIG = "apiVersion: v1\nkind: Config\nclusters: []\ncontexts: []\nusers: []\n"


@dataclass
class Registration:
    type: str
    name: str
    urn: str
    parent: str
    custom: bool
    depends_on: list[str]
    inputs: dict[str, Any]
    protect: bool = False
    ignore_changes: tuple[str, ...] = ()


@dataclass
class Recording:
    stack: str
    platform: Any = None  # the checked engine.program.Platform the program ran with

    @property
    def spec(self) -> Any:
        """The validated PlatformSpec the program ran with."""
        return self.platform.spec
    registrations: list[Registration] = field(default_factory=list)
    outputs: dict[str, Any] = field(default_factory=dict)  # stack exports (resolved; secrets marked)

    def by_type(self, type_: str) -> list[Registration]:
        return [r for r in self.registrations if r.type == type_]

    def get(self, type_: str, name: str) -> Registration:
        found = [r for r in self.registrations if r.type == type_ and r.name == name]
        if len(found) != 1:
            raise KeyError(f"{len(found)} registrations of {type_} {name}")
        return found[0]

    def label(self, urn: str) -> str:
        r = self._by_urn().get(urn)
        return f"{r.type}::{r.name}" if r else urn

    def _by_urn(self) -> dict[str, Registration]:
        return {r.urn: r for r in self.registrations}

    def ancestors(self, reg: Registration) -> list[Registration]:
        idx, out, cur = self._by_urn(), [], reg
        while cur.parent in idx:
            cur = idx[cur.parent]
            out.append(cur)
        return out

    def waits_for(self, reg: Registration) -> set[str]:
        """URNs of everything `reg` depends on, directly or through its dependencies."""
        idx, seen, todo = self._by_urn(), set(), list(reg.depends_on)
        while todo:
            urn = todo.pop()
            if urn not in seen and urn in idx:
                seen.add(urn)
                todo += idx[urn].depends_on
        return seen

    def layer_of(self, reg: Registration) -> str | None:
        for a in [reg, *self.ancestors(reg)]:
            if a.type.startswith("cnai:addons:"):
                return a.name
        return None

    def objects(self) -> list[dict[str, Any]]:
        """Manifests of every Kubernetes object the program creates directly (not Helm releases, not
        server-side apply patches of objects an upstream manifest owns: see `patches()`)."""
        out = []
        for r in self.registrations:
            if r.custom and r.type.startswith("kubernetes:") and "apiVersion" in r.inputs and "kind" in r.inputs \
                    and not r.type.startswith("kubernetes:helm.sh/") and not r.type.endswith("Patch"):
                out.append(r.inputs)
        return out

    def patches(self) -> list[Registration]:
        return [r for r in self.registrations
                if r.custom and r.type.startswith("kubernetes:") and r.type.endswith("Patch")]


def normalize(value: Any, reveal: bool = False) -> Any:
    """Plain JSON-able values: secrets masked (or revealed), integral floats back to ints."""
    if isinstance(value, dict):
        if value.get(_SECRET_SIG[0]) == _SECRET_SIG[1]:
            return normalize(value.get("value"), reveal) if reveal else SECRET
        return {k: normalize(v, reveal) for k, v in sorted(value.items())}
    if isinstance(value, (list, tuple)):
        return [normalize(v, reveal) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def mock_password(name: str) -> str:
    return f"mockpw{name.replace('-', '')}"


def mock_bcrypt(name: str) -> str:
    """The mock engine's bcrypt hash of mock_password(name) (shape only)."""
    return f"$2a$10$mockhash{name.replace('-', '')}"


ACCOUNT = "123456789012"


def _cloud_outputs(args: pulumi.runtime.MockResourceArgs) -> dict[str, Any]:
    """The computed outputs the cloud modules read, as the providers would return them."""
    name, typ, inputs = args.name, args.typ, args.inputs
    out: dict[str, Any] = {}
    if typ.startswith("aws:"):
        service = typ.split(":")[1].split("/")[0]
        out["arn"] = f"arn:aws:{service}:us-west-2:{ACCOUNT}:{name}"
    if typ == "aws:iam/role:Role":
        out["arn"] = f"arn:aws:iam::{ACCOUNT}:role/{name}"
        out["name"] = name
    if typ == "aws:s3/bucket:Bucket":
        out["arn"] = f"arn:aws:s3:::{inputs.get('bucket')}"
    if typ == "aws:eks/cluster:Cluster":
        out["endpoint"] = f"https://{name}.eks.example"
        out["certificateAuthority"] = {"data": "Q0EK"}
        out["vpcConfig"] = {**inputs.get("vpcConfig", {}), "clusterSecurityGroupId": "sg-0cluster"}
    if typ == "aws:rds/instance:Instance":
        out["address"] = f"{inputs.get('identifier')}.c0mock.us-west-2.rds.amazonaws.com"
    if typ == "aws:eks/nodeGroup:NodeGroup":
        out["resources"] = [{"autoscalingGroups": [{"name": f"eks-{name}-asg"}]}]
    if typ == "aws:ec2/launchTemplate:LaunchTemplate":
        out["latestVersion"] = 1
    if typ == "gcp:container/cluster:Cluster":
        out["endpoint"] = "203.0.113.10"
        out["masterAuth"] = {"clusterCaCertificate": "Q0EK"}
    if typ == "gcp:sql/databaseInstance:DatabaseInstance":
        out["privateIpAddress"] = "10.100.0.3"
    if typ == "gcp:serviceaccount/account:Account":
        out["email"] = f"{inputs.get('accountId')}@{inputs.get('project', 'project')}.iam.gserviceaccount.com"
        out["name"] = f"projects/{inputs.get('project', 'project')}/serviceAccounts/{out['email']}"
    return out


class _Mocks(pulumi.runtime.Mocks):
    def new_resource(self, args: pulumi.runtime.MockResourceArgs):
        outputs = dict(args.inputs)
        if args.typ == "command:local:Command":
            outputs["stdout"] = FAKE_KUBECONFIG if args.name.endswith("kubeconfig") else ""
            outputs["stderr"] = ""
        if args.typ == "random:index/randomPassword:RandomPassword":
            # A recognisable value, so tests can prove it never appears outside a secret.
            outputs["result"] = mock_password(args.name)
            outputs["bcryptHash"] = mock_bcrypt(args.name)
        if args.typ.startswith(("aws:", "gcp:")):
            outputs.update(_cloud_outputs(args))
        if args.typ == "kubernetes:helm.sh/v3:Release":
            outputs["status"] = {"name": args.inputs.get("name"), "namespace": args.inputs.get("namespace"),
                                 "status": "deployed", "version": args.inputs.get("version")}
        return f"{args.name}-id", outputs

    def call(self, args: pulumi.runtime.MockCallArgs):
        return {}


class _Recorder(mocks.MockMonitor):
    def __init__(self, recording: Recording):
        super().__init__(_Mocks())
        self.recording = recording

    def RegisterResource(self, request):
        response = super().RegisterResource(request)
        if request.type != "pulumi:pulumi:Stack":
            self.recording.registrations.append(Registration(
                type=request.type, name=request.name, urn=response.urn, parent=request.parent,
                custom=bool(request.custom), depends_on=sorted(set(request.dependencies)),
                inputs=rpc.deserialize_properties(request.object),
                protect=bool(request.protect), ignore_changes=tuple(request.ignoreChanges),
            ))
        return response


def stack_file(stack: str) -> Path:
    """stacks/Pulumi.<stack>.yaml, or the file itself when given a path to a .yaml file."""
    return Path(stack) if stack.endswith((".yaml", ".yml")) else ROOT / "stacks" / f"Pulumi.{stack}.yaml"


def stacks() -> list[str]:
    return sorted(p.name[len("Pulumi."):-len(".yaml")] for p in (ROOT / "stacks").glob("Pulumi.*.yaml"))


def project_defaults() -> dict[str, Any]:
    project = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())
    return {k: v["default"] for k, v in (project.get("config") or {}).items()
            if isinstance(v, dict) and "default" in v}


def _shape(value: Any) -> str:
    return "a list" if isinstance(value, list) else "text" if isinstance(value, str) else type(value).__name__


def read_stack_file(path: Path) -> dict[str, Any]:
    """The `config:` mapping of a stack file; a file Pulumi could not read either is one ConfigError line."""
    from modules.shared.config import ConfigError

    name = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"{name}: not valid YAML{where} ({getattr(exc, 'problem', None) or 'unreadable'})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{name}: must be a mapping with a `config:` key, not {_shape(data)}")
    config = data.get("config") or {}
    if not isinstance(config, dict):
        raise ConfigError(f"{name}: `config:` must be a mapping of keys such as cnai:environment, "
                          f"not {_shape(config)}")
    bad = next((k for k in config if not isinstance(k, str)), None)
    if bad is not None:
        raise ConfigError(f"{name}: config key {bad!r} must be a string such as cnai:environment")
    return config


def stack_config(stack: str, overrides: dict[str, Any] | None = None) -> tuple[dict[str, str], list[str]]:
    """The flat, CLI-style config map the engine would pass (Pulumi.yaml defaults, stack file, overrides)."""
    path = stack_file(stack)
    if not path.exists():
        raise FileNotFoundError(f"no stack file {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")
    merged = {**project_defaults(), **read_stack_file(path), **(overrides or {})}
    flat: dict[str, str] = {}
    secrets: list[str] = []
    for key, value in merged.items():
        key = key if ":" in key else f"{PROJECT}:{key}"
        if isinstance(value, dict) and set(value) == {"secure"}:
            value, _ = "offline-plan-dummy-secret", secrets.append(key)
        flat[key] = value if isinstance(value, str) else json.dumps(value)
    return flat, secrets


def run(stack: str, overrides: dict[str, Any] | None = None) -> Recording:
    """Evaluate the program for `stack` under mocks. Raises ConfigError for bad config."""
    from engine.program import build, load

    flat, secrets = stack_config(stack, overrides)
    platform = load(flat, stack, secrets)  # checks first: nothing is registered for a bad config
    recording = Recording(stack=stack, platform=platform)
    settings.reset_options()
    set_all_config(flat, secrets)
    pulumi.runtime.set_mocks(_Mocks(), PROJECT, stack, preview=False, monitor=_Recorder(recording))

    def program():
        # Resolve every stack export, keeping secrets marked as the engine stores them.
        def record(key, out):
            flagged = pulumi.Output.all(out, pulumi.Output.from_input(out.is_secret()))
            return flagged.apply(lambda t: recording.outputs.__setitem__(
                key, {_SECRET_SIG[0]: _SECRET_SIG[1], "value": t[0]} if t[1] else t[0]))

        exports = build(platform)
        return pulumi.Output.all(*[record(k, pulumi.Output.from_input(v)) for k, v in exports.items()])

    pulumi.runtime.test(program)()
    recording.registrations.sort(key=lambda r: r.urn)
    return recording
