"""Make the blurry low-res example inputs from the reserved scikit-image images (FIRE protocol)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mdeblur_cli.data.eval import load_eval_set
from mdeblur_cli.formats.images import from_float, write_image

HERE = Path(__file__).resolve().parent


def main() -> None:
    for pair in load_eval_set("reserved", sigma_px=1.5, scale=2).pairs:
        lr = from_float(pair.lr.permute(1, 2, 0).numpy(), np.uint8)
        hr = from_float(pair.hr.permute(1, 2, 0).numpy(), np.uint8)
        write_image(HERE / f"{pair.name}_blurry_lr.png", lr)
        write_image(HERE / f"{pair.name}_ground_truth.png", hr)
        print(f"{pair.name}: {lr.shape[1]}x{lr.shape[0]} blurry low-res, {hr.shape[1]}x{hr.shape[0]} ground truth")


if __name__ == "__main__":
    main()
