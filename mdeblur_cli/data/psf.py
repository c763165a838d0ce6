"""A measured PSF as the forward model's blur: a 2-D PSF image or a 3-D bead stack, its calibration (OME, ImageJ
or given), checked that it is a PSF, and resampled onto the simulator's high-res grid."""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ..errors import MdeblurError

MAX_RADIUS_HR = 96  # HR px kept around the PSF's centre (a wider one is cropped)


@dataclass(frozen=True)
class MeasuredPSF:
    """Planes of a PSF on the HR grid and on the LR grid, each summing to 1, and the defocus (um) of each."""

    planes: tuple[np.ndarray, ...]
    planes_lr: tuple[np.ndarray, ...]
    defocus_um: tuple[float, ...]
    pixel_um: float  # the PSF file's own pixel size
    sha256: str
    source: str

    def describe(self) -> dict:
        dz = [abs(d) for d in self.defocus_um]
        return {"psf": self.source, "psf_sha256": self.sha256, "psf_pixel_um": self.pixel_um,
                "psf_planes": len(self.planes), "defocus_um": [min(dz), max(dz)]}


def _to_um(value: float, unit: str, what: str, path: Path) -> float:
    from ..formats.series import UNIT_CM

    if unit not in UNIT_CM:
        raise MdeblurError(f"{path}: its {what} is in '{unit}', not a length; give --psf-pixel-size in um")
    return value * UNIT_CM[unit] / 1e-4


def _calibration(path: Path, meta, pixel_um: float | None) -> float:
    """The PSF's pixel size in um: --psf-pixel-size, else the file's OME or ImageJ calibration."""
    if pixel_um is not None:
        if not (math.isfinite(pixel_um) and pixel_um > 0):
            raise MdeblurError(f"--psf-pixel-size {pixel_um:g}: must be a positive size in um")
        return float(pixel_um)
    size = meta.pixel_size()
    if size is None:
        raise MdeblurError(f"{path}: the PSF's pixel size is not in the file (no OME or ImageJ calibration); "
                           "give --psf-pixel-size in um")
    return _to_um(size[1], size[2], "pixel size", path)


def check_psf(path: Path, plane: np.ndarray) -> np.ndarray:
    """A float64 plane that is a PSF (finite, not negative beyond noise, not empty), its camera offset removed
    (the median of its border) and normalised to sum 1."""
    p = plane.astype(np.float64)
    if not np.isfinite(p).all():
        raise MdeblurError(f"{path}: the PSF holds NaN or Inf samples")
    peak = float(np.abs(p).max())
    if peak == 0:
        raise MdeblurError(f"{path}: the PSF is all zero")
    if p.min() < -0.05 * peak:
        raise MdeblurError(f"{path}: the PSF has negative values down to {p.min():.3g} (peak {p.max():.3g}); a PSF "
                           "is an intensity, not negative")
    border = np.concatenate([p[0], p[-1], p[:, 0], p[:, -1]])
    p = np.clip(p - np.median(border), 0, None)
    if p.sum() <= 0:
        raise MdeblurError(f"{path}: the PSF is flat (nothing above its border level)")
    return p / p.sum()


def _centre_and_resample(p: np.ndarray, factor: float) -> np.ndarray:
    """Centre on the centroid (whole pixels), resample by `factor` (PSF px -> HR px), crop to an odd square."""
    y, x = np.indices(p.shape)
    cy, cx = int(round((p * y).sum())), int(round((p * x).sum()))
    r = min(cy, cx, p.shape[0] - 1 - cy, p.shape[1] - 1 - cx)
    p = p[cy - r : cy + r + 1, cx - r : cx + r + 1]
    if factor != 1:
        side = max(1, int(round(p.shape[0] * factor)))
        side += 1 - side % 2
        interp = cv2.INTER_AREA if factor < 1 else cv2.INTER_CUBIC
        p = np.clip(cv2.resize(p, (side, side), interpolation=interp), 0, None)
    r = min(p.shape[0] // 2, MAX_RADIUS_HR)
    c = p.shape[0] // 2
    p = p[c - r : c + r + 1, c - r : c + r + 1]
    p = 0.5 * (p + p[::-1, ::-1])  # symmetric about its centre, as the simulated PSFs are
    return (p / p.sum()).astype(np.float32)


def read_psf(path: str | Path, hr_pixel_um: float, scale: int, pixel_um: float | None = None,
             z_step_um: float | None = None) -> MeasuredPSF:
    """A 2-D PSF (one plane, defocus unknown: recorded as 0) or a 3-D bead stack (Z planes at their calibrated
    spacing, centred on the sharpest plane), each plane on the HR grid of `hr_pixel_um` and on the LR grid
    (`scale` times coarser)."""
    from ..formats.stacks import read_series

    path = Path(path)
    series = read_series(path)
    s = series[0]
    data, axes = s.data, s.axes
    if "S" in axes or "C" in axes:
        raise MdeblurError(f"{path}: give a single-channel PSF (gray), not {axes} with colour or channels")
    keep = [i for i, a in enumerate(axes) if a in "ZYX"]
    if any(data.shape[i] != 1 for i, a in enumerate(axes) if a not in "ZYX"):
        raise MdeblurError(f"{path}: a PSF is YX or ZYX; this file's axes are {axes}")
    data = data.reshape([data.shape[i] for i in keep])
    px = _calibration(path, s.meta, pixel_um)
    planes = [check_psf(path, p) for p in (data if data.ndim == 3 else data[None])]
    factor = px / hr_pixel_um
    if data.ndim == 3:
        if z_step_um is None:
            z = s.meta.z_spacing()
            if z is None:
                raise MdeblurError(f"{path}: a bead stack needs its Z spacing (OME PhysicalSizeZ or ImageJ spacing)")
            z_step_um = _to_um(z[0], z[1], "Z spacing", path)
        focus = int(np.argmax([p.max() for p in planes]))  # the sharpest plane is the focus
        dz = tuple((i - focus) * z_step_um for i in range(len(planes)))
    else:
        dz = (0.0,)
    resampled = tuple(_centre_and_resample(p, factor) for p in planes)
    on_lr = tuple(_centre_and_resample(p, factor / scale) for p in planes)
    digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else ""
    return MeasuredPSF(resampled, on_lr, dz, px, digest, str(path))


def check_fits(psf: MeasuredPSF, images: list[tuple[str, np.ndarray]]) -> None:
    """Refuse a PSF wider than an image it is to blur (on the HR grid)."""
    side = max(p.shape[0] for p in psf.planes)
    for name, img in images:
        if side > min(img.shape[:2]):
            raise MdeblurError(f"{psf.source}: the PSF ({side} px on the high-res grid) is larger than {name} "
                               f"({img.shape[1]}x{img.shape[0]}); check --psf-pixel-size or crop the PSF")
