"""Pulumi entry point for the CNAI platform; the program lives in modules/program.py."""

import pulumi

from modules.config import ConfigError
from modules.program import build, load_spec

try:
    spec = load_spec()
except ConfigError as exc:
    # RunError ends the update with this one line, no stack trace.
    raise pulumi.RunError(f"invalid stack config: {exc}") from None
build(spec)
