"""The README's before/after picture, made the way a user works: the 8-bit example files through `restore_array`.

For each example, two rows: a detail crop at normal contrast (bicubic x2 of the file, mdeblur x2, ground truth),
then the flattest bright region of the ground truth contrast-stretched in gray (the truth's 1st-99th percentile, the
same mapping in all three panels), where invented texture would show.

    python examples/make_before_after.py [--weights mdeblurgan-x2] [--out docs/before_after.png]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from mdeblur_cli.evaluate.figures import _label, _to_uint8
from mdeblur_cli.formats.images import read_image, to_float, write_image
from mdeblur_cli.restore.arrays import restore_array
from mdeblur_cli.weights import load_model

HERE = Path(__file__).resolve().parent
PANEL = 300


def flattest_region(truth: np.ndarray, size: int, min_mean: float = 0.15) -> tuple[int, int]:
    """Top-left corner of the size x size window of the truth with the lowest std among bright-enough ones."""
    gray = truth.mean(2)
    best, corner = np.inf, (0, 0)
    for y in range(0, gray.shape[0] - size + 1, size // 4):
        for x in range(0, gray.shape[1] - size + 1, size // 4):
            win = gray[y : y + size, x : x + size]
            if win.mean() >= min_mean and win.std() < best:
                best, corner = win.std(), (y, x)
    return corner


def stretch(crops: list[np.ndarray], reference: np.ndarray) -> list[np.ndarray]:
    """Gray (channel mean), the reference's 1st-99th percentile to [0, 1], the same mapping for every crop."""
    lo, hi = np.percentile(reference.mean(2), [1, 99])
    return [(c.mean(2) - lo) / max(hi - lo, 1e-6) for c in crops]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--weights", default="mdeblurgan-x2")
    ap.add_argument("--out", type=Path, default=HERE.parent / "docs" / "before_after.png")
    args = ap.parse_args()
    model = load_model(args.weights)
    rows = []
    for name, (y, x, size) in {"immunohistochemistry": (60, 260, 200), "retina": (20, 40, 200)}.items():
        lr8 = read_image(HERE / f"{name}_blurry_lr.png").pages[0]
        truth = to_float(read_image(HERE / f"{name}_ground_truth.png").pages[0])
        out = to_float(restore_array(lr8, model))  # the 8-bit file, as `mdeblur restore` reads it
        lr = to_float(lr8)
        bicubic = cv2.resize(lr, (lr.shape[1] * 2, lr.shape[0] * 2), interpolation=cv2.INTER_CUBIC)
        fy, fx = flattest_region(truth, 64)
        flat = stretch([p[fy : fy + 64, fx : fx + 64] for p in (bicubic, out, truth)], truth[fy : fy + 64, fx : fx + 64])
        detail = [p[y : y + size, x : x + size] for p in (bicubic, out, truth)]
        for crops, what in ((detail, "detail"), (flat, "flat region, contrast-stretched")):
            panels = [cv2.resize(_to_uint8(c), (PANEL, PANEL), interpolation=cv2.INTER_NEAREST) for c in crops]
            titles = [f"{name} {what}: bicubic x2 of the 8-bit file", "mdeblur restore", "ground truth"]
            labelled = [_label(np.pad(p, ((0, 6), (0, 6), (0, 0)), constant_values=255), t[:48])
                        for p, t in zip(panels, titles, strict=True)]
            rows.append(np.concatenate(labelled, 1))
    write_image(args.out, np.concatenate(rows, 0))
    print(f"wrote {args.out}: per example a detail row and a contrast-stretched flat-region row; "
          "columns = bicubic x2 of the 8-bit input, mdeblur x2, ground truth")


if __name__ == "__main__":
    main()
