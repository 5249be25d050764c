"""Smoke tests against a real, deployed cluster (docs/testing.md); skipped without one."""
