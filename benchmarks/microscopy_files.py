"""Fluorescence-like channels through `restore_file`: per-channel PSNR against bicubic, and channel leakage.

A 3-channel 16-bit OME-TIFF (C,Y,X; PhysicalSizeX 0.65 um) is made from two reserved scikit-image images
(evaluation only: `cell` and `immunohistochemistry` as gray, 256x256 crops) with an empty middle channel at a camera offset
of 100 counts, by the FIRE protocol (antialiased bicubic down x2, Gaussian sigma 1.5 LR px), 12-bit range.
It is restored as a user would (`restore_file`, shipped weights) with --channels auto (independent here)
and rgb, and compared with bicubic of the same file. PSNR: data range = the 3000-count signal span, border 2.

    python benchmarks/microscopy_files.py
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import tifffile
import torch
from skimage import data

from mdeblur_cli.data.degrade import fire_protocol, upscale_bicubic
from mdeblur_cli.evaluate.metrics import psnr
from mdeblur_cli.restore.files import restore_file
from mdeblur_cli.weights import load_model

OFFSET, SPAN = 100, 3000


def _gray(a: np.ndarray) -> np.ndarray:
    a = a.astype(np.float32)
    a = a.mean(2) if a.ndim == 3 else a
    a = a[:256, :256]
    return (a - a.min()) / (a.max() - a.min())


def _score(out: np.ndarray, truth: np.ndarray, c: int) -> float:
    t = lambda x: torch.from_numpy((x.astype(np.float32) - OFFSET) / SPAN)[None, None]  # noqa: E731
    return psnr(t(out[c]), t(truth[c]), 2).item()


def main() -> None:
    hr = torch.from_numpy(np.stack([_gray(data.cell()), np.zeros((256, 256), np.float32),
                                    _gray(data.immunohistochemistry())]))
    lr, _ = fire_protocol(hr, 1.5, 2)
    to_counts = lambda x: np.rint(OFFSET + SPAN * x.clamp(0, 1).numpy()).astype(np.uint16)  # noqa: E731
    lr16, truth = to_counts(lr), to_counts(hr)
    model = load_model("mdeblurgan-x2")
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "fluo.ome.tif"
        tifffile.imwrite(src, lr16, ome=True, photometric="minisblack", metadata={
            "axes": "CYX", "PhysicalSizeX": 0.65, "PhysicalSizeY": 0.65, "Channel": {"Name": ["cell", "empty", "ihc"]}})
        bic = upscale_bicubic(torch.from_numpy(lr16.astype(np.float32))[None], 2, clip=False)[0].numpy()
        rgb_src = Path(tmp) / "fluo_yx3.tif"  # the same data stored Y,X,3 as RGB, to show what mixing does
        tifffile.imwrite(rgb_src, np.moveaxis(lr16, 0, -1), photometric="rgb")
        rows = [("bicubic of the file", bic)]
        for path, mode, dst in ((src, "auto", "a_x2.ome.tif"), (rgb_src, "rgb", "b_x2.tif")):
            res = restore_file(path, Path(tmp) / dst, model, channels=mode)
            out = tifffile.imread(Path(tmp) / dst)
            rows.append((f"mdeblurgan, channels {mode} ({res.modes[0]})", out if out.shape[0] == 3 else
                         np.moveaxis(out, -1, 0)))
        with tifffile.TiffFile(Path(tmp) / "a_x2.ome.tif") as tif:
            px = tifffile.xml2dict(tif.ome_metadata)["OME"]["Image"]["Pixels"]["PhysicalSizeX"]
    print("3-channel 16-bit OME-TIFF, FIRE protocol sigma 1.5, 12-bit span over offset 100 (reserved images, "
          "evaluation only); PSNR in dB, border 2")
    print(f"{'method':42s} {'cell':>7s} {'ihc':>8s}  empty channel (truth: 100 everywhere)")
    for name, out in rows:
        e = out[1].astype(np.float64)
        print(f"{name:42s} {_score(out, truth, 0):7.2f} {_score(out, truth, 2):8.2f}  "
              f"min {e.min():.0f}, max {e.max():.0f}")
    print(f"output PhysicalSizeX: {px:g} um (input 0.65)")


if __name__ == "__main__":
    main()
