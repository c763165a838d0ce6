"""The forward model of `mdeblur adapt`: an in-focus specimen image (on the high-res grid) to the blurry low-res
file the user's microscope would record, and its truth, both in the units `restore` works in.

    truth = specimen (x) h_hr(0)                                    the sharp objective, in focus
    lr    = bin_s(specimen (x) h_lr(dz)) + Poisson(photons) + N(0, read^2)
    file  = round(lo + lr * (hi - lo))  stored at the camera's bit depth (float: not rounded)
    input = restore's normalisation of that file (8-bit: range; 12/16-bit, float: percentiles); the truth gets
            the same intensity map.

h_lr(dz) is the simulator's defocus PSF of the low-res objective (mdeblur simulate) or a measured PSF (a plane
of a bead stack, resampled onto the high-res grid); dz is drawn from the defocus range or the stack's planes.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch
import torch.nn.functional as F

from ..restore.normalize import DEFAULT_PERCENTILES, choose
from .degrade import convolve, poisson_gaussian_noise
from .draws import chance, uniform
from .psf import MeasuredPSF
from .simulate import SimulationSpec, cached_rgb_psfs, rgb_psfs

BITS_DTYPE = {8: np.uint8, 12: np.uint16, 16: np.uint16}


@dataclass(frozen=True)
class Camera:
    """How the low-res image is stored: bit depth and the file values that simulated black and white take."""

    bits: int | str = 16  # 8, 12, 16 or "float"
    lo: float = 0.0
    hi: float | None = None  # None: the bit depth's full scale (1.0 for float)

    @property
    def white(self) -> float:
        if self.hi is not None:
            return self.hi
        return 1.0 if self.bits == "float" else float(2 ** int(self.bits) - 1)

    def store(self, lr: np.ndarray) -> np.ndarray:
        """(H, W[, C]) simulated intensities -> the file's array."""
        x = self.lo + lr * (self.white - self.lo)
        if self.bits == "float":
            return x.astype(np.float32)
        top = 2 ** int(self.bits) - 1
        return np.clip(np.rint(x), 0, top).astype(BITS_DTYPE[int(self.bits)])

    def to_unit(self, x: np.ndarray) -> np.ndarray:
        """File values -> simulated intensities (truth units), for scoring."""
        return (x.astype(np.float32) - self.lo) / (self.white - self.lo)


@dataclass(frozen=True)
class ForwardModel:
    """Optics (SimulationSpec: objectives, defocus range, photons, read noise), optionally a measured PSF in place
    of the low-res objective's defocus PSF, and the camera."""

    spec: SimulationSpec
    psf: MeasuredPSF | None = None
    camera: Camera = Camera()
    percentiles: tuple[float, float] = DEFAULT_PERCENTILES

    @property
    def scale(self) -> int:
        return self.spec.scale

    @property
    def hr_pixel_um(self) -> float:
        return self.spec.objective_hr.pixel_um

    def draw_defocus(self, g: torch.Generator) -> float:
        """A defocus (um, signed): a plane of the measured stack, or |dz| in the range with either sign."""
        if self.psf is not None:
            return float(self.psf.defocus_um[int(torch.randint(len(self.psf.planes), (), generator=g))])
        lo, hi = self.spec.defocus_um
        dz = float(round(uniform(g, lo, hi), 1))
        return dz if chance(g, 0.5) else -dz

    def lr_psf_hr(self, dz: float) -> torch.Tensor:
        """The low-res objective's PSF at `dz` on the HR grid: (3, k, k), or (k, k) for a measured PSF."""
        if self.psf is not None:
            return torch.from_numpy(self.psf.planes[self.psf.defocus_um.index(dz)])
        return cached_rgb_psfs(dz, self.spec.objective_lr, self.hr_pixel_um)

    def lr_psf(self, dz: float) -> torch.Tensor:
        """The same PSF on the low-res grid (for Richardson-Lucy): (3, k, k)."""
        if self.psf is None:
            return rgb_psfs(dz, self.spec.objective_lr, self.hr_pixel_um * self.scale)
        p = torch.from_numpy(self.psf.planes_lr[self.psf.defocus_um.index(dz)])
        return p[None].expand(3, -1, -1).contiguous()

    def simulate(self, specimen: torch.Tensor, g: torch.Generator, dz: float | None = None,
                 gray: bool = False) -> tuple[np.ndarray, torch.Tensor, dict]:
        """(3, H, W) in-focus specimen -> (the LR file's array, HR truth (3, H, W) in [0, 1], metadata)."""
        s = self.scale
        dz = self.draw_defocus(g) if dz is None else dz
        h, w = specimen.shape[-2] // s * s, specimen.shape[-1] // s * s
        specimen = specimen[:, :h, :w]
        hr = convolve(specimen, cached_rgb_psfs(0.0, self.spec.objective_hr, self.hr_pixel_um)).clamp(0, 1)
        lr = F.avg_pool2d(convolve(specimen, self.lr_psf_hr(dz))[None], s)[0].clamp(0, 1)
        if self.spec.peak is not None:
            lr = poisson_gaussian_noise(lr, self.spec.peak, self.spec.read_sigma, g)
        lr_np = lr.permute(1, 2, 0).numpy()
        if gray:
            lr_np, hr = lr_np.mean(2), hr.mean(0, keepdim=True).expand(3, -1, -1)
        meta = {"defocus_um": dz, "photons": self.spec.peak, "read_sigma": self.spec.read_sigma,
                "bits": self.camera.bits}
        return self.camera.store(lr_np), hr, meta

    def normalised_pair(self, file_lr: np.ndarray, hr: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        """The network's input as restore normalises the file, and the truth under the same map: (H, W, 3) and
        (sH, sW, 3) float32, for training."""
        norm = choose(file_lr, "auto", self.percentiles)
        x = norm.apply(file_lr.astype(np.float32)).astype(np.float32)
        x = np.repeat(x[..., None], 3, axis=2) if x.ndim == 2 else x
        truth_file = self.camera.lo + hr.permute(1, 2, 0).numpy() * (self.camera.white - self.camera.lo)
        return x, norm.apply(truth_file.astype(np.float32)).astype(np.float32)

    def with_noise(self, photons: float | None, read_sigma: float) -> ForwardModel:
        return replace(self, spec=replace(self.spec, peak=photons, read_sigma=read_sigma))
