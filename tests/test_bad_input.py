"""Bad input gets one line naming the file or key and what is allowed, before any resource exists: stack
files Pulumi could not read, chart value overrides the chart does not take, namespaces a layer cannot move
to, and messages in the project's words, never the validation library's."""

from __future__ import annotations

import itertools
import subprocess
import sys

import pytest
import yaml

from modules.shared.config import ConfigError
from tests.conftest import evaluate, needs_upstream, values_of
from tools.harness import ROOT, run

# -- stack files --------------------------------------------------------------------------------------

BAD_FILES = [
    ("config: [1, 2\n", "not valid YAML at line 2"),
    ("- config\n- more\n", "must be a mapping with a `config:` key, not a list"),
    ("config: hello\n", "`config:` must be a mapping of keys such as cnai:environment, not text"),
    ("config:\n  - cnai:environment\n", "`config:` must be a mapping of keys such as cnai:environment, not a list"),
    ("config:\n  1: kind\n", "config key 1 must be a string"),
]


@pytest.mark.parametrize("text,fragment", BAD_FILES, ids=[f[1][:30] for f in BAD_FILES])
def test_a_broken_stack_file_is_one_line_naming_the_file(tmp_path, text, fragment):
    path = tmp_path / "Pulumi.broken.yaml"
    path.write_text(text)
    proc = subprocess.run([sys.executable, "-m", "tools.plan", str(path)], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"invalid stack config: {path}: "), proc.stderr
    assert fragment in lines[0]


# -- chart value overrides ----------------------------------------------------------------------------

BAD_VALUES = [
    ({"kueue": {"values": {"controllerManager": {"replicaz": 2}}}},
     "cnai:layers.kueue.values.controllerManager.replicaz: the kueue chart 0.19.2 has no such key; "
     "did you mean controllerManager.replicas?"),
    ({"kueue": {"values": {"controllerManager": {"replicas": "two"}}}},
     "cnai:layers.kueue.values.controllerManager.replicas: must be a whole number like the chart's default (1)"),
    ({"mlflow": {"values": {"replicaCount": -2}}},
     "cnai:layers.mlflow.values.replicaCount: a replica count must be a whole number of 0 or more, got -2"),
    ({"gpu-operator": {"values": {"driver": {"enabled": "no"}}}},
     "cnai:layers.gpu-operator.values.driver.enabled: must be true or false"),
    ({"kserve": {"values": {"kserve-resources": {"kserve": {"controler": {}}}}}},
     "cnai:layers.kserve.values.kserve-resources.kserve.controler: the kserve-resources chart v0.20.0 has no such "
     "key; did you mean kserve.controller?"),
    ({"cert-manager": {"values": {"webhook": "on"}}},
     "cnai:layers.cert-manager.values.webhook: must be a mapping"),
    # Only the chart's values.schema.json knows this one (the key exists; its value is not allowed).
    ({"jupyterhub": {"values": {"proxy": {"service": {"type": "Ingress"}}}}},
     "cnai:layers.jupyterhub.values.proxy.service.type: the jupyterhub chart 4.4.0's values schema rejects it"),
]


@needs_upstream
@pytest.mark.parametrize("layers,message", BAD_VALUES, ids=[m.split(":")[1][:50] for _, m in BAD_VALUES])
def test_a_chart_value_override_the_chart_does_not_take_is_refused(layers, message):
    with pytest.raises(ConfigError) as err:
        run("kind", {"cnai:layers": layers})
    assert str(err.value).startswith(message), str(err.value)
    assert "\n" not in str(err.value)


@needs_upstream
def test_free_form_keys_and_known_keys_pass_and_reach_the_release():
    rec = evaluate("kind", {"cnai:layers": {"cert-manager": {"values": {
        "podAnnotations": {"team": "platform"}, "nodeSelector": {"pool": "system"},
        "resources": {"limits": {"cpu": "1"}}, "webhook": {"timeoutSeconds": 20}}}}})
    v = values_of(rec, "cert-manager")
    assert v["podAnnotations"] == {"team": "platform"} and v["webhook"]["timeoutSeconds"] == 20
    assert rec.platform.warnings == []


