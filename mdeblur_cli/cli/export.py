"""`mdeblur export`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .app import app, console


@app.command(epilog="Examples:\n\n  mdeblur export -o mdeblurgan-x2.onnx\n\n  mdeblur export --weights runs/mine/best.safetensors -o mine.pt\n\n  mdeblur export --format bioimageio -o mdeblurgan-x2.zip      # BioImage Model Zoo package")
def export(
    output: Annotated[Path, typer.Option("-o", "--output", help="File to write: .onnx, .pt, or .zip (bioimageio).")],
    weights: Annotated[str, typer.Option(help="Shipped model name or .safetensors path.")] = "mdeblurgan-x2",
    fmt: Annotated[str | None, typer.Option("--format", help="onnx (needs the onnx extra), torchscript, or bioimageio (a BioImage Model Zoo "
                                                          "package: rdf.yaml, ONNX and TorchScript weights, test tensors, card). \\[default: from the file name]")] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing file.")] = False,
) -> None:
    """Export the generator for other runtimes (dynamic height and width on the network's grid; normalised input)."""
    from ..export.write import export as run_export
    from ..weights import load_model

    info = run_export(load_model(weights), fmt, output, overwrite, name=Path(weights).stem)
    lo, hi = info["normalization"]["percentiles"]
    console.print(f"wrote {output} ({info['format']}, {info['arch']} x{info['scale']}; input {info['input']}, "
                  f"normalised: its {lo:g} and {hi:g} percentiles to 0 and 1"
                  f"{' (the package declares this preprocessing)' if info['format'] == 'bioimageio' else ''}; "
                  "output in the same normalised units: map it back with the input's percentiles)",
                  markup=False, highlight=False, soft_wrap=True)
