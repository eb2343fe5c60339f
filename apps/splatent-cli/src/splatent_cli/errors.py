"""The CLI's one error boundary: every known failure becomes ``splatent <command>: <what, where, how to fix>``
on stderr and a non-zero exit, never a traceback. ``--debug`` (or ``SPLATENT_DEBUG=1``) lets the traceback
through, for bug reports."""

from __future__ import annotations

import errno
import functools
import json
import logging
import os
import pickle
import sys
from typing import Callable, TypeVar

import typer

from splatent_data import SplatentError

F = TypeVar("F", bound=Callable)

EXIT_BAD_INPUT = 1
EXIT_ENVIRONMENT = 2  # the machine, not the input: disk full, permissions, out of memory
EXIT_INTERRUPTED = 130
DEBUG_ENV = "SPLATENT_DEBUG"


def debugging() -> bool:
    return os.environ.get(DEBUG_ENV, "").strip().lower() not in ("", "0", "false", "no")


def fail(command: str, message: str, code: int = EXIT_BAD_INPUT) -> "typer.Exit":
    """Print ``splatent <command>: <message>`` on stderr and return the exit to raise."""
    print(f"splatent {command}: {message}", file=sys.stderr)
    return typer.Exit(code)


def _one_line(text: str) -> str:
    """The last meaningful line of a message (an exception re-raised from a data-loader worker carries the
    worker's whole traceback in its text)."""
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    if not lines:
        return ""
    last = lines[-1]
    for prefix in ("OSError: ", "RuntimeError: ", "ValueError: "):
        if last.startswith(prefix):
            last = last[len(prefix):]
    return last


def _where(exc: OSError) -> str:
    return str(exc.filename) if exc.filename else "a path"


WRITE_FAILED = ("inline_container", "PytorchStreamWriter failed", "file write failed", "unexpected pos")


def describe(exc: BaseException) -> tuple[str, int] | None:
    """``(message, exit code)`` for a known failure, ``None`` for a bug (which keeps its traceback)."""
    if isinstance(exc, SplatentError):
        return str(exc), EXIT_BAD_INPUT
    if isinstance(exc, FileNotFoundError):
        return f"{_where(exc)}: no such file or folder", EXIT_BAD_INPUT
    if isinstance(exc, FileExistsError):
        return (f"{_where(exc)}: exists and is a file where a folder is needed; pass another output path or "
                "remove the file"), EXIT_BAD_INPUT
    if isinstance(exc, NotADirectoryError):
        return (f"{_where(exc)}: a part of this path is a file, not a folder; pass an output path under a "
                "folder"), EXIT_BAD_INPUT
    if isinstance(exc, IsADirectoryError):
        return f"{_where(exc)}: is a folder where a file is needed; pass a file path", EXIT_BAD_INPUT
    if isinstance(exc, PermissionError):
        return (f"{_where(exc)}: permission denied; choose a folder you can write (or read), or change its "
                "permissions"), EXIT_ENVIRONMENT
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        return (f"no space left on the device writing {_where(exc)}; free some space and re-run (finished "
                "outputs are kept)"), EXIT_ENVIRONMENT
    if isinstance(exc, OSError) and exc.errno == errno.EFBIG:
        return (f"file too large writing {_where(exc)} (the file-size limit, ulimit -f, or the file system's); "
                "raise the limit and re-run (finished outputs are kept)"), EXIT_ENVIRONMENT
    if isinstance(exc, OSError):
        reason = exc.strerror or _one_line(str(exc)) or type(exc).__name__
        return f"{_where(exc)}: {reason}", EXIT_ENVIRONMENT
    if isinstance(exc, pickle.UnpicklingError):
        return (f"refused to load a pickle that could run code ({_one_line(str(exc))[:200]}); only weights-only "
                "files are read: use a checkpoint this version wrote"), EXIT_BAD_INPUT
    if isinstance(exc, json.JSONDecodeError):
        return f"a JSON file is not valid JSON ({exc.msg} at line {exc.lineno}); fix or regenerate it", EXIT_BAD_INPUT
    if isinstance(exc, MemoryError):
        return "out of memory; use a smaller --batch_size, resolution or fewer Gaussians", EXIT_ENVIRONMENT
    try:
        import torch

        if isinstance(exc, torch.cuda.OutOfMemoryError):
            return ("out of GPU memory; use a smaller --batch_size or resolution, or free the GPU"), EXIT_ENVIRONMENT
    except ImportError:  # pragma: no cover - torch is a dependency of every stage but `scene`
        pass
    if isinstance(exc, RuntimeError) and any(m in str(exc) for m in WRITE_FAILED):
        return ("writing a file failed (disk full or a file-size limit?): " + _one_line(str(exc))[:200] +
                "; free space and re-run (finished outputs are kept)"), EXIT_ENVIRONMENT
    if type(exc).__name__ == "SafetensorError":
        return f"a .safetensors file is corrupt or truncated ({_one_line(str(exc))}); re-create it", EXIT_BAD_INPUT
    return None


def guarded(command: str, resume: str = "a re-run resumes") -> Callable[[F], F]:
    """Run a command body inside the error boundary (:func:`describe`); Ctrl-C is one line too, saying how to go
    on (``resume``: the commands whose re-run is refused without a flag name it)."""

    def wrap(fn: F) -> F:
        @functools.wraps(fn)
        def run(*args, **kwargs):
            try:
                return fn(*args, **kwargs)
            except (typer.Exit, typer.Abort, SystemExit):
                raise
            except KeyboardInterrupt:
                raise fail(command, f"interrupted; finished outputs are kept and {resume}",
                           EXIT_INTERRUPTED) from None
            except Exception as exc:
                known = describe(exc)
                if known is None or debugging():
                    raise
                message, code = known
                raise fail(command, message, code) from None

        return run  # type: ignore[return-value]

    return wrap


class _LowerLevelFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        if record.levelno == logging.INFO:
            return record.getMessage()
        return f"{record.levelname.lower()}: {record.getMessage()}"


def setup_logging(verbose: bool = False) -> None:
    """Warnings from the packages' ``splatent`` logger as ``warning: ...`` lines on stderr."""
    logger = logging.getLogger("splatent")
    if not logger.handlers:
        # Plain lines on stderr: stdout stays clean for --json output and pipes.
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(_LowerLevelFormatter())
        logger.addHandler(handler)
    logger.setLevel(logging.DEBUG if verbose else logging.INFO)
    logger.propagate = False
