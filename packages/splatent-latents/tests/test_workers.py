"""Data-loader workers neither hang a run nor outlive it (splatent_latents.workers)."""

from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from multiprocessing.reduction import ForkingPickler

import torch.multiprocessing  # noqa: F401  (registers the tensor reductions on ForkingPickler)

from splatent_latents.workers import arrays_to_tensors, as_is, tensors_to_arrays

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is dead too
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


@linux_only
def test_a_worker_dies_with_its_killed_parent(tmp_path):
    """A parent starts a DataLoader with ``die_with_parent`` workers and is killed with SIGKILL: its workers go."""
    script = textwrap.dedent(f"""
        import os, time, torch
        from splatent_latents.workers import die_with_parent

        class Slow(torch.utils.data.Dataset):
            def __len__(self): return 1000
            def __getitem__(self, i):
                open({str(tmp_path)!r} + f"/worker-{{os.getpid()}}", "w").close()
                time.sleep(60)
                return i

        for _ in torch.utils.data.DataLoader(Slow(), num_workers=2, worker_init_fn=die_with_parent):
            pass
    """)
    parent = subprocess.Popen([sys.executable, "-c", script])
    try:
        deadline = time.time() + 60
        while len(list(tmp_path.glob("worker-*"))) < 2 and time.time() < deadline:
            time.sleep(0.2)
        workers = [int(p.name.split("-")[1]) for p in tmp_path.glob("worker-*")]
        assert len(workers) == 2 and all(_alive(w) for w in workers)
        parent.send_signal(signal.SIGKILL)
        parent.wait(10)
        deadline = time.time() + 10
        while any(_alive(w) for w in workers) and time.time() < deadline:
            time.sleep(0.1)
        assert not any(_alive(w) for w in workers), "a data-loader worker outlived its killed parent"
    finally:
        parent.kill()


def test_tensors_cross_the_pipe_as_arrays():
    """A state of tensors pickles with its bytes inline (no shared-memory file) and comes back equal, without
    touching arrays, other values or tensors NumPy cannot hold."""
    views = torch.randn(2, 4, 4, 8, 8)
    state = {"views": views, "ids": ["a", "b"], "raw": np.arange(3), "bf16": torch.ones(2, dtype=torch.bfloat16),
             "none": None}
    packed = tensors_to_arrays(state)
    data = ForkingPickler.dumps(packed)
    assert len(data) > views.numel() * 4  # the values travel in the pickle itself
    back = arrays_to_tensors(pickle.loads(data))
    assert torch.equal(back["views"], views) and back["ids"] == ["a", "b"] and back["none"] is None
    assert isinstance(back["raw"], np.ndarray) and back["bf16"].dtype == torch.bfloat16
    assert as_is(packed) is packed


EXTRACT = """
import sys
from splatent_latents import extract_latents
extract_latents(sys.argv[1], codec="pca", device="cpu", workers=2, output=sys.argv[2])
"""


@linux_only
@pytest.mark.parametrize("limit, ok", [(300_000, True), (20_000, False)])
def test_extract_with_workers_under_a_file_size_limit_never_hangs(tmp_path, make_images, limit, ok):
    """``ulimit -f``: image batches (about 2 MB) exceed the limit where a latent (about 50 KB) does not. Batches
    used to go through shared-memory files, whose failure in a worker hung extract forever; now the run ends
    on its own: done under 300 KB, a clear OS error naming the latent under 20 KB."""
    import resource

    make_images(tmp_path / "images", 6, size=(512, 384))
    started = time.time()
    run = subprocess.run([sys.executable, "-c", EXTRACT, str(tmp_path / "images"), str(tmp_path / "latents")],
                         capture_output=True, text=True, timeout=120,
                         preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit)))
    assert time.time() - started < 90
    if ok:
        assert run.returncode == 0, run.stderr
        assert len(list((tmp_path / "latents").glob("*.pt"))) == 6
    else:
        assert run.returncode != 0 and "File too large" in run.stderr and ".pt" in run.stderr
