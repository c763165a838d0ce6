"""Weight interpolation ("model soup") between two runs of the same network, chosen on validation data.

Phase J fine-tuned phase I with physical defocus; on the validation strips it did not beat phase I everywhere.
Weights of one lineage can often be averaged: theta(a) = (1 - a) * theta_A + a * theta_B. This script scores each
`a` of a grid on the validation strips of the training images (data.train.TRAIN_SOURCES, the right-most 20% of
each, never trained on; never the reserved images) under three file kinds, each an 8-bit file:
- fire: the FIRE protocol (antialiased bicubic /2, Gaussian sigma 1.5 LR px);
- poisson: FIRE, then Poisson 1000 photons + read noise 0.005;
- defocus: the simulator's optics, a dry 5x/0.12 objective 40-60 um out of focus against 10x/0.25, 2x2
  binning, 2,000 photons, read noise 0.002.
It prints mean PSNR (RGB, data range 1, border 2 px) per kind and their mean, and with --write saves the best `a`.

    python benchmarks/soup.py runs/parents/mdeblurgan-x2-phase-i.safetensors \
        runs/mdeblurgan-x2-phase-j/best.safetensors --write runs/mdeblurgan-x2-soup.safetensors
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from mdeblur_cli.data import skimage_image, to_tensor
from mdeblur_cli.data.degrade import fire_protocol, poisson_gaussian_noise, quantize
from mdeblur_cli.data.forward import Camera, ForwardModel
from mdeblur_cli.data.simulate import SimulationSpec
from mdeblur_cli.data.train import TRAIN_SOURCES, split_columns
from mdeblur_cli.evaluate.metrics import psnr
from mdeblur_cli.restore.tiles import restore_float
from mdeblur_cli.weights import load_model, save_weights

KINDS = ("fire", "poisson", "defocus")


def cases(max_side: int) -> list[tuple[str, str, np.ndarray, torch.Tensor]]:
    """(name, kind, LR input (H, W, 3) in [0, 1] as an 8-bit file reads, HR truth (3, 2H, 2W))."""
    fm = ForwardModel(SimulationSpec(defocus_um=(40, 60), peak=2000.0, read_sigma=0.002), camera=Camera(8))
    out = []
    for i, name in enumerate(TRAIN_SOURCES):
        _, val = split_columns(to_tensor(skimage_image(name)))
        h, w = min(val.shape[1], max_side) // 4 * 4, val.shape[2] // 4 * 4
        hr = val[:, :h, :w].contiguous()
        g = torch.Generator().manual_seed(10_000 + i)
        blurry, _ = fire_protocol(hr[None], 1.5, 2)
        out.append((name, "fire", quantize(blurry, 8)[0].permute(1, 2, 0).numpy(), hr))
        noisy = quantize(poisson_gaussian_noise(blurry, 1000.0, 0.005, g), 8)
        out.append((name, "poisson", noisy[0].permute(1, 2, 0).numpy(), hr))
        lr, truth, _ = fm.simulate(hr, g)
        out.append((name, "defocus", lr.astype(np.float32) / 255.0, truth))
    return out


def score(net, data) -> dict[str, float]:
    per = {k: [] for k in KINDS}
    for _, kind, lr, hr in data:
        y = restore_float(net, np.ascontiguousarray(lr, np.float32), tile=256)
        t = torch.from_numpy(y).permute(2, 0, 1)[None]
        h, w = min(t.shape[2], hr.shape[1]), min(t.shape[3], hr.shape[2])
        per[kind].append(float(psnr(t[..., :h, :w], hr[None, :, :h, :w], border=2)))
    res = {k: float(np.mean(v)) for k, v in per.items()}
    res["mean"] = float(np.mean([res[k] for k in KINDS]))
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("a", type=Path)
    ap.add_argument("b", type=Path)
    ap.add_argument("--grid", default="0,0.25,0.5,0.75,1")
    ap.add_argument("--max-side", type=int, default=192)
    ap.add_argument("--write", type=Path, default=None)
    args = ap.parse_args()
    torch.set_grad_enabled(False)
    ma, mb = load_model(args.a), load_model(args.b)
    sa, sb = ma.net.state_dict(), mb.net.state_dict()
    data = cases(args.max_side)
    results = {}
    for a in [float(v) for v in args.grid.split(",")]:
        ma.net.load_state_dict({k: (1 - a) * sa[k] + a * sb[k] if sa[k].is_floating_point() else sa[k] for k in sa})
        results[a] = score(ma.net, data)
        print(f"a={a:.2f} " + " ".join(f"{k} {v:.3f}" for k, v in results[a].items()), flush=True)
    best = max(results, key=lambda a: results[a]["mean"])
    print(f"best a={best:.2f} (validation strips, mean over {', '.join(KINDS)})")
    if args.write:
        ma.net.load_state_dict({k: (1 - best) * sa[k] + best * sb[k] if sa[k].is_floating_point() else sa[k]
                                for k in sa})
        prov = dict(mb.provenance)
        prov["soup"] = {"a": str(args.a), "b": str(args.b), "weight_of_b": best, "validation": results[best],
                        "chosen_on": "validation strips of the training images (benchmarks/soup.py)"}
        save_weights(args.write, ma.net, ma.arch, prov)
        print(json.dumps(prov["soup"], indent=1))


if __name__ == "__main__":
    main()
