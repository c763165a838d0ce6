"""Tiled vs whole-image restoration with shipped weights: largest difference and time ratio, one run.

    python benchmarks/bench_tiling.py [--weights mdeblurgan-x2] [--image examples/immunohistochemistry_blurry_lr.png]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from mdeblur_cli.formats.images import read_image, to_float
from mdeblur_cli.restore.tiles import restore_float
from mdeblur_cli.weights import load_model


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--weights", default="mdeblurgan-x2")
    ap.add_argument("--image", default="examples/immunohistochemistry_blurry_lr.png")
    ap.add_argument("--tiles", default="64,128,256")
    args = ap.parse_args()
    model = load_model(args.weights).net
    img = to_float(read_image(args.image).pages[0])[..., :3]
    t = time.perf_counter()
    whole = restore_float(model, img, tile=1 << 16)
    t_whole = time.perf_counter() - t
    print(f"{args.image}: {img.shape[1]}x{img.shape[0]} -> x{model.scale}; whole image {t_whole:.2f} s")
    for tile in map(int, args.tiles.split(",")):
        t = time.perf_counter()
        tiled = restore_float(model, img, tile=tile)
        dt = time.perf_counter() - t
        print(f"tile {tile:4d}: max |tiled - whole| {np.abs(tiled - whole).max():.2e}, time ratio tiled/whole {dt / t_whole:.2f}")


if __name__ == "__main__":
    main()
