"""Does the trust map predict the error? The calibration table of `mdeblur benchmark --trust`.

For each input kind (8-bit, JPEG q90, Poisson), on an evaluation set with ground truth:
- ranking: the Spearman correlation over 16x16 tiles between the map and the true RMSE, beside the same for the
  output's gradient magnitude (a trivial baseline that is already strong, because error sits on edges), and for
  each source alone (what each adds);
- coverage: the share of pixels whose true error lies within +-2 sigma of the map.
Then detection: inputs restored by a planted noise-amplifying model (a fixed unsharp mask of gain 12 before
bicubic x2, which invents texture from noise) and by the good model, and a flat noise field through both: the
doubtful share must be higher for the planted model, and its images suspect.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..restore import trust as tr
from ..restore.tiles import restore_float
from ..weights import LoadedModel

TILE = 16
KINDS = ("8", "jpeg90", "poisson1000")


class NoiseAmplifier(nn.Module):
    """A planted hallucinator: the input plus `gain` times its 3x3 high-pass, then bicubic up by 2.

    With gain 12 it turns noise and quantisation into texture that is not in the specimen."""

    scale, context, multiple = 2, 8, 8

    def __init__(self, gain: float = 12.0) -> None:
        super().__init__()
        self.gain = gain

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        blur = F.avg_pool2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), 3, 1)
        y = x + self.gain * (x - blur)
        return F.interpolate(y, scale_factor=2, mode="bicubic", align_corners=False), x


def tile_rms(x: np.ndarray, tile: int = TILE) -> np.ndarray:
    h, w = x.shape[0] // tile * tile, x.shape[1] // tile * tile
    return np.sqrt((x[:h, :w].astype(np.float64) ** 2).reshape(h // tile, tile, w // tile, tile).mean((1, 3))).ravel()


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    from scipy.stats import spearmanr

    return float(spearmanr(a, b).statistic)


def analyse(net: nn.Module, img: np.ndarray, quant_step: float, tm: tr.TrustModel, seed: int = 0,
            passes: int = tr.PASSES) -> dict:
    """Restore one normalised (H, W, 3) input and make every map; the predicted error in normalised units."""

    def restore(x):
        return restore_float(net, x, clip=False)

    out = restore(img)
    sigma = tr.noise_sigma(img, quant_step)
    maps = tr.sources(net, img, out, restore, passes=passes, seed=seed, sigma=sigma)
    maps.update(tr.diagnostics(img, out, net.scale))
    sd = tr.predict(maps, tm)
    return {"out": out, "maps": maps, "sd": sd, "summary": tr.summary(sd, maps["spread"], out, sigma)}


def calibration(model: LoadedModel, pairs, kinds=KINDS, on_step=None) -> list[dict]:
    """Rows of the calibration table: per input kind, means over the images."""
    from .benchmark import INPUT_CONDITIONS, prepare_inputs

    tm = model.trust
    rows = []
    for kind in kinds:
        cond = INPUT_CONDITIONS[kind]
        sp, base, cov, alone = [], [], [], {k: [] for k in (*tr.SOURCES, *tr.DIAGNOSTICS)}
        for i, p in enumerate(prepare_inputs(pairs, cond)):
            img = p.lr.numpy().transpose(1, 2, 0).astype(np.float32)
            a, b = p.to_truth
            quant = 0.0 if cond.bits is None else 1.0 / (a * (2**cond.bits - 1))  # one count, normalised units
            res = analyse(model.net, img, quant, tm, seed=i)
            err = np.abs(res["out"] * a + b - p.hr.numpy().transpose(1, 2, 0)).mean(2)
            truth = tile_rms(err)
            sp.append(spearman(tile_rms(res["sd"]), truth))
            base.append(spearman(tile_rms(res["maps"]["gradient"]), truth))
            cov.append(float(np.mean(err <= 2 * res["sd"] * a)))
            for k in alone:
                alone[k].append(spearman(tile_rms(res["maps"][k]), truth))
            if on_step:
                on_step()
        rows.append({"kind": kind, "label": cond.label, "images": len(sp), "spearman": float(np.mean(sp)),
                     "gradient_baseline": float(np.mean(base)), "gain": float(np.mean(sp) - np.mean(base)),
                     "coverage": float(np.mean(cov)), "alone": {k: float(np.mean(v)) for k, v in alone.items()}})
    return rows


def flat_noise(side: int = 128, level: float = 128 / 255, sigma: float = 6 / 255, seed: int = 0) -> np.ndarray:
    """A flat field with Gaussian noise, saved as 8-bit and read back: nothing to restore but noise."""
    rng = np.random.default_rng(seed)
    gray = np.rint(np.clip(level + rng.normal(0, sigma, (side, side)), 0, 1) * 255) / 255
    return np.repeat(gray[..., None], 3, axis=2).astype(np.float32)


def detection(model: LoadedModel, pairs, on_step=None) -> list[dict]:
    """Doubtful share and verdict, good model against the planted one, on each 8-bit input and a flat noise field."""
    from .benchmark import INPUT_CONDITIONS, prepare_inputs

    tm = model.trust
    planted = NoiseAmplifier()
    cases = [(p.name, p.lr.numpy().transpose(1, 2, 0).astype(np.float32))
             for p in prepare_inputs(pairs, INPUT_CONDITIONS["8"])]
    cases.append(("flat noise field", flat_noise()))
    rows = []
    for name, img in cases:
        good = analyse(model.net, img, 1 / 255, tm)["summary"]
        bad = analyse(planted, img, 1 / 255, tm)["summary"]
        rows.append({"image": name, "good_share": good["doubtful_share"], "good_suspect": good["suspect"],
                     "planted_share": bad["doubtful_share"], "planted_suspect": bad["suspect"]})
        if on_step:
            on_step()
    return rows


def render(rows: list[dict], det: list[dict], dataset: str, stand_in: bool) -> str:
    """The calibration and detection tables as text (Markdown), naming the protocol and the data."""
    names = [*tr.SOURCES, *tr.DIAGNOSTICS]
    data = f"{dataset} ({'STAND-IN data' if stand_in else 'real data'})"
    out = [f"Trust map calibration, {data}: FIRE protocol (antialiased bicubic down x2, Gaussian blur), each input "
           f"as a file of the kind named; Spearman over {TILE}x{TILE} tiles against the true RMSE, mean over images.",
           "", "| input | images | map | gradient baseline | gain | coverage (+-2 sigma) | " + " | ".join(
               f"{n} alone" for n in names) + " |",
           "|" + " --- |" * (6 + len(names))]
    for r in rows:
        out.append(f"| {r['label']} | {r['images']} | {r['spearman']:.3f} | {r['gradient_baseline']:.3f} | "
                   f"{r['gain']:+.3f} | {r['coverage']:.1%} | " + " | ".join(f"{r['alone'][n]:.3f}" for n in names)
                   + " |")
    out += ["", "Detection: share of doubtful pixels (structure above the input's noise whose spread under noise "
            f"re-samples and symmetries exceeds {tr.SUSPECT_FRACTION:g} of its local contrast); suspect above "
            f"{tr.SUSPECT_SHARE:.0%}. Planted model: unsharp mask of gain 12, then bicubic x2.", "",
            "| image (8-bit) | good model | planted model |", "| --- | --- | --- |"]
    for d in det:
        out.append(f"| {d['image']} | {d['good_share']:.1%}{' SUSPECT' if d['good_suspect'] else ''} | "
                   f"{d['planted_share']:.1%}{' SUSPECT' if d['planted_suspect'] else ''} |")
    return "\n".join(out)
