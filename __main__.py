"""Pulumi entry point for the CNAI platform; the program lives in engine/program.py."""

import pulumi

from engine.program import build, load
from modules.shared.config import ConfigError

try:
    platform = load()
except ConfigError as exc:
    # RunError ends the update with this one line, no stack trace.
    raise pulumi.RunError(f"invalid stack config: {exc}") from None
build(platform)
