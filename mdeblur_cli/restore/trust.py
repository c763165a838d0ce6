"""Trust maps: a per-pixel predicted error (standard deviation) for a restored image, from measured sources.

Sources, each a map on the output grid, in the network's normalised units:
- spread: the standard deviation over 8 restorations of the input, each under one of the 8 flips and quarter
  turns and with a fresh re-sample of the input's own noise (level from the wavelet MAD estimate, with the
  file's quantisation step added): structure that comes from noise, or that the network does not reproduce
  under a symmetry, spreads;
- change: how far the output departs from the bicubic-upscaled input (what the network added or removed).
Measured beside them (benchmark), and used by the suspect rule:
- residual: data consistency: the output taken back through the forward model (antialiased bicubic down by
  the scale, then the Gaussian blur that fits best), against the input, on the output grid;
- gradient: the output's gradient magnitude (error sits on edges: the baseline any map must beat);
- texture: the local standard deviation of the bicubic-upscaled input (the structure the input holds).

Verdict per image: doubtful pixels are where the output shows structure (local contrast above 10 noise SDs of
the input) and the spread exceeds half of that contrast; an image with more than 1% of them is suspect.

The map is exp(a0 + a1 log(spread + eps) + a2 log(change + eps)) times a calibration factor. The slopes are
fitted within images (what ranks pixels inside one image), the intercept and the factor over all of them, so
that the +-2 sigma band covers about 95% of the true errors (`benchmarks/fit_trust.py`, on held-out strips of
the training images, never the reserved ones); all are stored in the weights' provenance. The residual,
gradient and texture maps are measured beside it in the benchmark: added to the fit, they did not improve the
ranking on held-out images.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..padding import edge_pad

SOURCES = ("spread", "change")  # what the map is made of (the others are measured beside it in the benchmark)
DIAGNOSTICS = ("residual", "gradient", "texture")
EPS = 1e-3  # added to each source before its logarithm (normalised units)
PASSES = 8
SMOOTH = 2.0  # output pixels: the map's Gaussian smoothing
BLUR_GRID = (0.0, 0.5, 1.0, 1.5, 2.0, 2.5)  # LR px: blurs tried for the forward model
CONTRAST_SIGMA = 4.0  # output px: the window of local contrasts
SUSPECT_FRACTION = 0.5  # doubtful where the spread exceeds this fraction of the output's local contrast
CONTRAST_NOISE = 10.0  # structure counts where the output's local contrast exceeds this many noise SDs
SUSPECT_SHARE = 0.01  # an image is suspect when more than this share of its pixels is doubtful
AMPLIFIED = 3.0  # doubtful where the output's local contrast exceeds this many times the input's (or its noise)
NOISE_LIKE = 2.0  # ... and the input's local contrast is within this many noise SDs
AMPLIFY_FLOOR = 5e-4  # the least noise SD the rule assumes (1/8 of an 8-bit step)
# Chosen on the held-out strips of the training images (8-bit, benchmarks/fit_trust.py's fitting half and a flat
# noise field): the shipped model's doubtful share was 0-0.3%, a planted noise amplifier's 1.8-78%.


@dataclass
class TrustModel:
    """Coefficients of the map (intercept first, then one per source) and the calibration factor."""

    coef: list[float] = field(default_factory=lambda: [0.0, 1.0, 0.0])  # unfitted: the spread itself
    scale: float = 1.0
    fitted_on: str = "not fitted: default coefficients"

    def to_dict(self) -> dict:
        return {"coef": list(self.coef), "scale": self.scale, "sources": list(SOURCES), "fitted_on": self.fitted_on}

    @classmethod
    def from_dict(cls, d: dict) -> TrustModel:
        if list(d.get("sources", SOURCES)) != list(SOURCES) or len(d["coef"]) != len(SOURCES) + 1:
            raise ValueError("trust coefficients for other sources than " + ", ".join(SOURCES))
        return cls([float(c) for c in d["coef"]], float(d["scale"]), str(d.get("fitted_on", "")))


def mad_sigma(img: np.ndarray) -> float:
    """Donoho and Johnstone's noise estimate: the median absolute finest-scale diagonal (Haar) wavelet
    coefficient over 0.6745, per channel, averaged (scikit-image's estimate_sigma does this with PyWavelets)."""
    h, w = img.shape[0] // 2 * 2, img.shape[1] // 2 * 2
    x = img[:h, :w].astype(np.float64)
    hh = (x[0::2, 0::2] - x[0::2, 1::2] - x[1::2, 0::2] + x[1::2, 1::2]) / 2
    return float(np.mean([np.median(np.abs(hh[..., c])) / 0.6745 for c in range(hh.shape[2])]))


def noise_sigma(img: np.ndarray, quant_step: float = 0.0) -> float:
    """Noise standard deviation of an (H, W, C) normalised image: the wavelet MAD estimate and the quantisation
    step's uniform noise (step / sqrt 12) in quadrature."""
    s = mad_sigma(img) if min(img.shape[:2]) >= 2 else 0.0
    s = 0.0 if not math.isfinite(s) else s
    return max(math.sqrt(s * s + quant_step**2 / 12.0), 1e-4)


def _dihedral(x: np.ndarray, i: int) -> np.ndarray:
    y = np.rot90(x, i // 2, axes=(0, 1))
    return y[:, ::-1] if i % 2 else y


def _undo(y: np.ndarray, i: int) -> np.ndarray:
    return np.rot90(y[:, ::-1] if i % 2 else y, -(i // 2), axes=(0, 1))


def _gauss(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Gaussian blur of (C, H, W) with reflect padding."""
    if sigma <= 0:
        return x
    r = max(1, int(math.ceil(3 * sigma)))
    t = torch.arange(-r, r + 1, dtype=torch.float32)
    k = torch.exp(-(t**2) / (2 * sigma**2))
    k = k / k.sum()
    c = x.shape[0]
    y = edge_pad(x[None], r, r, r, r)
    y = F.conv2d(y, k.view(1, 1, 1, -1).expand(c, 1, 1, -1).contiguous(), groups=c)
    y = F.conv2d(y, k.view(1, 1, -1, 1).expand(c, 1, -1, 1).contiguous(), groups=c)
    return y[0]


def smooth(m: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur of a 2-D map, as _gauss (radius ceil(3 sigma), reflect padding; replicate on maps smaller
    than the radius), by OpenCV: several times faster on the CPU than the torch convolution."""
    import cv2

    m = np.ascontiguousarray(m, np.float32)
    r = max(1, int(math.ceil(3 * sigma)))
    if sigma <= 0:
        return m
    border = cv2.BORDER_REFLECT_101 if min(m.shape) > r else cv2.BORDER_REPLICATE
    k = cv2.getGaussianKernel(2 * r + 1, sigma, cv2.CV_32F)
    return cv2.sepFilter2D(m, cv2.CV_32F, k, k, borderType=border)


def spread(model: nn.Module, img: np.ndarray, sigma: float, restore, passes: int = PASSES, seed: int = 0) -> np.ndarray:
    """Per-pixel std (mean over channels) of `passes` restorations under the 8 symmetries with noise re-samples.

    `restore(x) -> y` restores an (H, W, C) normalised image (unclipped, the same tiling as the output)."""
    rng = np.random.default_rng(seed)
    total = total_sq = None
    for i in range(passes):
        x = img + rng.normal(0.0, sigma, img.shape).astype(np.float32)
        y = np.ascontiguousarray(_undo(restore(np.ascontiguousarray(_dihedral(x, i % 8))), i % 8), np.float64)
        total = y if total is None else total + y
        total_sq = y * y if total_sq is None else total_sq + y * y
    var = np.maximum(total_sq / passes - (total / passes) ** 2, 0) * passes / max(passes - 1, 1)
    return np.sqrt(var).mean(2).astype(np.float32)


def residual(out: np.ndarray, img: np.ndarray, scale: int) -> np.ndarray:
    """|forward model(output) - input| (mean over channels) on the output grid; the blur that fits best."""
    from ..data.degrade import downscale

    o = torch.from_numpy(np.ascontiguousarray(out.transpose(2, 0, 1), np.float32))
    x = torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1), np.float32))
    down = downscale(o, scale)
    h, w = min(down.shape[1], x.shape[1]), min(down.shape[2], x.shape[2])
    best = None
    for b in BLUR_GRID:
        r = (_gauss(down, b)[:, :h, :w] - x[:, :h, :w]).abs().mean(0)
        if best is None or float((r**2).mean()) < float((best**2).mean()):
            best = r
    up = F.interpolate(best[None, None], scale_factor=scale, mode="bilinear", align_corners=False)[0, 0]
    full = np.zeros(out.shape[:2], np.float32)
    full[: up.shape[0], : up.shape[1]] = up.numpy()[: out.shape[0], : out.shape[1]]
    return smooth(full, SMOOTH)


def gradient(out: np.ndarray) -> np.ndarray:
    """Gradient magnitude of the output's channel mean (central differences)."""
    g = out.mean(2)
    gy, gx = np.gradient(g)
    return np.sqrt(gx * gx + gy * gy).astype(np.float32)


def _bicubic(img: np.ndarray, scale: int) -> np.ndarray:
    """(H, W, C) up by `scale`, unclipped (degrade.upscale_bicubic), as (H*s, W*s, C)."""
    from ..data.degrade import upscale_bicubic

    t = torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1), np.float32))
    return upscale_bicubic(t, scale, clip=False).numpy().transpose(1, 2, 0)


