"""Every run records what produced it: package versions and the git commit of the checkout."""

import subprocess
from pathlib import Path

from splatent_data import provenance


def test_provenance_names_this_package_and_the_checkout():
    info = provenance()
    assert info["versions"]["splatent-data"].count(".") >= 2
    import importlib

    module = importlib.import_module("splatent_data.provenance")  # the module (the package exports the function)
    here = Path(module.__file__).resolve().parent  # where the package runs from: a checkout, or an installed wheel
    git = subprocess.run(["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True, text=True)
    if git.returncode == 0:  # a git checkout (CI clones one): its commit, and whether it has local changes
        assert info["git_commit"] == git.stdout.strip() and isinstance(info["git_dirty"], bool)
    else:
        assert info["git_commit"] is None
