"""Intensity normalisation of images before the network, and its exact inverse after (CSBDeep-style).

Pure functions. Percentiles come from a strided sample of the image, never from a full sorted copy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MODES = ("auto", "percentile", "range", "none")
DEFAULT_PERCENTILES = (0.1, 99.9)
MAX_SAMPLES = 1 << 20  # pixels read for the percentiles
MIN_SPAN = 1e-6  # of the dtype's range: below it, percentiles fall back to the range mapping


@dataclass(frozen=True)
class Normalization:
    """x_network = (x_file - lo) / (hi - lo), with x_file in the file's own intensity units."""

    mode: str
    lo: float
    hi: float

    def apply(self, x):
        """File intensities (array or tensor) to network units."""
        return (x - self.lo) / (self.hi - self.lo)

    def invert(self, y):
        """Network units back to file intensities (exact inverse of `apply`)."""
        return y * (self.hi - self.lo) + self.lo

    def describe(self) -> str:
        return f"{self.mode} [{self.lo:.6g}, {self.hi:.6g}] -> [0, 1]"


def dtype_range(dtype: np.dtype) -> tuple[float, float]:
    """(0, max) for unsigned integers, (0, 1) for floats."""
    dtype = np.dtype(dtype)
    if np.issubdtype(dtype, np.integer):
        return 0.0, float(np.iinfo(dtype).max)
    return 0.0, 1.0


def strided_sample(x: np.ndarray, max_samples: int = MAX_SAMPLES) -> np.ndarray:
    """At most about `max_samples` values, taken on a regular grid of rows and columns (all channels)."""
    if x.size <= max_samples:
        return np.asarray(x).reshape(-1)
    step = int(np.ceil(np.sqrt(x.size / max_samples)))
    return np.asarray(x[::step, ::step]).reshape(-1)


def check_percentiles(percentiles) -> tuple[float, float]:
    """Two numbers LO, HI with 0 <= LO < HI <= 100, as floats; ValueError otherwise."""
    try:
        lo_pct, hi_pct = (float(v) for v in percentiles)
    except (TypeError, ValueError):
        raise ValueError(f"percentiles must be two numbers (LO, HI), got {percentiles!r}") from None
    if not 0 <= lo_pct < hi_pct <= 100:
        raise ValueError(f"percentiles must satisfy 0 <= LO < HI <= 100, got {lo_pct}, {hi_pct}")
    return lo_pct, hi_pct


def percentile_bounds(x: np.ndarray, percentiles: tuple[float, float] = DEFAULT_PERCENTILES) -> tuple[float, float]:
    """The low and high percentiles of an image (from a strided sample; NaN ignored)."""
    lo_pct, hi_pct = check_percentiles(percentiles)
    sample = strided_sample(x).astype(np.float64)
    lo, hi = np.nanpercentile(sample, [lo_pct, hi_pct])
    return float(lo), float(hi)


def resolve_mode(mode: str, dtype: np.dtype) -> str:
    """'auto': 8-bit images use their range; 16-bit integer and float images are percentile-normalised."""
    if mode not in MODES:
        raise ValueError(f"normalisation must be one of {', '.join(MODES)}, not {mode!r}")
    if mode != "auto":
        return mode
    return "range" if np.dtype(dtype) == np.uint8 else "percentile"


def choose(x: np.ndarray, mode: str = "auto", percentiles: tuple[float, float] = DEFAULT_PERCENTILES) -> Normalization:
    """The normalisation of one image (all channels together, so colour balance is kept).

    - 'range': integers by their type's range; floats as they are if inside [0, 1], else by their own min/max.
    - 'percentile': the LO and HI percentiles map to 0 and 1 (values beyond stay beyond: nothing is clipped).
    - 'none': integers by their type's range, floats as they are.
    A percentile span too small to divide by (a constant image) is widened around its middle to one count of an
    integer type (a thousandth of the value, at least 1e-3, for floats), so a flat image reaches the network as flat
    mid-grey.
    """
    mode = resolve_mode(mode, x.dtype)
    tlo, thi = dtype_range(x.dtype)
    if mode == "percentile":
        lo, hi = percentile_bounds(x, percentiles)
        if hi - lo > MIN_SPAN * (thi - tlo):
            return Normalization("percentile", lo, hi)
        mid = (lo + hi) / 2
        half = 0.5 if np.issubdtype(x.dtype, np.integer) else 0.5e-3 * max(1.0, abs(mid))
        return Normalization("percentile", mid - half, mid + half)
    if mode == "range" and np.issubdtype(x.dtype, np.floating):
        sample = strided_sample(x)
        lo, hi = float(np.nanmin(sample)), float(np.nanmax(sample))
        if lo < 0 or hi > 1:
            return Normalization("range", lo, max(hi, lo + 1e-12))
    return Normalization(mode, tlo, thi)