def local_std(gray: np.ndarray) -> np.ndarray:
    """Local standard deviation of a 2-D map (Gaussian window CONTRAST_SIGMA)."""
    mean = smooth(gray, CONTRAST_SIGMA)
    return np.sqrt(np.maximum(smooth(gray * gray, CONTRAST_SIGMA) - mean * mean, 0)).astype(np.float32)


def texture(img: np.ndarray, scale: int) -> np.ndarray:
    """Local standard deviation of the bicubic-upscaled input's channel mean (window CONTRAST_SIGMA)."""
    return local_std(_bicubic(img.mean(2, keepdims=True), scale)[..., 0])


def change(out: np.ndarray, img: np.ndarray, scale: int) -> np.ndarray:
    """|output - bicubic(input)| (mean over channels), smoothed."""
    return smooth(np.abs(out - _bicubic(img, scale)).mean(2), SMOOTH)


def sources(model: nn.Module, img: np.ndarray, out: np.ndarray, restore, quant_step: float = 0.0,
            passes: int = PASSES, seed: int = 0, sigma: float | None = None) -> dict[str, np.ndarray]:
    """The map's source maps of one (H, W, C) normalised input and its (H*s, W*s, C) output."""
    sigma = noise_sigma(img, quant_step) if sigma is None else sigma
    return {"spread": smooth(spread(model, img, sigma, restore, passes, seed), SMOOTH),
            "change": change(out, img, model.scale)}


