"""The README's trust-map picture: an 8-bit example, its restoration, the trust map and the true error.

    python benchmarks/trust_figure.py                       # examples/retina_* -> docs/trust_example.png

Panels (each contrast-stretched to its own 1st-99th percentiles, so that flat regions show their texture):
bicubic of the input, the restoration, the predicted error (--trust) and the true error against the ground
truth, with the tile Spearman correlation of map and error, and of the gradient baseline, in the title line.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np
import tifffile

from mdeblur_cli.evaluate.trust_bench import spearman, tile_rms
from mdeblur_cli.restore.trust import gradient, smooth

ROOT = Path(__file__).resolve().parents[1]


def stretch(x: np.ndarray) -> np.ndarray:
    lo, hi = np.percentile(x, [1, 99])
    return np.clip((x - lo) / max(hi - lo, 1e-9) * 255, 0, 255).astype(np.uint8)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--name", default="retina", help="example in examples/ (NAME_blurry_lr.png, NAME_ground_truth.png)")
    ap.add_argument("-o", "--output", type=Path, default=ROOT / "docs" / "trust_example.png")
    args = ap.parse_args()
    src, truth_path = ROOT / "examples" / f"{args.name}_blurry_lr.png", ROOT / "examples" / f"{args.name}_ground_truth.png"
    work = Path(tempfile.mkdtemp(prefix="mdeblur-trust-fig-"))
    out = work / "out.png"
    subprocess.run([sys.executable, "-m", "mdeblur_cli", "restore", str(src), "-o", str(out), "--trust"], check=True)
    lr = cv2.imread(str(src), cv2.IMREAD_COLOR)[..., ::-1].astype(np.float32)
    res = cv2.imread(str(out), cv2.IMREAD_COLOR)[..., ::-1].astype(np.float32)
    truth = cv2.imread(str(truth_path), cv2.IMREAD_COLOR)[..., ::-1].astype(np.float32)
    sd = tifffile.imread(work / "out_trust.tif").mean(2)
    h, w = res.shape[:2]
    bic = cv2.resize(lr, (w, h), interpolation=cv2.INTER_CUBIC)
    err = np.abs(res - truth[:h, :w]).mean(2)
    rho = spearman(tile_rms(sd), tile_rms(err))
    base = spearman(tile_rms(smooth(gradient(res / 255), 2.0)), tile_rms(err))
    panels = [stretch(bic.mean(2)), stretch(res.mean(2)), stretch(sd), stretch(smooth(err, 2.0))]
    labels = ["bicubic of the 8-bit input", "restored", "trust map (predicted error)", "true error"]
    rows = []
    for p, label in zip(panels, labels, strict=True):
        p = cv2.cvtColor(p, cv2.COLOR_GRAY2BGR)
        cv2.putText(p, label, (6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 255, 255), 1, cv2.LINE_AA)
        rows.append(p)
    fig = np.concatenate(rows, axis=1)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(args.output), fig)
    print(f"{args.output}: {args.name}, tile Spearman of map and true error {rho:.3f} (gradient baseline {base:.3f}); "
          f"median predicted error {np.median(sd):.2f}, median true error {np.median(err):.2f} (8-bit counts)")


if __name__ == "__main__":
    main()
