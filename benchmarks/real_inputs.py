"""The shipped weights on the files users have, measured the way the tests check them.

    python benchmarks/real_inputs.py [--weights mdeblurgan-x2 unet-sr-x2]

- each examples/*_blurry_lr.png (8-bit, FIRE protocol) restored through `restore_array`, against bicubic of the
  same file, PSNR against examples/*_ground_truth.png (RGB, data range 1, border 2);
- a flat 16-bit Poisson field (mean 300): output mean and std against the input's;
- a 12-bit image in a 16-bit file (FIRE-protocol blur, counts 100-4200, a dark region at the offset): that
  region's median and the share of pixels clipped to 0.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from mdeblur_cli.data import skimage_image, to_tensor
from mdeblur_cli.data.degrade import fire_protocol, upscale_bicubic
from mdeblur_cli.evaluate.metrics import psnr
from mdeblur_cli.formats.images import read_image, to_float
from mdeblur_cli.restore.arrays import restore_array
from mdeblur_cli.weights import load_model

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def _t(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1)))[None]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--weights", nargs="+", default=["mdeblurgan-x2", "unet-sr-x2"])
    args = ap.parse_args()
    names = sorted(p.name.removesuffix("_blurry_lr.png") for p in EXAMPLES.glob("*_blurry_lr.png"))
    for w in args.weights:
        model = load_model(w)
        print(f"== {w} ({model.provenance.get('iterations', '?')} iterations of its last phase)")
        for name in names:
            lr = read_image(EXAMPLES / f"{name}_blurry_lr.png").pages[0]
            hr = _t(to_float(read_image(EXAMPLES / f"{name}_ground_truth.png").pages[0]))
            ours = psnr(_t(to_float(restore_array(lr, model))), hr, 2).item()
            bic = psnr(upscale_bicubic(_t(to_float(lr)), 2), hr, 2).item()
            print(f"  {name:22s} 8-bit file: restored {ours:.2f} dB, bicubic {bic:.2f} dB, gain {ours - bic:+.2f} dB")
        field = np.random.default_rng(0).poisson(300, (96, 96)).astype(np.uint16)
        out = restore_array(field, model).astype(np.float64)
        print(f"  flat Poisson field (16-bit, mean 300): mean {field.mean():.1f} -> {out.mean():.1f} "
              f"({100 * (out.mean() / field.mean() - 1):+.2f}%), std {field.std():.1f} -> {out.std():.1f}")
        scene = to_tensor(skimage_image("camera")[100:292, 100:292])
        scene[:, :, :48] = 0  # a dark region at the camera offset, blurred like the rest
        lr, _ = fire_protocol(scene, 1.5, 2)
        noise = np.random.default_rng(1).integers(0, 3, lr.shape[1:])
        arr = np.rint(100 + lr[0].numpy() * 4100 + noise).astype(np.uint16)
        for mode in ("auto", "range"):
            out = restore_array(arr, model, normalize=mode)
            print(f"  12-bit in 16-bit, --normalize {mode:5s}: dark region median {np.median(out[8:-8, 8:32]):.0f} "
                  f"(input 101), pixels at 0: {100 * (out == 0).mean():.2f}%, max {out.max()} (input {arr.max()})")


if __name__ == "__main__":
    main()
