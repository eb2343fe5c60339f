"""What produced a result: the installed Splatent packages' versions and, when they run from a git checkout, its
commit. Recorded in every run's resolved configuration (``fit.json``, ``train_config.json``, ``pipeline.json``), so a
number can be traced back to the code that made it."""

from __future__ import annotations

import functools
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

PACKAGES = ("splatent-data", "splatent-latents", "splatent-splat", "splatent-model", "splatent-train",
            "splatent-pipeline", "splatent-cli")
LIBRARIES = ("torch", "gsplat", "diffusers", "accelerate")


@functools.lru_cache(maxsize=1)
def provenance() -> dict[str, Any]:
    """``{"versions": {package: version}, "git_commit": sha or None, "git_dirty": bool or None}``: the Splatent
    packages and the libraries results depend on that are installed, and the checkout they run from."""
    versions = {}
    for name in PACKAGES + LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    commit, dirty = _git_state(Path(__file__).resolve().parent)
    return {"versions": versions, "git_commit": commit, "git_dirty": dirty}


def _git_state(folder: Path) -> tuple[str | None, bool | None]:
    """The commit of the git work tree holding ``folder`` and whether it has uncommitted changes, or Nones (an
    installed wheel, no git, a slow file system)."""
    try:
        commit = subprocess.run(["git", "-C", str(folder), "rev-parse", "HEAD"], capture_output=True, text=True,
                                timeout=5)
        if commit.returncode != 0:
            return None, None
        status = subprocess.run(["git", "-C", str(folder), "status", "--porcelain", "--untracked-files=no"],
                                capture_output=True, text=True, timeout=5)
        return commit.stdout.strip(), bool(status.stdout.strip()) if status.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None, None
