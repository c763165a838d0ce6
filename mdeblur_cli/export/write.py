"""`mdeblur export`: the format asked for (or the one the file name says), written atomically: ONNX or
TorchScript (networks.py), or a BioImage Model Zoo package (bioimage.py)."""

from __future__ import annotations

from pathlib import Path

import torch

from ..errors import MdeblurError
from ..weights import LoadedModel
from .networks import EXAMPLE_SIDE, RestoredImage, describe, export_onnx, export_torchscript

FORMATS = ("onnx", "torchscript", "bioimageio")
SUFFIXES = {"onnx": (".onnx",), "torchscript": (".pt", ".pth", ".ts"), "bioimageio": (".zip",)}


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
    write = export_onnx if fmt == "onnx" else export_torchscript
    atomic_write(path, lambda tmp: write(net, example, tmp, info))
    return info