def diagnostics(img: np.ndarray, out: np.ndarray, scale: int) -> dict[str, np.ndarray]:
    """Sources measured beside the map in the benchmark (and the gradient baseline)."""
    return {"residual": residual(out, img, scale), "gradient": smooth(gradient(out), SMOOTH),
            "texture": texture(img, scale)}


def design(maps: dict[str, np.ndarray]) -> np.ndarray:
    """(N, 1 + len(SOURCES)) log-features of the pixels, intercept first."""
    cols = [np.ones(maps[SOURCES[0]].size, np.float64)]
    cols += [np.log(maps[k].ravel().astype(np.float64) + EPS) for k in SOURCES]
    return np.stack(cols, 1)


def predict(maps: dict[str, np.ndarray], tm: TrustModel) -> np.ndarray:
    """The predicted error standard deviation (normalised units) on the output grid."""
    shape = maps[SOURCES[0]].shape
    log_sd = design(maps) @ np.asarray(tm.coef, np.float64)
    return (np.exp(np.clip(log_sd, -30, 5)) * tm.scale).reshape(shape).astype(np.float32)


def output_contrast(out: np.ndarray) -> np.ndarray:
    """Local standard deviation of the output's channel mean (window CONTRAST_SIGMA): the structure it shows."""
    return local_std(out.mean(2))


