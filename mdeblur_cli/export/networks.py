"""Export a generator for other runtimes: ONNX (onnxruntime, deepImageJ, ilastik), TorchScript, and both in a
BioImage Model Zoo package (bioimage.py); write.py picks the format and writes the file.

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

EXAMPLE_SIDE = 64  # the traced example; any multiple of 8 works at run time
OPSET = 17


class RestoredImage(nn.Module):
    """The generator with one output, the restored image (the deblurred low-res image is dropped)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (N, 3, H, W) -> (N, 3, sH, sW)
        return self.model(x)[0]


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


def export_onnx(net: nn.Module, example: torch.Tensor, path: Path, info: dict) -> None:
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


def export_torchscript(net: nn.Module, example: torch.Tensor, path: Path, info: dict) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(net, example, check_trace=False)
    torch.jit.save(traced, str(path), _extra_files={"mdeblur.json": json.dumps(info)})
