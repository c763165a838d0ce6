"""Degradations as pure, seeded functions on float32 tensors (C, H, W) or (B, C, H, W) in [0, 1]."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..padding import edge_pad
from ..train.config import DegradationSpec
from .draws import chance, log_uniform, uniform, unit


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
    """Convolve (C, H, W) or (B, C, H, W) channel by channel, reflect-padded so borders are not darkened: with one
    2-D PSF (kh, kw) for every channel, or one per channel (C, kh, kw)."""
    squeeze = img.dim() == 3
    x = img[None] if squeeze else img
    c = x.shape[1]
    ph, pw = psf.shape[-2] // 2, psf.shape[-1] // 2
    x = edge_pad(x, pw, pw, ph, ph)
    w = psf.flip(-2, -1).to(x)
    w = w[:, None] if psf.dim() == 3 else w[None, None].expand(c, 1, *psf.shape)
    out = F.conv2d(x, w, groups=c)
    return out[0] if squeeze else out


def downscale(img: torch.Tensor, scale: int) -> torch.Tensor:
    """Antialiased bicubic downscaling by an integer factor."""
    squeeze = img.dim() == 3
    x = img[None] if squeeze else img
    h, w = x.shape[-2] // scale, x.shape[-1] // scale
    out = F.interpolate(x[..., : h * scale, : w * scale], size=(h, w), mode="bicubic", antialias=True, align_corners=False)
    return out[0] if squeeze else out


def upscale_bicubic(img: torch.Tensor, scale: int, clip: bool = True) -> torch.Tensor:
    """Plain bicubic upscaling by an integer factor, clipped to [0, 1] unless `clip` is False."""
    squeeze = img.dim() == 3
    x = img[None] if squeeze else img
    out = F.interpolate(x, scale_factor=scale, mode="bicubic", align_corners=False)
    out = out.clamp(0, 1) if clip else out
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


def quantize(img: torch.Tensor, bits: int) -> torch.Tensor:
    """Round to the 2**bits levels of an integer file (as a camera or an 8-bit PNG stores it), clipped to [0, 1]."""
    levels = float(2**bits - 1)
    return torch.round(img.clamp(0, 1) * levels) / levels


def jpeg_compress(img: torch.Tensor, quality: int) -> torch.Tensor:
    """Encode (C, H, W) or (B, C, H, W) in [0, 1] as an 8-bit JPEG of the given quality and decode it (OpenCV)."""
    import cv2
    import numpy as np

    squeeze = img.dim() == 3
    x = img[None] if squeeze else img
    out = []
    for t in x:
        arr = np.rint(t.detach().cpu().clamp(0, 1).numpy().transpose(1, 2, 0) * 255).astype(np.uint8)
        arr = arr[..., ::-1] if arr.shape[2] == 3 else arr  # OpenCV's BGR order
        ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(arr), [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
        if not ok:
            raise RuntimeError("OpenCV could not encode a JPEG")
        dec = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
        dec = dec.reshape(*dec.shape[:2], -1)
        dec = dec[..., ::-1] if dec.shape[2] == 3 else dec
        out.append(torch.from_numpy(dec.transpose(2, 0, 1).astype(np.float32) / 255.0))
    y = torch.stack(out).to(img)
    return y[0] if squeeze else y


def dim(img: torch.Tensor, gain: float, offset: float) -> torch.Tensor:
    """A dim image on a dark offset: content over `gain` of the range, starting at `offset`."""
    return img * gain + offset


def percentile_normalize(
    lr: torch.Tensor, targets: tuple[torch.Tensor, ...], percentiles: tuple[float, float]
) -> tuple[torch.Tensor, tuple[torch.Tensor, ...], dict]:
    """The percentile mapping `restore` applies to the input, computed on `lr` and applied to it and the targets."""
    from ..restore.normalize import choose

    norm = choose(lr.detach().cpu().permute(1, 2, 0).numpy(), "percentile", percentiles)
    return (norm.apply(lr), tuple(norm.apply(t) for t in targets),
            {"normalize": norm.mode, "norm_lo": norm.lo, "norm_hi": norm.hi})


def random_dim(
    images: tuple[torch.Tensor, ...], spec: DegradationSpec, generator: torch.Generator
) -> tuple[tuple[torch.Tensor, ...], dict]:
    """With probability dim_prob, the same dimming (gain, offset) of every image; returns images and parameters."""
    if not chance(generator, spec.dim_prob):
        return images, {}
    params = {"gain": log_uniform(generator, *spec.dim_gain_range), "offset": uniform(generator, 0.0, spec.dim_offset_max)}
    return tuple(dim(t, params["gain"], params["offset"]) for t in images), params


def random_noise(lr: torch.Tensor, spec: DegradationSpec, generator: torch.Generator) -> tuple[torch.Tensor, dict]:
    """With probability noise_prob, Poisson-Gaussian noise at a log-uniform photon count; returns image and parameters."""
    if not chance(generator, spec.noise_prob):
        return lr, {}
    params = {"peak": log_uniform(generator, *spec.peak_range), "read_sigma": uniform(generator, 0.0, spec.read_sigma_max)}
    return poisson_gaussian_noise(lr, params["peak"], params["read_sigma"], generator), params


def random_encoding(
    lr: torch.Tensor, targets: tuple[torch.Tensor, ...], spec: DegradationSpec, generator: torch.Generator
) -> tuple[torch.Tensor, tuple[torch.Tensor, ...], dict]:
    """Store the LR input as a user's file (8-bit, JPEG, 12-bit or float), then normalise it as `restore` does.

    8-bit files keep their range; 12-bit and float ones are percentile-normalised, and the targets get the same map.
    """
    u = unit(generator)
    if u < spec.bits8_prob:
        params: dict = {"bits": 8}
        if chance(generator, spec.jpeg_prob):
            q = int(round(uniform(generator, *spec.jpeg_quality_range)))
            return jpeg_compress(lr, q), targets, {**params, "jpeg_quality": q, "normalize": "range"}
        return quantize(lr, 8), targets, {**params, "normalize": "range"}
    if u < spec.bits8_prob + spec.bits12_prob:
        params = {"bits": 12}
        lr = quantize(lr, 12)
    else:
        params = {"bits": "float"}
    lr, targets, norm = percentile_normalize(lr, targets, spec.percentiles)
    return lr, targets, {**params, **norm}


def random_degradation(
    hr: torch.Tensor, spec: DegradationSpec, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, dict]:
    """Degrade one HR image (C, H, W): returns (LR input, clear LR target, HR target, parameters drawn).

    The targets differ from `hr` and its downscaled copy only by the intensity mapping (dimming, normalisation)
    that the input went through.
    """
    lr_clear = downscale(hr, spec.scale).clamp(0, 1)
    protocol = chance(generator, spec.protocol_prob)
    if protocol:
        params = {"psf": "gaussian", "sigma_px": uniform(generator, *spec.protocol_sigma_range)}
        psf = gaussian_kernel(params["sigma_px"])
    elif chance(generator, spec.disk_prob):
        params = {"psf": "disk", "radius_px": uniform(generator, *spec.disk_range)}
        psf = disk_kernel(params["radius_px"])
    else:
        params = {"psf": "gaussian", "sigma_px": uniform(generator, *spec.sigma_range)}
        psf = gaussian_kernel(params["sigma_px"])
    lr = convolve(lr_clear, psf).clamp(0, 1)
    (lr, lr_clear, hr), dim_params = random_dim((lr, lr_clear, hr), spec, generator)
    params.update(dim_params)
    if spec.noise_all_branches or not protocol:
        lr, noise_params = random_noise(lr, spec, generator)
        params.update(noise_params)
    lr, (lr_clear, hr), enc = random_encoding(lr, (lr_clear, hr), spec, generator)
    return lr, lr_clear, hr, {**params, **enc}