def test_overrides_without_an_upstream_copy_are_planned_with_a_warning(monkeypatch, tmp_path):
    monkeypatch.setenv("CNAI_UPSTREAM", str(tmp_path / "none"))
    from modules.shared import upstream

    upstream.chart_facts.cache_clear()
    try:
        rec = run("kind", {"cnai:layers": {"kueue": {"values": {"controllerManager": {"replicaz": 2}}}}})
    finally:
        upstream.chart_facts.cache_clear()
    assert rec.platform.warnings == ["cnai:layers.kueue.values: not checked against the charts (no upstream copy: "
                                     "run `make upstream`)"]


# -- namespaces a layer cannot move to ----------------------------------------------------------------

@pytest.mark.parametrize("layer,why", [
    ("pipelines", "Pipelines' install manifests put every object in namespace kubeflow"),
    ("katib", "Katib's install manifests put every object in namespace kubeflow"),
    ("teams", "the teams layer has no namespace of its own to move"),
])
def test_a_namespace_the_layer_cannot_move_to_is_refused(layer, why):
    with pytest.raises(ConfigError, match=rf"^cnai:layers.{layer}.namespace: {why}"):
        run("kind", {"cnai:layers": {layer: {"namespace": "ml"}}})


def test_a_layer_whose_namespace_moves_moves_everything():
    rec = evaluate("kind", {"cnai:layers": {"mlflow": {"namespace": "tracking"}}})
    assert rec.get("kubernetes:helm.sh/v3:Release", "mlflow").inputs["namespace"] == "tracking"
    env = values_of(rec, "jupyterhub")["singleuser"]["extraEnv"]
    assert env["MLFLOW_TRACKING_URI"] == "http://mlflow.tracking.svc.cluster.local:80"


# -- the project's words ------------------------------------------------------------------------------

LIBRARY_WORDING = ("Input should", "instance of", "String should", "List should", "valid dictionary",
                   "Value error", "Expecting value", "Field required", "Extra inputs", "validation error")
MUTATIONS = {
    "cnai:gpu": ["yes", 3, {"enabled": "yes"}, {"count": 2.5}, {"sharing": []}, {"sharing": {"mode": 1}}],
    "cnai:teams": ["a", [{"name": "x" * 60}], [{"name": "a", "quota": "big"}], [{"name": "a", "members": "b"}],
                   [{"name": "a", "owner": "no-email"}], [{}]],
    "cnai:layers": ["all", {"kueue": "on"}, {"kueue": {"enabled": "yes"}}, {"jupyterhub": {"profiles": "none"}},
                    {"jupyterhub": {"cullTimeout": 10}}, {"object-store": {"external": "s3"}},
                    {"kueue": {"priorityClasses": [{"name": "a"}]}}, {"postgres": {"backupRetention": "1 year"}}],
    "cnai:kind": [[], {"workers": "two"}, {"loadImages": "x"}, {"clusterName": "A B"}],
    "cnai:existing": ["x", {"nodes": 0}, {"gpuNodeSelector": {"a": 1}}],
    "cnai:profile": ["huge", 3],
    "cnai:kubernetesVersion": ["1.20", "latest"],
}


@pytest.mark.parametrize("key,value", list(itertools.chain.from_iterable(
    ((k, v) for v in vs) for k, vs in MUTATIONS.items())), ids=lambda x: str(x)[:30])
def test_config_errors_speak_the_projects_words(key, value):
    with pytest.raises(ConfigError) as err:
        run("kind", {key: value})
    message = str(err.value)
    assert "\n" not in message and message.startswith("cnai:"), message
    assert not [w for w in LIBRARY_WORDING if w in message], message


def test_a_broken_stack_yaml_from_the_engine_side_is_still_one_line(tmp_path):
    """The same reader serves the tests' harness and the plan tool: a good file reads as its config."""
    from tools.harness import read_stack_file

    good = tmp_path / "Pulumi.good.yaml"
    good.write_text(yaml.safe_dump({"config": {"cnai:environment": "kind"}}))
    assert read_stack_file(good) == {"cnai:environment": "kind"}
