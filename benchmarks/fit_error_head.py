"""Fit the learned error head of a weights file, calibrate it conformally, measure it, and optionally store it.

Data: never the reserved images. The head trains on patches of the training images' training parts and of
procedural specimens, degraded by the weights' own training mix (mdeblur_cli/train/error_head.py). The
calibration images are the validation strips (right-most 20%, never trained on by either) degraded with seeds
of their own, and fresh procedural specimens through drawn optics. They alternate between a calibration half
(lambda) and a measuring half (coverage); the ranking is measured on both halves (lambda does not change it).

    python benchmarks/fit_error_head.py --minutes 6 --loss laplace
    python benchmarks/fit_error_head.py --minutes 6 --loss logabs
    python benchmarks/fit_error_head.py --minutes 12 --write weights/mdeblurgan-x2.safetensors
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from mdeblur_cli.data.degrade import DegradationSpec
from mdeblur_cli.data.train import PatchSampler, load_sources, split_sources
from mdeblur_cli.evaluate.trust_bench import spearman, tile_rms
from mdeblur_cli.restore.error_head import CROP, crc_lambda, crops
from mdeblur_cli.restore.trust import gradient, smooth
from mdeblur_cli.train.error_head import PATCH, PLANT_PROB, calibrate, calibration_images, fit_head, patch_pool
from mdeblur_cli.weights import load_model


def spec_of(model) -> DegradationSpec:
    deg = dict(model.provenance.get("degradation", {}))
    return DegradationSpec(**{k: tuple(v) if isinstance(v, list) else v for k, v in deg.items()})


def measure(records: list[dict], lam_half: float) -> dict:
    sp, base, cov, width = [], [], [], []
    for i, r in enumerate(records):
        sd = np.exp(r["log_sigma"]) * lam_half / 2
        truth = tile_rms(r["err"])
        sp.append(spearman(tile_rms(sd), truth))
        base.append(spearman(tile_rms(smooth(gradient(r["out"]), 2.0)), truth))
        if i % 2 == 1:
            cov.append(float(np.mean(r["err"] <= 2 * sd)))
            width.append(float(np.median(4 * sd)))
    return {"spearman": float(np.mean(sp)), "gradient": float(np.mean(base)),
            "gain": float(np.mean(sp) - np.mean(base)), "coverage_measuring_half": float(np.mean(cov)),
            "median_band_width": float(np.mean(width)), "images": len(records)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights", default="mdeblurgan-x2")
    ap.add_argument("--minutes", type=float, default=6.0)
    ap.add_argument("--loss", choices=("laplace", "logabs"), default="laplace")
    ap.add_argument("--width", type=int, default=32)
    ap.add_argument("--plant-prob", type=float, default=PLANT_PROB)
    ap.add_argument("--patches", type=int, default=2000)
    ap.add_argument("--pool-cache", type=Path, default=None, help="keep the restored patches here (refits are fast)")
    ap.add_argument("--write", type=Path, default=None)
    ap.add_argument("--recalibrate", action="store_true", help="keep the head stored in --weights; calibrate again")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--calibration", choices=("mixed", "micrographs"), default="mixed",
                    help="mixed: validation strips of the training photographs (2 degradations each) and 8 fresh "
                    "specimens through drawn optics; micrographs: fresh specimens only, 24 through drawn optics and "
                    "24 through the weights' degradation mix")
    args = ap.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    model = load_model(args.weights)
    for p in model.net.parameters():
        p.requires_grad_(False)
    spec = spec_of(model)
    sources, _ = load_sources(None, model.scale)
    train_parts, val_strips = split_sources(sources, model.scale)
    sampler = PatchSampler(train_parts, PATCH, spec, seed=777, microscope_prob=0.5, microscope_optics="range")
    t0 = time.monotonic()
    if args.recalibrate:  # the head already stored in --weights; only its calibration is made again
        head = model.head.head
    elif args.pool_cache and args.pool_cache.exists():
        pool = torch.load(args.pool_cache)
    else:
        pool = patch_pool(model.net, sampler, args.patches)
        if args.pool_cache:
            torch.save(pool, args.pool_cache)
    if not args.recalibrate:
        print(f"{args.patches} patches drawn and restored in {time.monotonic() - t0:.0f} s", flush=True)
        head = fit_head(pool, args.minutes * 60, loss=args.loss, width=args.width, plant_prob=args.plant_prob,
                    progress=lambda it, v: print(f"iter {it} loss {v:.4f}", flush=True) if it % 200 == 0 else None)
    if args.calibration == "micrographs":
        images = calibration_images([], spec, micro=24, micro_mix=24)
    else:
        images = calibration_images(val_strips, spec)
    fitted_on = model.head.fitted_on if args.recalibrate else ("patches of the training images' training parts and procedural specimens, the weights' "
                 f"degradation mix, {args.patches} patches of {PATCH} LR px, {args.minutes:g} min, loss {args.loss}")
    cal_on = (f"crops of {CROP} output px of {len(images)} held-out images: validation strips of the training images "
              "(2 degradations each) and fresh procedural specimens through drawn optics") if args.calibration == "mixed" else (
              f"crops of {CROP} output px of {len(images)} fresh procedural specimens (plant tissue, fundus, fibres; "
              "never trained on): 24 through drawn dry objectives with defocus and 1000 photons, 24 through the "
              "weights' degradation mix")
    trust, records = calibrate(model.net, head, images, loss=args.loss, fitted_on=fitted_on, calibrated_on=cal_on)
    lam_half = crc_lambda([c for r in records[0::2] for c in crops(r["err"] / np.exp(r["log_sigma"]))])
    res = measure(records, lam_half)
    res.update({"loss": args.loss, "lambda_all": trust.lam, "lambda_half": lam_half,
                "seconds": time.monotonic() - t0})
    print(json.dumps(res, indent=1))
    if args.json:
        args.json.write_text(json.dumps(res, indent=1) + "\n")
    if args.write:
        from mdeblur_cli.weights import store_error_head

        store_error_head(args.write, trust)
        print(f"stored the head and its calibration (lambda {trust.lam:.3f}, {len(images)} images) in {args.write}")


if __name__ == "__main__":
    main()
