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