def line(path, s: dict) -> str:
    """The per-image trust line of a batch (in-process and on a cluster)."""
    return (f"trust ({s.get('map', 'sampling')} map): {path}: median predicted error {s['median_error']:.3g} (output units), "
            f"{s['doubtful_share']:.1%} of pixels doubtful{' - SUSPECT' if s['suspect'] else ''}")


def amplified(img: np.ndarray, out: np.ndarray, sigma: float, contrast: np.ndarray | None = None) -> np.ndarray:
    """Pixels whose output contrast the input cannot support: where the bicubic input's local contrast is within
    NOISE_LIKE noise SDs (it holds nothing but noise there), the output's local contrast exceeds AMPLIFIED times
    the larger of that contrast and the noise SD. A restorer may sharpen what the input shows, but must not turn
    noise or a flat region into structure. The noise SD counts at least AMPLIFY_FLOOR (a noise-free synthetic
    input would otherwise make any ripple doubtful).
    Chosen on the 40 held-out calibration images of the error head (training strips and fresh specimens; never
    the reserved images): the shipped model's doubtful share was above 1% on 1 of 40 (a deep-field photograph,
    0.95%: 0 of 40), a planted noise amplifier's on 34 of 40; the 7407653 weights on a flat 16-bit Poisson field
    under range normalisation: 78%."""
    s = max(sigma, AMPLIFY_FLOOR)
    c_in = texture(img, out.shape[0] // img.shape[0])
    c_out = output_contrast(out) if contrast is None else contrast
    return (c_in < NOISE_LIKE * s) & (c_out > AMPLIFIED * np.maximum(c_in, s))


def summary(sd: np.ndarray, spread_map: np.ndarray, img: np.ndarray, out: np.ndarray, sigma: float,
            units: float = 1.0) -> dict:
    """Per plane: the median predicted error (file units) and the share of doubtful pixels: where the output
    shows structure (local contrast above CONTRAST_NOISE times the input's noise) and the spread (what noise and
    symmetry alone change there) exceeds SUSPECT_FRACTION of that contrast, the structure may be invented.
    Pixels whose contrast the input cannot support (`amplified`) are doubtful too.
    Suspect when that share exceeds SUSPECT_SHARE. (The calibrated map also carries ordinary restoration error on edges,
    so the verdict uses its spread source.)"""
    contrast = output_contrast(out)
    doubtful = (contrast > CONTRAST_NOISE * sigma) & (spread_map > SUSPECT_FRACTION * contrast)
    doubtful |= amplified(img, out, sigma, contrast)
    share = float(doubtful.mean())
    return {"median_error": float(np.median(sd)) * units, "doubtful_share": share, "suspect": share > SUSPECT_SHARE,
            "map": "sampling"}


def combine(summaries: list[dict], maps: list[np.ndarray]) -> dict:
    """One image's summary: the median of its whole map (file units), the doubtful share over all its planes,
    suspect by the same rule as one plane, and how many planes alone would be suspect."""
    share = float(np.mean([s["doubtful_share"] for s in summaries])) if summaries else 0.0
    values = np.concatenate([m.ravel() for m in maps]) if maps else np.zeros(1, np.float32)
    return {"median_error": float(np.nanmedian(values)) if np.isfinite(values).any() else 0.0,
            "doubtful_share": share, "suspect": share > SUSPECT_SHARE,
            "planes": len(summaries), "suspect_planes": sum(s["suspect"] for s in summaries),
            "map": summaries[0].get("map", "sampling") if summaries else "none"}
