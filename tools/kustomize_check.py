"""Build the local kustomizations (addons/kustomize/) against a local copy of their upstream repository.

The provider builds them at `pulumi preview` from GitHub; this builds the same thing offline, from a
git mirror or checkout, so that a pin bump shows at once whether every path still exists and every
patch still finds its target (kustomize fails on a `$patch: delete` of an object that is gone):

    python -m tools.kustomize_check --repo kubeflow/community-distribution=/path/to/git-dir-or-checkout \
        [kubeflow-istio kubeflow-platform ...]

For each local kustomization whose remote resources all come from the given repositories, it
extracts those repositories at the pinned ref into a scratch directory (`git archive`), points the
remote URLs at the extracted paths and runs `kubectl kustomize` (or `kustomize build`). It prints
the object count per kind; it never writes into the repository.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

import yaml

from modules.shared.versions import ROOT, VERSIONS

REMOTE = re.compile(r"^https://github\.com/(?P<repo>[^/]+/[^/]+?)(?:\.git)?//(?P<path>[^?]+)\?ref=(?P<ref>.+)$")


def remote_refs(doc: dict) -> list[re.Match]:
    """The GitHub remote resources and components of a kustomization."""
    entries = list(doc.get("resources") or []) + list(doc.get("components") or [])
    return [m for m in (REMOTE.match(e) for e in entries) if m]


def localize(doc: dict, roots: dict[str, str]) -> dict:
    """The kustomization with each remote entry of a repo in `roots` replaced by `roots[repo]/path`
    (a path relative to the kustomization's own directory)."""
    out = dict(doc)
    for key in ("resources", "components"):
        if key in doc:
            out[key] = [f"{roots[m['repo']]}/{m['path']}" if (m := REMOTE.match(e)) and m["repo"] in roots else e
                        for e in doc[key]]
    return out


def _extract(git_dir: Path, ref: str, dest: Path, paths: set[str]) -> None:
    """`git archive REF -- PATHS` of a bare mirror (.../repo) or a checkout into dest."""
    git = ["git", "--git-dir", str(git_dir / ".git" if (git_dir / ".git").exists() else git_dir)]
    # Two levels (common/, applications/<app>/): overlays refer to siblings within them.
    tops = sorted({"/".join(p.split("/")[:2]) if p.startswith("applications/") else p.split("/")[0] for p in paths})
    archive = subprocess.run(git + ["archive", ref, "--", *tops], capture_output=True)
    if archive.returncode != 0:
        raise SystemExit(f"git archive {ref} -- {' '.join(tops)} in {git_dir}: {archive.stderr.decode().strip()}")
    dest.mkdir(parents=True)
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive.stdout, check=True)


def _kustomize() -> list[str]:
    if shutil.which("kustomize"):
        return ["kustomize", "build"]
    if shutil.which("kubectl"):
        return ["kubectl", "kustomize"]
    raise SystemExit("needs kustomize or kubectl on PATH")


def check(keys: list[str], repos: dict[str, Path]) -> int:
    local = {k: m for k, m in VERSIONS.manifests.items() if m.kustomize and not m.url.startswith("http")}
    failed = 0
    with tempfile.TemporaryDirectory(prefix="cnai-kustomize-") as tmp:
        work = Path(tmp)
        # Every local kustomization is copied, so relative references between them keep working.
        for key, man in local.items():
            shutil.copytree(ROOT / man.url, work / "cnai" / key)
        for key in keys or sorted(local):
            path = work / "cnai" / key / "kustomization.yaml"
            doc = yaml.safe_load(path.read_text())
            refs = remote_refs(doc)
            missing = sorted({m["repo"] for m in refs} - set(repos))
            if missing:
                print(f"{key}: skipped (no local copy of {', '.join(missing)})")
                continue
            roots = {}
            for i, repo in enumerate(sorted({m["repo"] for m in refs})):
                ref = next(m["ref"] for m in refs if m["repo"] == repo)
                where = f"src-{key}-{i}"
                _extract(repos[repo], ref, work / where, {m["path"] for m in refs if m["repo"] == repo})
                roots[repo] = f"../../{where}"
            path.write_text(yaml.safe_dump(localize(doc, roots), sort_keys=False))
            done = subprocess.run(_kustomize() + [str(path.parent)], capture_output=True, text=True)
            if done.returncode != 0:
                failed += 1
                errors = [line for line in done.stderr.splitlines() if not line.startswith("# Warning")]
                print(f"{key}: FAILED\n" + "\n".join(errors))
                continue
            kinds = Counter(d["kind"] for d in yaml.safe_load_all(done.stdout) if d)
            print(f"{key}: {sum(kinds.values())} objects ({', '.join(f'{n} {k}' for k, n in sorted(kinds.items()))})")
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tools.kustomize_check", description=__doc__.split("\n")[0])
    ap.add_argument("--repo", action="append", default=[], metavar="OWNER/NAME=GIT_DIR", required=True)
    ap.add_argument("keys", nargs="*", help="manifests keys (default: every local kustomization)")
    args = ap.parse_args(argv)
    repos = {}
    for item in args.repo:
        name, _, where = item.partition("=")
        repos[name] = Path(where)
    return check(args.keys, repos)


if __name__ == "__main__":
    sys.exit(main())
