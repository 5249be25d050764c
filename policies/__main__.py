"""Pulumi CrossGuard entry point: one stack-validation policy per rule in policies/rules.py.

    pulumi preview --policy-pack policies      # or: pulumi up --policy-pack policies
"""

from pulumi_policy import EnforcementLevel, PolicyPack, StackValidationPolicy
from rules import RULES, Res


def _res(r) -> Res:
    return Res(type=r.resource_type, name=r.name, urn=r.urn, props=dict(r.props or {}),
               protect=bool(r.opts and r.opts.protect), parent=r.parent.urn if r.parent else "",
               depends_on=[d.urn for d in (r.dependencies or [])])


def _policy(rule) -> StackValidationPolicy:
    def validate(args, report_violation):
        for urn, message in rule.check([_res(r) for r in args.resources]):
            report_violation(message, urn)

    return StackValidationPolicy(name=rule.name, description=rule.description, validate=validate)


PolicyPack(name="cnai", enforcement_level=EnforcementLevel.MANDATORY, policies=[_policy(r) for r in RULES])
