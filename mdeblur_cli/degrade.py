"""Degradations as pure, seeded functions on float32 tensors (C, H, W) or (B, C, H, W) in [0, 1]."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F


def gaussian_kernel(sigma_px: float, radius: int | None = None) -> torch.Tensor:
    """Normalised 2-D Gaussian PSF of standard deviation sigma_px, size 2*radius+1."""
    radius = max(1, math.ceil(3.5 * sigma_px)) if radius is None else radius
    x = torch.arange(-radius, radius + 1, dtype=torch.float64)
    g = torch.exp(-(x**2) / (2 * max(sigma_px, 1e-6) ** 2))
    k = g[:, None] * g[None, :]
    return (k / k.sum()).float()


def disk_kernel(radius_px: float, supersample: int = 8) -> torch.Tensor:
    """Normalised, antialiased uniform disk (geometric defocus PSF) of the given radius."""
    r = math.ceil(radius_px + 0.5)
    n = (2 * r + 1) * supersample
    c = (torch.arange(n, dtype=torch.float64) + 0.5) / supersample - (r + 0.5)
    inside = ((c[:, None] ** 2 + c[None, :] ** 2) <= radius_px**2).double()
    k = F.avg_pool2d(inside[None, None], supersample)[0, 0]
    return (k / k.sum()).float()


def convolve(img: torch.Tensor, psf: torch.Tensor) -> torch.Tensor:
    """Convolve each channel with a 2-D PSF, reflect-padded so borders are not darkened."""
    squeeze = img.dim() == 3
    x = img[None] if squeeze else img
    c = x.shape[1]
    ph, pw = psf.shape[0] // 2, psf.shape[1] // 2
    mode = "reflect" if min(x.shape[-2:]) > max(ph, pw) else "replicate"
    x = F.pad(x, (pw, pw, ph, ph), mode=mode)
    w = psf.flip(0, 1).to(x)[None, None].expand(c, 1, *psf.shape)
    out = F.conv2d(x, w, groups=c)
    return out[0] if squeeze else out


def downscale(img: torch.Tensor, scale: int) -> torch.Tensor:
    """Antialiased bicubic downscaling by an integer factor."""
    squeeze = img.dim() == 3
    x = img[None] if squeeze else img
    h, w = x.shape[-2] // scale, x.shape[-1] // scale
    out = F.interpolate(x[..., : h * scale, : w * scale], size=(h, w), mode="bicubic", antialias=True, align_corners=False)
    return out[0] if squeeze else out


def upscale_bicubic(img: torch.Tensor, scale: int) -> torch.Tensor:
    """Plain bicubic upscaling by an integer factor, clipped to [0, 1]."""
    squeeze = img.dim() == 3
    x = img[None] if squeeze else img
    out = F.interpolate(x, scale_factor=scale, mode="bicubic", align_corners=False).clamp(0, 1)
    return out[0] if squeeze else out


def poisson_gaussian_noise(img: torch.Tensor, peak: float, read_sigma: float, generator: torch.Generator) -> torch.Tensor:
    """Shot noise for `peak` photons at white plus Gaussian read noise (normal approximation)."""
    std = torch.sqrt(img.clamp(min=0) / peak + read_sigma**2)
    noise = torch.randn(img.shape, generator=generator, dtype=img.dtype)
    return (img + std * noise.to(img.device)).clamp(0, 1)


def fire_protocol(hr: torch.Tensor, sigma_px: float = 1.5, scale: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    """The paper's FIRE protocol: antialiased bicubic down by `scale`, then Gaussian blur (sigma in LR px).

    Returns (blurry low-res input, clear low-res image).
    """
    lr_clear = downscale(hr, scale).clamp(0, 1)
    return convolve(lr_clear, gaussian_kernel(sigma_px)).clamp(0, 1), lr_clear


@dataclass
class DegradationSpec:
    """The random degradation mix used for training (blur sizes in low-res pixels)."""

    scale: int = 2
    protocol_prob: float = 0.5  # share of noise-free Gaussian blur near the paper's FIRE protocol
    protocol_sigma_range: tuple[float, float] = (1.2, 1.8)
    sigma_range: tuple[float, float] = (0.6, 2.4)  # Gaussian blur of the broad share
    disk_prob: float = 0.25  # share of defocus disks instead of Gaussians
    disk_range: tuple[float, float] = (1.0, 3.5)  # defocus disk radius
    noise_prob: float = 0.5  # of the broad share; the rest is noise-free
    peak_range: tuple[float, float] = (200.0, 2000.0)  # photons at white
    read_sigma_max: float = 0.01

    def to_dict(self) -> dict:
        return asdict(self)


def _uniform(generator: torch.Generator, lo: float, hi: float) -> float:
    return lo + (hi - lo) * torch.rand((), generator=generator).item()


def random_degradation(
    hr: torch.Tensor, spec: DegradationSpec, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor, dict]:
    """Degrade one HR image (C, H, W): returns (blurry noisy LR, clear LR, parameters drawn)."""
    lr_clear = downscale(hr, spec.scale).clamp(0, 1)
    if torch.rand((), generator=generator).item() < spec.protocol_prob:
        params = {"psf": "gaussian", "sigma_px": _uniform(generator, *spec.protocol_sigma_range)}
        return convolve(lr_clear, gaussian_kernel(params["sigma_px"])).clamp(0, 1), lr_clear, params
    if torch.rand((), generator=generator).item() < spec.disk_prob:
        params = {"psf": "disk", "radius_px": _uniform(generator, *spec.disk_range)}
        psf = disk_kernel(params["radius_px"])
    else:
        params = {"psf": "gaussian", "sigma_px": _uniform(generator, *spec.sigma_range)}
        psf = gaussian_kernel(params["sigma_px"])
    lr = convolve(lr_clear, psf).clamp(0, 1)
    if torch.rand((), generator=generator).item() < spec.noise_prob:
        params["peak"] = math.exp(_uniform(generator, *map(math.log, spec.peak_range)))
        params["read_sigma"] = _uniform(generator, 0.0, spec.read_sigma_max)
        lr = poisson_gaussian_noise(lr, params["peak"], params["read_sigma"], generator)
    return lr, lr_clear, params
