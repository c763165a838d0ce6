"""The generator's objective: MSE, SSIM, VGG19 perceptual and adversarial terms, and their balance."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..evaluate.metrics import ssim
from .config import DEFAULT_LAYER, TrainConfig
from .vgg import IMAGENET_MEAN, IMAGENET_STD

LOG_MSE_EPS = 1e-6  # 'log-mse' floor: patches beyond 60 dB stop pulling
BALANCE_SHARE = 0.10  # share of the MSE and of the SSIM term in the combined loss (paper: 5-15%)


class PerceptualLoss(nn.Module):
    """MSE between VGG19 feature maps phi_{i,j} of two images (ImageNet-normalised; gray repeated to RGB)."""

    def __init__(self, features: nn.Sequential, layer: int = DEFAULT_LAYER) -> None:
        super().__init__()
        self.features = features[: layer + 1].eval()
        for p in self.features.parameters():
            p.requires_grad_(False)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))

    def _phi(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] == 1:
            x = x.repeat(1, 3, 1, 1)
        return self.features((x - self.mean) / self.std)

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            t = self._phi(target)
        return F.mse_loss(self._phi(pred), t)


class Losses:
    """The generator objective L = MSE_deblur + MSE_SR + alpha L_percep + beta L_SSIM + gamma L_adv."""

    def __init__(self, cfg: TrainConfig, perceptual: PerceptualLoss | None, disc: torch.nn.Module | None) -> None:
        self.cfg = cfg
        self.perceptual = perceptual
        self.disc = disc
        self.alpha = cfg.perceptual_weight if perceptual is not None else 0.0
        self.beta = cfg.ssim_weight
        self.gamma = cfg.adversarial_weight if disc is not None else 0.0

    def pixel(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """The MSE term; 'log-mse' weights each patch by 1/(its MSE + eps), so smooth patches count as in mean PSNR."""
        if self.cfg.pixel_loss == "mse":
            return F.mse_loss(a, b)
        return torch.log1p((a - b).pow(2).flatten(1).mean(1) / LOG_MSE_EPS).mean()

    def raw_terms(self, sr, deblurred, hr, lr_clear, adversarial: bool) -> dict[str, torch.Tensor]:
        terms = {
            "mse": self.pixel(sr, hr) + self.cfg.deblur_weight * self.pixel(deblurred, lr_clear),
            "ssim": 1 - ssim(sr.float(), hr.float()).mean(),
        }
        if self.perceptual is not None:
            terms["percep"] = self.perceptual(sr, hr)
        if self.disc is not None and adversarial:
            logits = self.disc(sr)
            terms["adv"] = F.binary_cross_entropy_with_logits(logits, torch.ones_like(logits))
        return terms

    def weighted(self, terms: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        w = {"mse": 1.0, "ssim": self.beta, "percep": self.alpha, "adv": self.gamma}
        return {k: w[k] * v for k, v in terms.items()}

    def balance(self, means: dict[str, float]) -> None:
        """--loss-balance auto: MSE and SSIM terms each about 10% of the combined loss (the paper's 5-15%)."""
        m, s = means["mse"], max(means["ssim"], 1e-12)
        total = m / BALANCE_SHARE  # MSE is 10% of the total ...
        self.beta = m / s  # ... and so is beta * SSIM
        if self.perceptual is not None:  # the perceptual term takes the rest, after the adversarial term
            rest = total - m - self.beta * s - self.gamma * means.get("adv", 0.0)
            self.alpha = max(rest, 0.0) / max(means["percep"], 1e-12)

    def describe(self) -> str:
        name = "mse" if self.cfg.pixel_loss == "mse" else f"log1p(mse/{LOG_MSE_EPS:g})"
        parts = [f"{name}_sr", f"{self.cfg.deblur_weight:g}*{name}_deblur", f"{self.beta:.4g}*(1-ssim)"]
        if self.perceptual is not None:
            parts.append(f"{self.alpha:.4g}*perceptual(VGG19 features.{self.cfg.vgg_layer})")
        elif self.cfg.perceptual_weight > 0 or self.cfg.loss_balance == "auto":
            parts.append("perceptual ABSENT (no VGG19 weights)")
        if self.disc is not None:
            parts.append(f"{self.gamma:.4g}*adversarial(from iteration {self.cfg.adv_start})")
        return " + ".join(parts)
