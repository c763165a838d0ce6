"""The PSF Richardson-Lucy is given in a benchmark, parsed from --psf (a Gaussian, a disk, a defocus, a file), and
the candidates searched when the data carry none."""

from __future__ import annotations

import math

import numpy as np
import torch


def parse_psf(spec: str) -> torch.Tensor:
    """'gaussian:SIGMA' (low-res px), 'disk:RADIUS', 'defocus:DZ_UM', or an image/.npy file holding the PSF.

    'defocus:DZ_UM' is the pupil-function defocus PSF of the x5/NA 0.12 objective (6.5 um camera pixels, so 1.3 um
    at the sample), one per colour channel: the low-res side of the x5/x10 pairs.
    """
    from ..data.degrade import disk_kernel, gaussian_kernel
    from ..errors import MdeblurError

    kind, _, value = spec.partition(":")
    try:
        if kind in ("gaussian", "disk", "defocus"):
            number = float(value)
            if not (math.isfinite(number) and (number >= 0 if kind == "defocus" else number > 0)):
                raise MdeblurError(f"--psf {spec}: the {'defocus' if kind == 'defocus' else 'size'} must be a "
                                   f"{'non-negative' if kind == 'defocus' else 'positive'} number")
        if kind == "gaussian":
            return gaussian_kernel(number)
        if kind == "disk":
            return disk_kernel(number)
        if kind == "defocus":
            from ..data.simulate import OBJ_X5, cached_rgb_psfs

            # Memoised: the grid search and the chosen PSF would otherwise simulate the same optics twice.
            return cached_rgb_psfs(float(value), OBJ_X5, OBJ_X5.pixel_um).float().clone()  # not the shared tensor
    except ValueError:
        raise MdeblurError(f"--psf {spec}: not a number after '{kind}:'") from None
    from pathlib import Path

    from ..formats.images import read_image, to_float

    path = Path(spec)
    if path.suffix == ".npy" and path.is_file():
        try:
            arr = np.load(path, allow_pickle=False)
            arr = arr.astype(np.float32)
        except (ValueError, TypeError, OSError, EOFError) as exc:
            raise MdeblurError(f"--psf {spec}: not a numeric .npy array ({type(exc).__name__})") from None
    elif path.is_file():
        arr = to_float(read_image(path).pages[0])
        arr = arr.mean(2) if arr.ndim == 3 else arr
    else:
        raise MdeblurError(f"--psf {spec}: use gaussian:SIGMA, disk:RADIUS, defocus:DZ_UM, or a PSF image/.npy file")
    if arr.ndim != 2 or not np.isfinite(arr).all() or arr.min() < 0 or arr.sum() <= 0:
        raise MdeblurError(f"--psf {spec}: the PSF must be a 2-D array of finite, non-negative values with a "
                           "positive sum")
    return torch.from_numpy(arr / arr.sum())

# Candidates for rl-sr where the data carry no PSF: Gaussian blurs (LR px) and x5 defocus (um).
PSF_GRID = (*(f"gaussian:{s:g}" for s in (0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0, 2.5, 3.0)),
            *(f"defocus:{dz:g}" for dz in (15, 30, 45, 60, 90, 120)))
