"""Adding a layer is the four files docs/adding-a-layer.md names, nothing else: a copy of the repository
gets a fixture layer (tests/fixtures/new-layer), regenerates its docs, plans a stack that names the layer
and runs the layer's test, the docs checks and the architecture checks there."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from modules.shared import upstream
from modules.shared.versions import ROOT
from tools import docs

FIXTURE = ROOT / "tests" / "fixtures" / "new-layer"
# Fixture file -> where it goes, and how (the versions.yaml entry goes under `charts:`).
FILES = {"sandbox_db.py": "addons/sandbox_db.py", "versions.yaml": "versions.yaml",
         "test_sandbox_db.py": "tests/test_sandbox_db.py", "sandbox-db.md": "docs/layers/sandbox-db.md"}
IGNORE = shutil.ignore_patterns(".git", ".venv", ".cache", "__pycache__", ".pytest_cache", "*.pyc")


def files_the_guide_names() -> set[str]:
    """The files docs/adding-a-layer.md says a new layer touches (its numbered list of backticked paths)."""
    text = (ROOT / "docs" / "adding-a-layer.md").read_text()
    section = text.split("## The four files", 1)[1].split("\n## ", 1)[0]
    return {m.group(1).replace("<layer>", "sandbox-db").replace("<module>", "sandbox_db")
            for m in re.finditer(r"^\d+\. `([^`]+)`", section, re.M)}


def without_generated(text: str) -> str:
    return re.sub(r"<!-- generated:([\w-]+) -->\n.*?<!-- /generated:\1 -->", "", text, flags=re.S)


def run(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess:
    # The copy sits elsewhere: point it at the upstream copy this checkout reads (if any).
    env = {**os.environ, **({"CNAI_UPSTREAM": str(upstream.root())} if upstream.root() else {})}
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=600, env=env)


@pytest.fixture(scope="module")
def copy(tmp_path_factory) -> Path:
    repo = tmp_path_factory.mktemp("new-layer") / "repo"
    shutil.copytree(ROOT, repo, ignore=IGNORE)
    for name, target in FILES.items():
        text = (FIXTURE / name).read_text()
        if target == "versions.yaml":
            versions = (repo / target).read_text()
            text = versions.replace("charts:\n", "charts:\n" + text, 1)
        (repo / target).write_text(text)
    shutil.copy(FIXTURE / "stack.yaml", repo / "stacks" / "Pulumi.sandbox.yaml")  # a stack that uses it
    assert run([sys.executable, "-m", "tools.docs"], repo).returncode == 0
    return repo


def test_the_guide_names_at_most_four_files():
    assert files_the_guide_names() == set(FILES.values())


def test_the_new_layer_plans_and_its_checks_pass(copy):
    plan = run([sys.executable, "-m", "tools.plan", "sandbox"], copy)
    assert plan.returncode == 0, plan.stderr
    assert re.search(r"^  sandbox-db\s+https://cloudnative-pg.github.io/charts/cluster 0.8.1", plan.stdout, re.M)
    assert "sandbox-db" not in run([sys.executable, "-m", "tools.plan", "kind"], copy).stdout  # opt-in
    tests = run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_sandbox_db.py",
                 "tests/test_docs.py", "tests/test_architecture.py", "tests/test_upstream_values.py", "-k",
                 "sandbox or docs or architecture or layer or import or lines or peers or offer or phase"], copy)
    assert tests.returncode == 0, tests.stdout[-3000:]
    assert " passed" in tests.stdout and " failed" not in tests.stdout
    if upstream.root():  # the new layer's values were checked against its chart, not skipped
        assert "skipped" not in tests.stdout.splitlines()[-1], tests.stdout.splitlines()[-1]


def test_nothing_else_changed(copy):
    """Only the four files, the stack that uses the layer, and generated blocks of the docs differ."""
    changed = set()
    for path in sorted(copy.rglob("*")):
        rel = path.relative_to(copy)
        if path.is_dir() or IGNORE(str(path.parent), [path.name]) or "__pycache__" in rel.parts:
            continue
        original = ROOT / rel
        if not original.exists() or original.read_bytes() != path.read_bytes():
            changed.add(str(rel))
    generated = {path for path in docs.BLOCKS}
    assert {c for c in changed if c not in generated} == set(FILES.values()) | {"stacks/Pulumi.sandbox.yaml"}
    for rel in changed & generated:
        assert without_generated((copy / rel).read_text()) == without_generated((ROOT / rel).read_text()), rel
