"""The per-layer kind CI: every layer that can run on kind gets a job whose stack is valid and small."""

from __future__ import annotations

import pytest

from addons import LAYERS
from tools import ci
from tools.harness import run


def test_every_layer_but_the_cloud_only_ones_has_a_job():
    assert set(ci.layers()) == set(LAYERS) - {"cluster-autoscaler"}


@pytest.mark.parametrize("layer", ci.layers())
def test_layer_stack_is_valid_and_holds_only_what_the_layer_needs(layer):
    config = ci.stack_config(layer)
    overrides = {k: v for k, v in config.items() if k.startswith("cnai:")}
    rec = run("kind", overrides)
    enabled = set(rec.spec.enabled_layers())
    assert layer in enabled and enabled <= set(ci.requirements(layer)) | {"teams"}
    if layer in ci.GPU_SCHEDULING:  # GPU scheduling is tested on simulated GPUs
        assert rec.spec.kind.simulateGpus and rec.spec.gpu.enabled and "gpu-operator" not in enabled
        assert rec.get("command:local:Command", f"simulate-gpus-ci-{layer}-worker2")
