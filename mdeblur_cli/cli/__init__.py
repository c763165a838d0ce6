"""The `mdeblur` command line: thin Typer commands over the package's functions, one module per group of
commands (app.py holds the application and its one error boundary); importing it imports no torch. The import
order below is the order of the commands in --help."""

from .app import app  # noqa: I001
from . import restore, info, train, evaluate, data, export  # noqa: F401  (each module registers its commands)

__all__ = ["app"]
