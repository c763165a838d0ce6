"""The README's before/after picture: blurry low-res input (shown at 2x), the restored image, the ground truth.

    python examples/make_before_after.py [--weights mdeblurgan-x2] [--out docs/before_after.png]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from mdeblur_cli.io import read_image, to_float, write_image
from mdeblur_cli.restore import restore_float
from mdeblur_cli.weights import load_model

HERE = Path(__file__).resolve().parent


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--weights", default="mdeblurgan-x2")
    ap.add_argument("--out", type=Path, default=HERE.parent / "docs" / "before_after.png")
    args = ap.parse_args()
    model = load_model(args.weights)
    panels = []
    for name, (y, x, size) in {"immunohistochemistry": (60, 260, 200), "retina": (20, 40, 200)}.items():
        lr = to_float(read_image(HERE / f"{name}_blurry_lr.png").pages[0])
        truth = to_float(read_image(HERE / f"{name}_ground_truth.png").pages[0])
        out = restore_float(model, lr)
        shown = cv2.resize(lr, (lr.shape[1] * 2, lr.shape[0] * 2), interpolation=cv2.INTER_CUBIC)
        row = [np.clip(p[y : y + size, x : x + size], 0, 1) for p in (shown, out, truth)]
        row = [cv2.resize(p, (300, 300), interpolation=cv2.INTER_NEAREST) for p in row]
        panels.append(np.concatenate([np.pad(p, ((0, 6), (0, 6), (0, 0)), constant_values=1) for p in row], 1))
    fig = np.concatenate(panels, 0)
    write_image(args.out, (fig * 255 + 0.5).astype(np.uint8))
    print(f"wrote {args.out}: columns = blurry low-res input (bicubic x2 for display), mdeblur x2, ground truth")


if __name__ == "__main__":
    main()
