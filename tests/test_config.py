"""Bad stack configs are rejected before any resource exists, with one line naming the key."""

from __future__ import annotations

import runpy
import subprocess
import sys

import pulumi
import pytest
import yaml

from engine.registry import SpecModel
from modules.shared.config import ConfigError
from tools.harness import ROOT, run, stack_config

BAD = [
    # (overrides of stacks/Pulumi.kind.yaml, expected key, expected fragment of the message)
    ({"cnai:profle": "laptop"}, "cnai:profle", "unknown config key"),
    ({"cnai:environment": "minikube"}, "cnai:environment", "'kind', 'existing', 'eks' or 'gke'"),
    ({"cnai:profile": "huge"}, "cnai:profile", "'laptop' or 'production'"),
    ({"cnai:kubernetesVersion": "1.29"}, "cnai:kubernetesVersion", "must be one of 1.33"),
    ({"cnai:gpu": {"enabled": True, "count": 0}}, "cnai:gpu.count", "must be at least 1"),
    ({"cnai:gpu": {"enabled": "yes"}}, "cnai:gpu.enabled", "must be true or false"),
    ({"cnai:gpu": {"enabled": True, "sharing": {"mode": "time-slicing", "replicas": 1}}},
     "cnai:gpu.sharing.replicas", "must be at least 2"),
    ({"cnai:gpu": {"enabled": True, "sharing": {"mode": "vgpu"}}}, "cnai:gpu.sharing.mode", "'mps' or 'mig'"),
    ({"cnai:gpu": {"enabled": True, "allocation": "cdi"}}, "cnai:gpu.allocation", "'device-plugin' or 'dra'"),
    ({"cnai:gpu": {"enabled": False, "sharing": {"mode": "time-slicing"}}}, "cnai:gpu.sharing.mode",
     "needs cnai:gpu.enabled: true"),
    ({"cnai:gpu": {"enabled": True, "sharing": {"mode": "mig"}}}, "cnai:gpu.sharing.mode", "not supported on a kind"),
    ({"cnai:gpu": {"enabled": True, "cuont": 2}}, "cnai:gpu.cuont", "allowed keys here are enabled, count"),
    ({"cnai:teams": [{"name": "Data_Science"}]}, "cnai:teams[0].name", "DNS label"),
    ({"cnai:teams": [{"name": "a"}, {"name": "a"}]}, "cnai:teams[1].name", "declared twice"),
    ({"cnai:teams": [{"name": "a", "quota": {"cpu": "lots"}}]}, "cnai:teams[0].quota.cpu", "Kubernetes quantity"),
    ({"cnai:teams": [{"name": "a", "quota": {"gpu": 2}}]}, "cnai:teams[0].quota.gpu", "cnai:gpu.enabled is false"),
    ({"cnai:teams": {"name": "a"}}, "cnai:teams", "must be a list"),
    ({"cnai:layers": {"kueue": {"enabled": True, "cohrt": "x"}}}, "cnai:layers.kueue.cohrt", "unknown key"),
    ({"cnai:layers": {"istio": {"enabled": True}}}, "cnai:layers.istio", "allowed keys here are cert-manager"),
    ({"cnai:layers": {"kueue": {"cpu": "-1"}}}, "cnai:layers.kueue.cpu", "Kubernetes quantity"),
    ({"cnai:layers": {"kueue": {"priorityClasses": [{"name": "a", "value": 1}, {"name": "a", "value": 2}]}}},
     "cnai:layers.kueue.priorityClasses", "appears twice"),
    ({"cnai:kind": {"workers": 20}}, "cnai:kind.workers", "must be at most 8"),
    ({"cnai:layers": {"gpu-operator": {"namespace": "GPU"}}}, "cnai:layers.gpu-operator.namespace", "namespace name"),
    ({"cnai:environment": "existing", "cnai:gpu": {"enabled": True}}, "cnai:existing.gpuNodes", "at least 1"),
    ({"cnai:layers": {"mlflow": {"enabled": False}}}, "cnai:layers.kserve.example", "needs layer mlflow"),
    ({"cnai:layers": {"object-store": {"enabled": False}}}, "cnai:layers.feast.enabled", "requires object-store"),
    ({"cnai:layers": {"object-store": {"enabled": False}, "feast": {"enabled": False}, "mlflow": {"enabled": False},
                      "kserve": {"example": False}}}, "cnai:layers.postgres.backups", "object-store layer"),
    ({"cnai:layers": {"postgres": {"instances": 3}}}, "cnai:layers.postgres.instances", "at least 2 worker nodes"),
    ({"cnai:layers": {"postgres": {"backupSchedule": "0 2 * * *"}}}, "cnai:layers.postgres.backupSchedule",
     "six-field cron expression"),
    ({"cnai:layers": {"postgres": {"backupRetention": "30 days"}}}, "cnai:layers.postgres.backupRetention",
     "days, weeks or months"),
    ({"cnai:layers": {"kserve": {"deploymentMode": "Serverless"}}}, "cnai:layers.kserve.deploymentMode",
     "'Standard' or 'Knative'"),
    ({"cnai:layers": {"kserve": {"values": {"kserve": {}}}}}, "cnai:layers.kserve.values.kserve",
     "allowed: one of kserve-crd, kserve-resources, kserve-runtime-configs"),
    ({"cnai:layers": {"object-store": {"size": "big"}}}, "cnai:layers.object-store.size", "Kubernetes quantity"),
]


