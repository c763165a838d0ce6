"""Export a generator for other runtimes: ONNX (onnxruntime, deepImageJ, ilastik), TorchScript, and both in a
BioImage Model Zoo package (bioimage.py).

The exported graph maps a float32 (N, 3, H, W) image, normalised as `restore` does (see the weights'
normalisation record), to the (N, 3, sH, sW) restored image. H and W are dynamic but must be multiples of the
network's grid (8 for M-Deblurgan, 16 for U-Net + SR: the traced graph cannot pad; `restore` pads itself, a
runtime must too).
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import torch
from torch import nn

from ..errors import MdeblurError
from ..weights import LoadedModel

FORMATS = ("onnx", "torchscript", "bioimageio")
SUFFIXES = {"onnx": (".onnx",), "torchscript": (".pt", ".pth", ".ts"), "bioimageio": (".zip",)}
EXAMPLE_SIDE = 64  # the traced example; any multiple of 8 works at run time
OPSET = 17


class RestoredImage(nn.Module):
    """The generator with one output, the restored image (the deblurred low-res image is dropped)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (N, 3, H, W) -> (N, 3, sH, sW)
        return self.model(x)[0]


def format_for(path: Path, fmt: str | None) -> str:
    """The format asked for, or the one the file name says (.onnx, .pt, .zip); refuses a mismatch."""
    by_suffix = next((f for f, sfx in SUFFIXES.items() if path.suffix.lower() in sfx), None)
    if fmt is None:
        if by_suffix is None:
            raise MdeblurError(f"-o {path}: give --format ({', '.join(FORMATS)}) or a file name ending in "
                               ".onnx, .pt or .zip (bioimageio)")
        return by_suffix
    if fmt not in FORMATS:
        raise MdeblurError(f"--format {fmt}: use {', '.join(FORMATS)}")
    if path.suffix.lower() not in SUFFIXES[fmt]:
        raise MdeblurError(f"-o {path}: a {fmt} export is written to a {' or '.join(SUFFIXES[fmt])} file")
    return fmt


def describe(model: LoadedModel) -> dict:
    """What a runtime needs to know to use the export, stored in the file."""
    from .. import __version__
    from ..restore.tiles import Grid

    multiple = Grid.of(model.net).multiple  # the input sides an export accepts: the network's own grid
    return {"mdeblur_version": __version__, "arch": model.arch,
            "scale": model.scale, "input": f"float32 (N, 3, H, W), H and W multiples of {multiple}",
            "multiple": multiple,
            "normalization": {"mode": "percentile", "percentiles": list(model.percentiles),
                              "note": "8-bit input: divide by 255 instead; map the output back by the inverse"},
            "provenance": model.provenance}


def _export_onnx(net: nn.Module, example: torch.Tensor, path: Path, info: dict) -> None:
    try:
        import onnx
    except ImportError:
        raise MdeblurError(f"{path}: ONNX export needs the onnx extra: pip install 'mdeblur[onnx]'") from None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the tracer's notes on constant shapes: the graph is checked below
        torch.onnx.export(net, (example,), str(path), input_names=["input"], output_names=["output"],
                          dynamic_axes={"input": {0: "batch", 2: "height", 3: "width"},
                                        "output": {0: "batch", 2: "height_x", 3: "width_x"}},
                          opset_version=OPSET, dynamo=False)
    graph = onnx.load(str(path))
    graph.metadata_props.add(key="mdeblur", value=json.dumps(info))
    onnx.save(graph, str(path))


def _export_torchscript(net: nn.Module, example: torch.Tensor, path: Path, info: dict) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(net, example, check_trace=False)
    torch.jit.save(traced, str(path), _extra_files={"mdeblur.json": json.dumps(info)})


def export(model: LoadedModel, fmt: str | None, path: str | Path, overwrite: bool = False,
           name: str = "mdeblurgan-x2") -> dict:
    """Write `model` as `fmt` to `path`, atomically; returns the stored description.

    onnx and torchscript write one graph; bioimageio a BioImage Model Zoo zip (see bioimage.py) named `name`.
    """
    from ..formats.images import atomic_write
    from ..formats.paths import check_new_file

    path = Path(path)
    fmt = format_for(path, fmt)
    check_new_file(path, overwrite, "-o")
    if fmt == "bioimageio":
        from .bioimage import export_bioimageio

        try:
            import onnx  # noqa: F401  (the package carries ONNX weights)
        except ImportError:
            raise MdeblurError(f"{path}: the BioImage package needs the onnx extra: pip install 'mdeblur[onnx]'") from None
        out: dict = {}
        atomic_write(path, lambda tmp: out.update(export_bioimageio(model, tmp, name)))
        return {**out, "format": fmt}
    net = RestoredImage(model.net.cpu().eval()).eval()
    example = torch.rand(1, 3, EXAMPLE_SIDE, EXAMPLE_SIDE)  # a multiple of every network's grid
    info = describe(model)
    info["format"] = fmt
    write = _export_onnx if fmt == "onnx" else _export_torchscript
    atomic_write(path, lambda tmp: write(net, example, tmp, info))
    return info
