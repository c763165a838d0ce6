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
KINDS = ("8", "jpeg90", "poisson1000", "defocus")
KIND_LABELS = {"8": "8-bit file", "jpeg90": "8-bit JPEG q90", "poisson1000": "Poisson 1000 photons + read 0.005, 16-bit",
               "defocus": "physical defocus, 8-bit file", "dim12": "dim 12-bit camera"}


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


def analyse(net: nn.Module, img: np.ndarray, quant_step: float, trust, seed: int = 0,
            passes: int = tr.PASSES) -> dict:
    """Restore one normalised (H, W, 3) input and make its trust map with `trust` (a HeadTrust: the learned head,
    one pass; a TrustModel: the sampling map), in normalised units, with the gradient baseline and the verdict."""
    sigma = tr.noise_sigma(img, quant_step)
    if getattr(trust, "head", None) is not None:
        from ..restore.error_head import run_head, verdict

        out, log_sigma, logit = run_head(net, trust, img)
        sd = trust.to_map(log_sigma)
        summary = verdict(sd, logit, img, out, sigma)
    else:
        def restore(x):
            return restore_float(net, x, clip=False)

        out = restore(img)
        maps = tr.sources(net, img, out, restore, passes=passes, seed=seed, sigma=sigma)
        sd = tr.predict(maps, trust)
        summary = tr.summary(sd, maps["spread"], img, out, sigma)
    return {"out": out, "sd": sd, "summary": summary, "gradient": tr.smooth(tr.gradient(out), tr.SMOOTH)}


def kind_inputs(pairs, kind: str):
    """(name, normalised input (H, W, 3), one count in normalised units, (a, b) to truth units, HR (H, W, 3))."""
    from ..data.eval import load_eval_set
    from .benchmark import INPUT_CONDITIONS, prepare_inputs

    if kind == "defocus":  # the same images through the simulator's physical optics, as 8-bit files
        pairs, kind = load_eval_set("defocus").pairs[: len(pairs)], "8"
    cond = INPUT_CONDITIONS[kind]
    for p in prepare_inputs(pairs, cond):
        a, b = p.to_truth
        quant = 0.0 if cond.bits is None else 1.0 / (a * (2**cond.bits - 1))
        yield (p.name, p.lr.numpy().transpose(1, 2, 0).astype(np.float32), quant, (a, b),
               p.hr.numpy().transpose(1, 2, 0))


def calibration(model: LoadedModel, pairs, kinds=KINDS, on_step=None) -> list[dict]:
    """Rows of the calibration table: per input kind, means over the images, for the map the weights carry and,
    where that is the learned head, the sampling map beside it."""
    maps = {"map": model.trust}
    if getattr(model.trust, "head", None) is not None:
        maps["sampling map"] = model.sampling_trust
    rows = []
    for kind in kinds:
        acc: dict[str, list] = {}
        for i, (_, img, quant, (a, b), hr) in enumerate(kind_inputs(pairs, kind)):
            for label, trust in maps.items():
                res = analyse(model.net, img, quant, trust, seed=i)
                err = np.abs(res["out"] * a + b - hr).mean(2)
                truth = tile_rms(err)
                acc.setdefault(f"{label} spearman", []).append(spearman(tile_rms(res["sd"]), truth))
                acc.setdefault(f"{label} coverage", []).append(float(np.mean(err <= 2 * res["sd"] * a)))
                acc.setdefault(f"{label} width", []).append(float(np.median(4 * res["sd"] * a)))
                if label == "map":
                    acc.setdefault("gradient", []).append(spearman(tile_rms(res["gradient"]), truth))
            if on_step:
                on_step()
        r = {k: float(np.mean(v)) for k, v in acc.items()}
        rows.append({"kind": kind, "label": KIND_LABELS.get(kind, kind), "images": len(acc["gradient"]),
                     "map": model.trust.kind if hasattr(model.trust, "kind") else "sampling",
                     "spearman": r["map spearman"], "gradient_baseline": r["gradient"],
                     "gain": r["map spearman"] - r["gradient"], "coverage": r["map coverage"],
                     "band_width": r["map width"],
                     "sampling_spearman": r.get("sampling map spearman"),
                     "sampling_coverage": r.get("sampling map coverage")})
    return rows


def flat_noise(side: int = 128, level: float = 128 / 255, sigma: float = 6 / 255, seed: int = 0) -> np.ndarray:
    """A flat field with Gaussian noise, saved as 8-bit and read back: nothing to restore but noise."""
    rng = np.random.default_rng(seed)
    gray = np.rint(np.clip(level + rng.normal(0, sigma, (side, side)), 0, 1) * 255) / 255
    return np.repeat(gray[..., None], 3, axis=2).astype(np.float32)