@pytest.mark.parametrize("overrides,key,fragment", BAD, ids=[b[1] + ":" + b[2][:20] for b in BAD])
def test_bad_config_is_one_line_naming_the_key(overrides, key, fragment):
    with pytest.raises(ConfigError) as err:
        run("kind", overrides)
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith(key + ":"), message
    assert fragment in message, message


def test_a_disabled_requirement_is_rejected(monkeypatch):
    from engine.registry import LAYERS

    monkeypatch.setattr(LAYERS["kueue"], "requires", ("cert-manager",))
    off = {"enabled": False}  # the other layers that need cert-manager
    with pytest.raises(ConfigError,
                       match=r"^cnai:layers.kueue.enabled: layer kueue requires cert-manager, which is disabled"):
        run("kind", {"cnai:layers": {n: off for n in ("cert-manager", "kserve", "postgres", "mlflow", "feast")}})


def test_bad_config_registers_nothing_and_pulumi_up_gets_one_line():
    """Through __main__.py as the engine runs it: RunError (no stack trace), no resource registered."""
    from pulumi.runtime import settings
    from pulumi.runtime.config import set_all_config

    from tools.harness import Recording, _Mocks, _Recorder

    flat, _ = stack_config("kind", {"cnai:gpu": {"enabled": True, "count": 99}})
    rec = Recording("kind")
    settings.reset_options()
    set_all_config(flat, [])
    pulumi.runtime.set_mocks(_Mocks(), "cnai", "kind", preview=False, monitor=_Recorder(rec))
    with pytest.raises(pulumi.RunError,
                       match=r"^invalid stack config: cnai:gpu.count: must be at most 8"):
        pulumi.runtime.test(lambda: runpy.run_path(str(ROOT / "__main__.py")))()
    assert rec.registrations == []


def test_plan_cli_exits_2_with_one_line(tmp_path):
    stack = ROOT / "stacks" / "Pulumi.zz-bad.yaml"
    stack.write_text(yaml.safe_dump({"config": {"cnai:environment": "kind", "cnai:gpu": {"enabled": True,
                                                                                         "count": "two"}}}))
    try:
        proc = subprocess.run([sys.executable, "-m", "tools.plan", "zz-bad", "--json"], cwd=ROOT,
                              capture_output=True, text=True)
    finally:
        stack.unlink()
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr.strip().splitlines() == [
        "invalid stack config: cnai:gpu.count: must be a whole number (got 'two')"]


def test_project_defaults_match_the_config_model():
    project = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())
    for key, decl in project["config"].items():
        if "default" in decl:
            field = SpecModel.model_fields[key.split(":", 1)[1]]
            assert field.default == decl["default"], key


def test_good_overrides_are_accepted():
    rec = run("kind", {"cnai:teams": [{"name": "a", "quota": {"cpu": 8, "memory": "1Gi"}}],
                       "cnai:layers": {"kueue": {"enabled": False}}})
    quota = rec.get("kubernetes:core/v1:ResourceQuota", "resourcequota-team-a-team-quota").inputs
    assert quota["spec"]["hard"]["requests.cpu"] == "8"
