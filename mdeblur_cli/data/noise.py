"""What a user's real files say about their camera: bit depth, intensity range and a Poisson-Gaussian noise fit
(variance = intensity / photons + read^2, in the units restore normalises to), for `mdeblur adapt --like`."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..errors import MdeblurError

BLOCK = 8  # px: blocks whose residual variance is measured
BINS = 12  # intensity bins of the fit
FLAT_SHARE = 0.3  # per bin, the flattest share of blocks (by residual variance) that count as noise alone
# The Laplacian residual of a pure-noise block has the noise variance; the lowest FLAT_SHARE of 64-sample
# variance estimates sit below their median: this factor (measured on pure Poisson-Gaussian fields) undoes it.
FLAT_BIAS = 1.25


@dataclass(frozen=True)
class NoiseEstimate:
    """The camera as the files show it (normalised units: restore's [0, 1] after percentile or range mapping)."""

    photons: float | None  # photons at white (None: no Poisson part found)
    read_sigma: float
    bits: int | str  # 8, 12, 16 or "float"
    lo: float  # the intensity range restore maps to [0, 1] (file units; the median over files)
    hi: float
    files: int

    def to_dict(self) -> dict:
        return asdict(self)

    def describe(self) -> str:
        ph = "no Poisson part" if self.photons is None else f"{self.photons:.0f} photons at white"
        return (f"{self.files} file(s): {self.bits}-bit" if self.bits != "float" else f"{self.files} file(s): float") + (
            f", intensities {self.lo:.6g}-{self.hi:.6g} mapped to [0, 1]; noise {ph}, read noise {self.read_sigma:.4g}")


def bit_depth(arrays: list[np.ndarray], names: list[str]) -> int | str:
    """8, 12 (16-bit files that never exceed 4095) or 16 bits, or float; mixed depths are refused."""
    depths = []
    for a in arrays:
        if a.dtype == np.uint8:
            depths.append(8)
        elif a.dtype == np.uint16:
            depths.append(12 if int(a.max()) <= 4095 else 16)
        elif a.dtype.kind == "f":
            depths.append("float")
        else:
            raise MdeblurError(f"{names[len(depths)]}: {a.dtype} samples; --like reads 8/16-bit or float files")
    if len(set(depths)) > 1:
        a, b = sorted(set(depths), key=str)[:2]
        raise MdeblurError(f"--like: the files mix bit depths ({names[depths.index(a)]} is {a}, "
                           f"{names[depths.index(b)]} is {b}); give files from one camera set-up")
    return depths[0]


def residual(x: np.ndarray) -> np.ndarray:
    """The Laplacian residual, scaled so pure noise keeps its variance (locally linear signal cancels)."""
    r = 4 * x[1:-1, 1:-1] - x[:-2, 1:-1] - x[2:, 1:-1] - x[1:-1, :-2] - x[1:-1, 2:]
    return r / math.sqrt(20.0)


def block_stats(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mean, residual variance) of each BLOCK x BLOCK block of a 2-D float image."""
    r = residual(x)
    m = x[1:-1, 1:-1]
    h, w = (r.shape[0] // BLOCK) * BLOCK, (r.shape[1] // BLOCK) * BLOCK
    rb = r[:h, :w].reshape(h // BLOCK, BLOCK, w // BLOCK, BLOCK)
    mb = m[:h, :w].reshape(h // BLOCK, BLOCK, w // BLOCK, BLOCK)
    return mb.mean((1, 3)).ravel(), rb.var((1, 3)).ravel()


def fit_poisson_gaussian(means: np.ndarray, variances: np.ndarray, quant_step: float = 0.0) -> tuple[float, float]:
    """(a, b) of variance = a * mean + b from the flattest blocks of each intensity bin (a, b >= 0)."""
    edges = np.quantile(means, np.linspace(0, 1, BINS + 1))
    xs, ys, ws = [], [], []
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        sel = (means >= lo) & (means <= hi)
        if sel.sum() < 8:
            continue
        v = np.sort(variances[sel])
        k = max(1, int(len(v) * FLAT_SHARE))
        xs.append(float(means[sel].mean()))
        ys.append(float(np.median(v[:k])) * FLAT_BIAS - quant_step**2 / 12)
        ws.append(k)
    if len(xs) < 2:
        raise MdeblurError("--like: too few flat regions to estimate the noise (give larger or more files)")
    x, y, w = np.array(xs), np.array(ys), np.sqrt(np.array(ws, float))
    a, b = np.linalg.lstsq(np.stack([x, np.ones_like(x)], 1) * w[:, None], y * w, rcond=None)[0]
    if a < 0:  # no signal dependence: read noise alone
        a, b = 0.0, float(np.average(y, weights=w))
    if b < 0:
        a, b = float(np.sum(w * x * y) / np.sum(w * x * x)), 0.0
    return float(a), float(max(b, 0.0))


def estimate(paths: list[Path], percentiles: tuple[float, float]) -> NoiseEstimate:
    """Read every file (first plane, each channel alone) and fit the camera's noise in restore's units."""
    from ..formats.images import read_image
    from ..restore.normalize import choose

    arrays, names = [], []
    for p in paths:
        arrays.append(read_image(p).pages[0])
        names.append(str(p))
    if not arrays:
        raise MdeblurError("--like: no readable image in the folder")
    bits = bit_depth(arrays, names)
    means, variances, los, his, steps = [], [], [], [], []
    for a in arrays:
        planes = [a] if a.ndim == 2 else [a[..., c] for c in range(min(a.shape[2], 3))]
        for plane in planes:
            norm = choose(plane, "auto", percentiles)
            x = norm.apply(plane.astype(np.float64))
            m, v = block_stats(x)
            means.append(m)
            variances.append(v)
            los.append(norm.lo)
            his.append(norm.hi)
            steps.append(1.0 / (norm.hi - norm.lo) if a.dtype.kind in "ui" else 0.0)
    a_fit, b_fit = fit_poisson_gaussian(np.concatenate(means), np.concatenate(variances), float(np.median(steps)))
    photons = 1.0 / a_fit if a_fit > 0 else None
    return NoiseEstimate(photons, math.sqrt(b_fit), bits, float(np.median(los)), float(np.median(his)), len(arrays))