class TextureInventor(nn.Module):
    """A planted hallucinator for blurred flat regions: bicubic x2 plus a fixed grating texture (amplitude 0.05)
    wherever the input is locally flat; what it adds is not in any input."""

    scale, context, multiple = 2, 8, 8

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        up = F.interpolate(x, scale_factor=2, mode="bicubic", align_corners=False)
        h, w = up.shape[-2:]
        yy, xx = torch.meshgrid(torch.arange(h, dtype=x.dtype), torch.arange(w, dtype=x.dtype), indexing="ij")
        tex = torch.sin(xx * 0.9 + yy * 0.4) * torch.sin(yy * 0.7 - xx * 0.3)
        m = F.avg_pool2d(F.pad(x.mean(1, keepdim=True), (2, 2, 2, 2), mode="replicate"), 5, 1)
        var = F.avg_pool2d(F.pad(x.mean(1, keepdim=True) ** 2, (2, 2, 2, 2), mode="replicate"), 5, 1) - m * m
        flat = (var.clamp_min(0).sqrt() < 0.02).to(x.dtype)
        return up + 0.05 * tex * F.interpolate(flat, scale_factor=2, mode="nearest"), x


def detection(model: LoadedModel, pairs, on_step=None) -> list[dict]:
    """Doubtful share and verdict of the weights' map, the good model against planted ones: a noise amplifier on
    each 8-bit input and on a flat noise field, and a texture inventor on the inputs' blurred flat regions."""
    from .benchmark import INPUT_CONDITIONS, prepare_inputs

    trust = model.trust
    cases = [(p.name, p.lr.numpy().transpose(1, 2, 0).astype(np.float32), NoiseAmplifier(), "noise amplifier")
             for p in prepare_inputs(pairs, INPUT_CONDITIONS["8"])]
    cases.append(("flat noise field", flat_noise(), NoiseAmplifier(), "noise amplifier"))
    cases += [(n, img, TextureInventor(), "texture inventor") for n, img, _, _ in cases[: len(pairs)]]
    rows = []
    for name, img, planted, what in cases:
        good = analyse(model.net, img, 1 / 255, trust)["summary"]
        bad = analyse(planted, img, 1 / 255, trust)["summary"]
        rows.append({"image": name, "planted": what, "good_share": good["doubtful_share"],
                     "good_suspect": good["suspect"], "planted_share": bad["doubtful_share"],
                     "planted_suspect": bad["suspect"]})
        if on_step:
            on_step()
    return rows


def render(rows: list[dict], det: list[dict], dataset: str, stand_in: bool) -> str:
    """The calibration and detection tables as text (Markdown), naming the protocol and the data."""
    data = f"{dataset} ({'STAND-IN data' if stand_in else 'real data'})"
    what = rows[0]["map"] if rows else "map"
    out = [f"Trust map calibration ({what}), {data}: FIRE protocol (antialiased bicubic down x2, Gaussian blur) or "
           "physical defocus (x5/0.12 at 50 um), each input as a file of the kind named; Spearman over "
           f"{TILE}x{TILE} tiles against the true RMSE, mean over images; coverage of +-2 map at a stated 95%.",
           "", "| input | images | map | sampling map | gradient baseline | gain over gradient | coverage | "
           "median band width | sampling map coverage |", "|" + " --- |" * 9]
    for r in rows:
        old = "-" if r["sampling_spearman"] is None else f"{r['sampling_spearman']:.3f}"
        oldc = "-" if r["sampling_coverage"] is None else f"{r['sampling_coverage']:.1%}"
        out.append(f"| {r['label']} | {r['images']} | {r['spearman']:.3f} | {old} | {r['gradient_baseline']:.3f} | "
                   f"{r['gain']:+.3f} | {r['coverage']:.1%} | {r['band_width']:.3g} | {oldc} |")
    out += ["", "Detection: share of doubtful pixels (output structure the head marks as invented, or contrast "
            "where the input holds only noise; docs/usage.md, the verdict); suspect above 1%. Planted models: a noise amplifier (unsharp mask of gain 12, then "
            "bicubic x2) and a texture inventor (a fixed grating on the input's flat regions).", "",
            "| image (8-bit) | planted model | good model | planted model's output |", "| --- | --- | --- | --- |"]
    for d in det:
        out.append(f"| {d['image']} | {d['planted']} | {d['good_share']:.1%}{' SUSPECT' if d['good_suspect'] else ''} | "
                   f"{d['planted_share']:.1%}{' SUSPECT' if d['planted_suspect'] else ''} |")
    return "\n".join(out)
