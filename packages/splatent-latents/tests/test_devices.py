"""The one thread-count policy for CPU runs."""

import torch

from splatent_latents import cpu_threads


def test_cpu_runs_get_one_thread_unless_the_user_says_otherwise(monkeypatch):
    before = torch.get_num_threads()
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    with cpu_threads(torch.device("cpu")) as n:
        assert n == 1 and torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    with cpu_threads(torch.device("cpu")) as n:
        assert n == 2 and torch.get_num_threads() == 2
    with cpu_threads(torch.device("cpu"), threads=3) as n:
        assert n == 3 and torch.get_num_threads() == 3
    assert torch.get_num_threads() == before


def test_cuda_runs_are_left_alone():
    before = torch.get_num_threads()
    with cpu_threads(torch.device("cuda")) as n:
        assert n == before and torch.get_num_threads() == before
