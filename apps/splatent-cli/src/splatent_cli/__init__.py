"""The ``splatent`` command line: a thin Typer layer over the splatent-* packages."""

__version__ = "0.5.0"
