"""PSNR and SSIM in torch (data range 1), shared by the training loss and the benchmark."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..data.degrade import gaussian_kernel

K1, K2 = 0.01, 0.03
WINDOW, WINDOW_SIGMA = 11, 1.5


def _batched(x: torch.Tensor) -> torch.Tensor:
    return x[None] if x.dim() == 3 else x[None, None] if x.dim() == 2 else x


def crop_border(x: torch.Tensor, border: int) -> torch.Tensor:
    """Crop `border` pixels from each side of the last two dimensions."""
    return x[..., border:-border, border:-border] if border > 0 else x


def psnr(pred: torch.Tensor, target: torch.Tensor, border: int = 0) -> torch.Tensor:
    """PSNR in dB over all channels, per image; inputs (B, C, H, W), (C, H, W) or (H, W) in [0, 1]."""
    p, t = crop_border(_batched(pred), border).double(), crop_border(_batched(target), border).double()
    mse = ((p - t) ** 2).mean((1, 2, 3))
    return 10 * torch.log10(1.0 / mse.clamp(min=1e-20))


def ssim(pred: torch.Tensor, target: torch.Tensor, border: int = 0) -> torch.Tensor:
    """SSIM of Wang et al. per image: 11x11 Gaussian window (sigma 1.5), population covariance,
    'valid' region, mean over channels; differentiable, so also the training loss."""
    p, t = crop_border(_batched(pred), border), crop_border(_batched(target), border)
    c = p.shape[1]
    g = gaussian_kernel(WINDOW_SIGMA, radius=WINDOW // 2).to(p)[None, None].expand(c, 1, WINDOW, WINDOW)

    def filt(x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, g, groups=c)

    mu_p, mu_t = filt(p), filt(t)
    var_p = filt(p * p) - mu_p**2
    var_t = filt(t * t) - mu_t**2
    cov = filt(p * t) - mu_p * mu_t
    c1, c2 = K1**2, K2**2
    s = ((2 * mu_p * mu_t + c1) * (2 * cov + c2)) / ((mu_p**2 + mu_t**2 + c1) * (var_p + var_t + c2))
    return s.mean((1, 2, 3))


def rgb_to_y(x: torch.Tensor) -> torch.Tensor:
    """BT.601 studio-range luma in [16/255, 235/255] from RGB (B, 3, H, W) in [0, 1]."""
    w = torch.tensor([65.481, 128.553, 24.966], dtype=x.dtype, device=x.device) / 255.0
    return (x * w[None, :, None, None]).sum(1, keepdim=True) + 16.0 / 255.0
