"""`mdeblur adapt` on a public stand-in, as a user would run it: in-focus real images as 8-bit PNG files, a
measured-PSF stand-in written as a calibrated TIFF, and the command itself; prints the report's table.

    python benchmarks/adapt_standin.py --mode psf --minutes 15 --out runs/adapt-psf
    python benchmarks/adapt_standin.py --mode optics --minutes 15 --out runs/adapt-optics
    python benchmarks/adapt_standin.py --mode like --minutes 15 --out runs/adapt-like

The stand-in (no real microscope data reach this machine): scikit-image's non-reserved photographs
stereo_motorcycle (left view; never trained on), hubble_deep_field (bright points on black, like fluorescence),
coffee and chelsea (the shipped model trained on the left 80% of these three), taken as specimens at the sharp
objective's sampling. The optics: a dry 5x/0.12 objective defocused by 50 um (the simulator's scalar pupil
PSF, the mean over its three wavelengths, written at 0.25 um per pixel), imaged for the truth at 10x/0.25,
2,000 photons at white and read noise 0.002. Adapt holds out the bottom 25% of every image; the report scores
those regions only. With --mode like, the noise comes from 'real' blurry files made by the same optics from
the images' top halves at 1,000 photons and read noise 0.004, as 12-bit TIFFs, and must be estimated.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
IMAGES = ("stereo_motorcycle", "hubble_deep_field", "coffee", "chelsea")
PSF_PIXEL_UM = 0.25


def write_inputs(folder: Path) -> None:
    import skimage.data
    import tifffile

    from mdeblur_cli.data.simulate import RGB_WAVELENGTHS_UM, defocus_psf
    from mdeblur_cli.formats.images import write_image

    (folder / "infocus").mkdir(parents=True, exist_ok=True)
    for name in IMAGES:
        img = getattr(skimage.data, name)()
        img = img[0] if isinstance(img, tuple) else img
        write_image(folder / "infocus" / f"{name}.png", img)
    psf = np.mean([defocus_psf(50.0, 0.12, w, PSF_PIXEL_UM, radius_px=48) for w in RGB_WAVELENGTHS_UM], 0)
    psf = np.rint(100 + psf / psf.max() * 3000).astype(np.uint16)  # a camera offset, as a bead image has
    tifffile.imwrite(folder / "psf_5x_50um.tif", psf, imagej=True, resolution=(1 / PSF_PIXEL_UM, 1 / PSF_PIXEL_UM),
                     metadata={"unit": "um"})


def write_like(folder: Path) -> None:
    """12-bit 'real' blurry files of the same optics at another noise level (the images' top halves)."""
    import tifffile
    import torch

    from mdeblur_cli.data import read_rgb, to_tensor
    from mdeblur_cli.data.forward import Camera, ForwardModel
    from mdeblur_cli.data.simulate import SimulationSpec

    fm = ForwardModel(SimulationSpec(defocus_um=(50, 50), peak=1000.0, read_sigma=0.004), camera=Camera(12, 100, 3900))
    (folder / "blurry").mkdir(exist_ok=True)
    for i, f in enumerate(sorted((folder / "infocus").iterdir())):
        img = read_rgb(f)
        top = img[: img.shape[0] // 2]
        lr, _, _ = fm.simulate(to_tensor(top), torch.Generator().manual_seed(i), gray=True)
        tifffile.imwrite(folder / "blurry" / f"{f.stem}.tif", lr)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mode", choices=("psf", "optics", "like"), default="psf")
    ap.add_argument("--minutes", type=float, default=15.0)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--init", default="mdeblurgan-x2")
    args = ap.parse_args()
    work = args.out.with_name(args.out.name + "-inputs")
    write_inputs(work)
    cmd = [sys.executable, "-m", "mdeblur_cli", "adapt", str(work / "infocus"), "--out", str(args.out),
           "--minutes", str(args.minutes), "--init", args.init, "--noise", "2000", "--read-noise", "0.002"]
    if args.mode == "psf":
        cmd += ["--psf", str(work / "psf_5x_50um.tif")]
    else:
        cmd += ["--objective-lr", "5x/0.12", "--defocus", "50:50"]
    if args.mode == "like":
        write_like(work)
        cmd += ["--like", str(work / "blurry")]
    t = time.perf_counter()
    subprocess.run(cmd, check=True)
    took = time.perf_counter() - t
    rep = json.loads((args.out / "report.json").read_text())
    m = rep["methods"]
    print(f"mode {args.mode}: {took / 60:.2f} min wall for a {args.minutes:g}-minute budget")
    print("| method | PSNR (dB) | SSIM |\n|---|---|---|")
    for k in ("bicubic", "rl", "initial", "adapted"):
        print(f"| {k} | {m[k]['psnr']:.2f} | {m[k]['ssim']:.4f} |")
    print(f"adapted - rl: {m['adapted']['psnr'] - m['rl']['psnr']:+.2f} dB; adapted - initial: "
          f"{m['adapted']['psnr'] - m['initial']['psnr']:+.2f} dB; trust coverage {rep['trust']['coverage_after']:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
