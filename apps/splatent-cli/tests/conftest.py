from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
FOX = REPO.parent / "shared" / "data" / "fox"


def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run ``splatent ARGS`` as a user would, in a fresh interpreter."""
    return subprocess.run([sys.executable, "-m", "splatent_cli", *map(str, args)],
                          capture_output=True, text=True, cwd=cwd, timeout=600)


@pytest.fixture
def cli():
    return run_cli


@pytest.fixture
def fox() -> Path:
    if not (FOX / "transforms.json").is_file():
        pytest.skip(f"the fox capture is not at {FOX} (it ships with the CI machine's shared/ folder)")
    return FOX
