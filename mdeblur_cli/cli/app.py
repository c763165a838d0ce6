"""The command line's application: the Typer app, its one error boundary and the shared option parsers."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

from .. import __version__
from ..errors import MdeblurError

console = Console(stderr=True)


def fail(exc: MdeblurError) -> None:
    from rich.markup import escape

    console.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False, soft_wrap=True, emoji=False)
    raise typer.Exit(2)


class _Boundary(typer.core.TyperGroup):
    """The one place where the package's error becomes a one-line message and exit code 2 (as fastapi-cli
    does): commands raise MdeblurError and never print it themselves."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except MdeblurError as exc:
            fail(exc)


app = typer.Typer(
    cls=_Boundary,
    help="Restore blurry, low-resolution optical microscope images with M-Deblurgan (deblur + x2 SR).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def parse_percentiles(text: str | None) -> tuple[float, float] | None:
    """'LO,HI' to a pair of percentiles, checked."""
    if text is None:
        return None
    from ..restore.normalize import check_percentiles

    parts = text.split(",")
    if len(parts) != 2:
        raise MdeblurError(f"--percentiles {text}: expected two numbers LO,HI such as 0.1,99.9")
    try:
        return check_percentiles(parts)
    except ValueError as exc:
        raise MdeblurError(f"--percentiles {text}: {exc} (LO,HI such as 0.1,99.9)") from None


def parse_range_and_noise(defocus: str, noise: str) -> tuple[tuple[float, float], float | None]:
    """--defocus LO:HI (or one value) and --noise PHOTONS|none, as simulate and adapt take them."""
    try:
        lo, _, hi = defocus.partition(":")
        return (float(lo), float(hi or lo)), None if noise == "none" else float(noise)
    except ValueError:
        raise MdeblurError(f"--defocus {defocus} / --noise {noise}: give LO:HI in um and photons at white (or "
                           "none)") from None


def _version(value: bool) -> None:
    if value:
        print(f"mdeblur {__version__}")
        raise typer.Exit()


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Python warnings as one line each ("warning: ..."), not as source locations."""
    from rich.markup import escape

    console.print(f"[yellow]warning:[/yellow] {escape(str(message))}", highlight=False, soft_wrap=True)


@app.callback()
def main(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version.")] = False,
) -> None:
    """mdeblur command line."""
    import warnings

    warnings.showwarning = _show_warning


