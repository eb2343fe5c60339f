def test_help_lists_every_stage(cli):
    out = cli("--help").stdout
    for cmd in ["extract", "fit", "render", "dataset", "train", "enhance", "pipeline", "demo", "eval", "scene"]:
        assert cmd in out


def test_cli_start_does_not_import_torch():
    """`splatent --help` and argument errors stay fast: torch loads only inside a command that needs it."""
    import subprocess
    import sys

    code = "import sys, splatent_cli.main; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "False"


def test_a_finished_command_releases_its_process_group(tmp_path, monkeypatch):
    """After a command succeeds, ``main`` destroys the torch.distributed group an ``accelerate launch`` run joined (gloo
    aborts a finished process at exit otherwise); after a failure it leaves it (the others may be mid-collective)."""
    import pytest
    import torch.distributed as dist

    from splatent_cli.main import main

    def run(*argv: str) -> int:
        monkeypatch.setattr("sys.argv", ["splatent", *argv])
        with pytest.raises(SystemExit) as done:
            main()
        return done.value.code

    store = dist.FileStore(str(tmp_path / "store"), 1)
    dist.init_process_group("gloo", store=store, rank=0, world_size=1)
    try:
        assert run("dataset", "--help") == 0
        assert not dist.is_initialized()
        dist.init_process_group("gloo", store=dist.FileStore(str(tmp_path / "store2"), 1), rank=0, world_size=1)
        assert run("extract", str(tmp_path / "missing")) != 0
        assert dist.is_initialized()
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
