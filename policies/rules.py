"""The platform's guardrails as plain functions over a stack's resources (no Pulumi engine needed).

Each rule takes every resource of a stack (`Res`: type, name, urn, props, protect, parent) and
returns violations (`(urn, message)`). `policies/__main__.py` wires them into a Pulumi CrossGuard
policy pack (`pulumi preview --policy-pack policies`); the offline tests run them over the mock graph
of every stack, and over a broken fixture per rule. Props use the engine's camelCase names.
"""

from __future__ import annotations

import cloud_rules  # noqa: F401 - registers its rules
import kubernetes_rules  # noqa: F401 - registers its rules
from framework import RULES, Res, Rule, Violation, evaluate

__all__ = ["RULES", "Res", "Rule", "Violation", "evaluate"]
