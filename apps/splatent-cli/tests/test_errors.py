"""The error boundary: OS-level and library failures become one line; --debug / SPLATENT_DEBUG keep the traceback."""

import errno
import pickle

import pytest

from splatent_cli.errors import EXIT_BAD_INPUT, EXIT_ENVIRONMENT, describe


@pytest.mark.parametrize("exc, fragment, code", [
    (FileExistsError(errno.EEXIST, "File exists", "/out"), "exists and is a file", EXIT_BAD_INPUT),
    (NotADirectoryError(errno.ENOTDIR, "Not a directory", "/f/sub"), "is a file, not a folder", EXIT_BAD_INPUT),
    (IsADirectoryError(errno.EISDIR, "Is a directory", "/d"), "is a folder where a file", EXIT_BAD_INPUT),
    (PermissionError(errno.EACCES, "Permission denied", "/ro"), "permission denied", EXIT_ENVIRONMENT),
    (OSError(errno.ENOSPC, "No space left on device", "/full"), "no space left", EXIT_ENVIRONMENT),
    (OSError(errno.EFBIG, "File too large", "/big"), "file too large", EXIT_ENVIRONMENT),
    (pickle.UnpicklingError("Weights only load failed"), "refused to load a pickle", EXIT_BAD_INPUT),
    (RuntimeError("[enforce fail at inline_container.cc:664] . unexpected pos 64 vs 0"), "writing a file failed",
     EXIT_ENVIRONMENT),
    (RuntimeError("Caught OSError in DataLoader worker process 0.\nOriginal Traceback (most recent call last):\n"
                  "  File x\nOSError: [Errno 28] No space left on device"), None, None),
])
def test_known_failures_become_one_line(exc, fragment, code):
    known = describe(exc)
    if fragment is None:  # a RuntimeError without a write failure is a bug: its traceback is kept
        assert known is None
        return
    message, exit_code = known
    assert fragment in message and "\n" not in message and exit_code == code
    if getattr(exc, "filename", None):
        assert exc.filename in message


def test_output_that_is_a_file_is_one_line_and_debug_shows_the_traceback(cli, tmp_path):
    (tmp_path / "latents").mkdir()
    (tmp_path / "latents" / "manifest.json").write_text("{}")
    out = tmp_path / "taken"
    out.write_text("keep me")
    r = cli("decode", tmp_path / "latents", "--output", out / "sub")
    assert r.returncode != 0 and "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines()[-1].startswith("splatent decode: ")
    assert out.read_text() == "keep me"
    r = cli("--debug", "decode", tmp_path / "latents", "--output", out / "sub")
    assert r.returncode != 0 and "Traceback" in r.stderr



@pytest.mark.parametrize("command, target, hint", [
    ("fit", "splatent_splat.fit_scene", "a re-run with --resume continues from the last checkpoint"),
    ("extract", "splatent_latents.extract_latents", "a re-run resumes"),
])
def test_ctrl_c_says_how_to_go_on(command, target, hint, tmp_path, monkeypatch):
    """A plain re-run of an interrupted fit is refused ("pass --resume"): the line said "a re-run resumes"."""
    from typer.testing import CliRunner

    from splatent_cli.errors import EXIT_INTERRUPTED
    from splatent_cli.main import app

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    module, name = target.rsplit(".", 1)
    monkeypatch.setattr(__import__(module), name, interrupted)
    args = [command, str(tmp_path)] + (["--output", str(tmp_path / "model")] if command == "fit" else [])
    result = CliRunner().invoke(app, args)
    assert result.exit_code == EXIT_INTERRUPTED
    assert result.output.strip().splitlines()[-1] == f"splatent {command}: interrupted; finished outputs are kept and {hint}"
