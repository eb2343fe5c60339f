"""Turning known errors into one line and an exit code, never a traceback."""

from __future__ import annotations

import functools
import logging
import sys
from typing import Callable, TypeVar

import typer

from splatent_data import SplatentError

F = TypeVar("F", bound=Callable)

EXIT_BAD_INPUT = 1


def fail(command: str, message: str, code: int = EXIT_BAD_INPUT) -> "typer.Exit":
    """Print ``splatent <command>: <message>`` on stderr and return the exit to raise."""
    print(f"splatent {command}: {message}", file=sys.stderr)
    return typer.Exit(code)


def guarded(command: str) -> Callable[[F], F]:
    """Run a command body, turning SplatentError, bad paths and Ctrl-C into one line each."""

    def wrap(fn: F) -> F:
        @functools.wraps(fn)
        def run(*args, **kwargs):
            try:
                return fn(*args, **kwargs)
            except SplatentError as exc:
                raise fail(command, str(exc)) from None
            except FileNotFoundError as exc:
                raise fail(command, f"{exc.filename or exc}: no such file or folder") from None
            except KeyboardInterrupt:
                raise fail(command, "interrupted; finished outputs are kept and a re-run resumes", 130) from None

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
