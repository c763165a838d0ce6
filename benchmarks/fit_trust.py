"""Fit the trust map's coefficients and calibration on held-out data of the training pool, and measure it.

Data: the right-most validation strip (never trained on) of each training image (data.train.TRAIN_SOURCES; the
reserved images are never used here), through the FIRE protocol (antialiased bicubic down x2, Gaussian blur
sigma 1.5 LR px), then one of three file kinds: 8-bit, JPEG q90, Poisson (peak 1000, read 0.005) saved as 8-bit.
Images alternate between a fitting half and a testing half.

Per kind on the testing half it prints the Spearman correlation over 16x16 tiles between the map and the true
RMSE, beside the gradient-magnitude baseline, and the coverage of the +-2 sigma band.

    python benchmarks/fit_trust.py                          # measure only
    python benchmarks/fit_trust.py --write weights/mdeblurgan-x2.safetensors   # store coefficients + scale
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch

from mdeblur_cli.data import skimage_image, to_tensor
from mdeblur_cli.data.degrade import fire_protocol, jpeg_compress, poisson_gaussian_noise, quantize
from mdeblur_cli.data.train import TRAIN_SOURCES, split_columns
from mdeblur_cli.evaluate.trust_bench import TILE, spearman, tile_rms
from mdeblur_cli.restore.tiles import restore_float
from mdeblur_cli.restore.trust import (
    DIAGNOSTICS,
    EPS,
    SMOOTH,
    SOURCES,
    TrustModel,
    diagnostics,
    noise_sigma,
    predict,
    smooth,
    sources,
)
from mdeblur_cli.weights import load_model

COVERAGE = 0.95
KINDS = ("8-bit", "jpeg-q90", "poisson")


def encode(lr: torch.Tensor, kind: str, seed: int) -> torch.Tensor:
    if kind == "8-bit":
        return quantize(lr, 8)
    if kind == "jpeg-q90":
        return jpeg_compress(lr, 90)
    g = torch.Generator().manual_seed(seed)
    return quantize(poisson_gaussian_noise(lr, 1000.0, 0.005, g), 8)


def held_out(max_side: int = 256) -> list[tuple[str, torch.Tensor]]:
    """(name, HR (3, H, W)) validation strips of the training images, sides multiples of 2 * TILE."""
    out = []
    for name in TRAIN_SOURCES:
        _, val = split_columns(to_tensor(skimage_image(name)))
        h, w = min(val.shape[1], max_side), val.shape[2]
        h, w = h // (2 * TILE) * 2 * TILE, w // (2 * TILE) * 2 * TILE
        if h >= 2 * TILE and w >= 2 * TILE:
            out.append((name, val[:, :h, :w].contiguous()))
    return out


def case(model, name: str, hr: torch.Tensor, kind: str, seed: int, passes: int) -> dict:
    blurry, _ = fire_protocol(hr[None], 1.5, 2)
    lr = encode(blurry, kind, seed)[0]
    img = lr.numpy().transpose(1, 2, 0).astype(np.float32)

    def restore(x):
        return restore_float(model.net, x, clip=False)

    out = restore(img)
    maps = sources(model.net, img, out, restore, passes=passes, seed=seed, sigma=noise_sigma(img, 1 / 255))
    maps.update(diagnostics(img, out, model.scale))
    err = np.abs(out - hr.numpy().transpose(1, 2, 0)).mean(2)
    return {"name": name, "kind": kind, "maps": maps, "err": err, "out": out, "img": img}


def fit(cases: list[dict]) -> TrustModel:
    """Slopes: least squares of log local RMS error on the log-sources within each image (both centred per image,
    so that only the ranking inside an image counts); intercept: the mean offset over all images; then the factor
    that puts 95% of the true errors inside +-2 sigma."""
    rng = np.random.default_rng(0)
    xs, ys, raw = [], [], []
    for c in cases:
        target = np.log(np.sqrt(smooth(c["err"] ** 2, SMOOTH)).ravel() + 1e-4)
        feats = np.stack([np.log(c["maps"][k].ravel().astype(np.float64) + EPS) for k in SOURCES], 1)
        idx = rng.choice(target.size, min(4000, target.size), replace=False)
        f, y = feats[idx], target[idx]
        xs.append(f - f.mean(0))
        ys.append(y - y.mean())
        raw.append((f, y))
    slopes, *_ = np.linalg.lstsq(np.concatenate(xs), np.concatenate(ys), rcond=None)
    intercept = float(np.mean(np.concatenate([y - f @ slopes for f, y in raw])))
    tm = TrustModel([intercept, *(float(v) for v in slopes)], 1.0)
    ratios = [(c["err"] / (2 * predict(c["maps"], tm))).ravel() for c in cases]
    lo, hi = 1e-3, 1e3  # the factor whose mean per-image coverage is 95% (the statistic the benchmark reports)
    for _ in range(60):
        mid = math.sqrt(lo * hi)
        lo, hi = (mid, hi) if np.mean([np.mean(r <= mid) for r in ratios]) < COVERAGE else (lo, mid)
    tm.scale = hi
    return tm


def evaluate(cases: list[dict], tm: TrustModel) -> dict:
    rows = {}
    for kind in KINDS:
        ks = [c for c in cases if c["kind"] == kind]
        sp, base, cov = [], [], []
        for c in ks:
            sd = predict(c["maps"], tm)
            truth = tile_rms(c["err"])
            sp.append(spearman(tile_rms(sd), truth))
            base.append(spearman(tile_rms(c["maps"]["gradient"]), truth))
            cov.append(float((c["err"] <= 2 * sd).mean()))
        rows[kind] = {"images": len(ks), "spearman": float(np.mean(sp)), "gradient_baseline": float(np.mean(base)),
                      "coverage": float(np.mean(cov))}
        for name in (*SOURCES, *DIAGNOSTICS):  # what each source ranks alone
            rows[kind][f"alone_{name}"] = float(np.mean([spearman(tile_rms(c["maps"][name]), tile_rms(c["err"]))
                                                         for c in ks]))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights", default="mdeblurgan-x2")
    ap.add_argument("--passes", type=int, default=8)
    ap.add_argument("--max-side", type=int, default=256)
    ap.add_argument("--write", type=Path, default=None, help="store the fitted coefficients in this weights file")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--cache", type=Path, default=None, help="keep the restorations and maps here (refits are fast)")
    args = ap.parse_args()
    model = load_model(args.weights)
    t = time.perf_counter()
    data = held_out(args.max_side)
    import pickle

    if args.cache and args.cache.exists():
        cases = pickle.loads(args.cache.read_bytes())
    else:
        cases = [case(model, name, hr, kind, i, args.passes) for i, (name, hr) in enumerate(data) for kind in KINDS]
        if args.cache:
            args.cache.write_bytes(pickle.dumps(cases))
    from mdeblur_cli.restore.trust import change

    for c in cases:  # sources that need no restoration are recomputed (cheap), so a cache survives new ones
        c["maps"]["change"] = change(c["out"], c["img"], model.scale)
        c["maps"].update(diagnostics(c["img"], c["out"], model.scale))
    fit_cases = [c for i, c in enumerate(cases) if (i // len(KINDS)) % 2 == 0]
    test_cases = [c for i, c in enumerate(cases) if (i // len(KINDS)) % 2 == 1]
    tm = fit(fit_cases)
    tm.fitted_on = (f"validation strips of {len(data) // 2 + len(data) % 2} training images (even), FIRE sigma 1.5, "
                    f"{', '.join(KINDS)}; {args.passes} passes")
    rows = evaluate(test_cases, tm)
    print(f"trust map, held-out validation strips of the training images (not a stand-in; reserved images unused), "
          f"FIRE protocol sigma 1.5, weights {args.weights}, {args.passes} passes, {time.perf_counter() - t:.0f} s")
    print(f"coefficients (intercept, {', '.join(SOURCES)}): {', '.join(f'{c:+.3f}' for c in tm.coef)}; "
          f"calibration factor {tm.scale:.3f}")
    alone = [*SOURCES, *DIAGNOSTICS]
    print(f"{'kind':10s} {'images':>6s} {'Spearman':>9s} {'gradient':>9s} {'gain':>6s} {'coverage':>9s}   alone: "
          + " ".join(f"{n:>8s}" for n in alone))
    for kind, r in rows.items():
        print(f"{kind:10s} {r['images']:6d} {r['spearman']:9.3f} {r['gradient_baseline']:9.3f} "
              f"{r['spearman'] - r['gradient_baseline']:+6.3f} {r['coverage']:9.3f}          "
              + " ".join(f"{r['alone_' + n]:8.3f}" for n in alone))
    if args.json:
        args.json.write_text(json.dumps({"trust": tm.to_dict(), "rows": rows}, indent=2) + "\n")
    if args.write:
        from mdeblur_cli.weights import set_provenance

        set_provenance(args.write, "trust", tm.to_dict())
        print(f"wrote the coefficients into {args.write}")


if __name__ == "__main__":
    main()
