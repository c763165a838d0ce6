"""The learned trust map: a small error head on the input and the restored image, with a conformal calibration.

The head sees, on the low-res grid, the network's input, the restored image folded back onto that grid (pixel
unshuffle), what the network changed against bicubic (folded the same way) and the input's noise level, and
predicts log sigma: the scale of each output pixel's absolute error (mean over channels). It runs inside the
same tiled pass as the generator (`HeadedNet`), so `--trust` costs one forward pass and the head.

Calibration (conformal risk control, Angelopoulos et al. 2022): on calibration images the head never saw,
lambda is the smallest factor such that (n * mean_i miss_i(lambda) + 1) / (n + 1) <= 1 - level, where miss_i is
the share of crop i's pixels whose true error exceeds lambda * sigma; the units are crops of CROP output px of
the calibration images (n in the hundreds: with n images, the +1 alone takes 1 / (n + 1) of the risk). For a new
crop exchangeable with those, the expected share of its pixels outside +-lambda * sigma is then at most
1 - level. Crops of one image are not independent, so the guarantee is approximate at that level; it holds for
images of the same kind, not for a new microscope or specimen (`mdeblur adapt` recalibrates on yours). The map written is the
predicted error's standard deviation in the sampling map's sense: lambda * sigma / 2, so that +-2 map covers
`level` of the pixels.

The suspect verdict: the head's second output is trained (binary cross-entropy) to mark output structure that
the input does not support: texture planted into restored training patches (train/error_head.py). A pixel is
doubtful where the output shows structure (local contrast above STRUCTURE_NOISE input noise SDs) and that
mark's log-odds exceed INVENTED_LOGIT, or where the output's contrast is more than the input can support
(trust.amplified: noise or a flat region turned into structure); an image with more than SUSPECT_SHARE doubtful pixels is suspect. (A rule on
the band against the local contrast was tried first: on clean held-out restorations the calibrated band
exceeds the contrast of smooth regions, so it could not separate them from planted texture.)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

HEAD_PREFIX = "error_head."  # the head's tensors in a weights file
LEVEL = 0.95
REACH = 12  # low-res px the head reads around a pixel (dilated 3x3 convolutions and bicubic), rounded up
STRUCTURE_NOISE = 3.0  # structure counts where the output's local contrast exceeds this many input noise SDs
SUSPECT_SHARE = 0.01  # an image is suspect when more than this share of its pixels is doubtful
INVENTED_LOGIT = 1.0  # the head's mark counts above these log-odds (p > 0.73); chosen on the 40 calibration images:
# at 0, 1 clean restoration of 40 (and synthetic FIRE-blurred gray blobs in a new-user trial) had > 1% doubtful
LOG_SIGMA0 = math.log(0.01)  # the head's output starts near an error scale of 0.01


class ErrorHead(nn.Module):
    """(input (N, 3, h, w), output (N, 3, sh, sw), noise SD) -> (N, 2, sh, sw): log sigma, and the logit that the
    output's structure at that pixel is not supported by the input (invented), computed on the low-res grid."""

    def __init__(self, width: int = 32, scale: int = 2) -> None:
        super().__init__()
        self.scale, self.width = scale, width
        c_in = 3 + 2 * 3 * scale * scale + scale * scale + 1
        layers: list[nn.Module] = []
        for i, dil in enumerate((1, 2, 4, 1)):
            layers += [nn.Conv2d(c_in if i == 0 else width, width, 3, padding=dil, dilation=dil), nn.ReLU()]
        layers.append(nn.Conv2d(width, 2 * scale * scale, 1))  # log sigma and the invented-structure logit
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor, out: torch.Tensor, noise: float | torch.Tensor) -> torch.Tensor:
        """`noise`: the input's noise SD, one for the batch or one per image (N,)."""
        s = self.scale
        up = F.interpolate(x, scale_factor=s, mode="bicubic", align_corners=False)
        if isinstance(noise, torch.Tensor):
            level = noise.clamp_min(1e-4).log10().view(-1, 1, 1, 1).to(x.dtype).expand_as(x[:, :1])
        else:
            level = torch.full_like(x[:, :1], math.log10(max(noise, 1e-4)))
        # features of about unit scale: centred intensities, the change x10, log10 noise around a typical 0.003
        g = out.mean(1, keepdim=True)
        gx = F.pad(g[..., :, 2:] - g[..., :, :-2], (1, 1, 0, 0), mode="replicate") / 2
        gy = F.pad(g[..., 2:, :] - g[..., :-2, :], (0, 0, 1, 1), mode="replicate") / 2
        grad = torch.log10((gx * gx + gy * gy).sqrt() + 1e-3) + 2  # the output's gradient magnitude, log10
        feats = torch.cat([x - 0.5, F.pixel_unshuffle(out - 0.5, s), 10 * F.pixel_unshuffle(out - up, s),
                           F.pixel_unshuffle(grad, s), level + 2.5], 1)
        y = self.body(feats)
        n = s * s
        return torch.cat([F.pixel_shuffle(y[:, :n] + LOG_SIGMA0, s), F.pixel_shuffle(y[:, n:], s)], 1)


class HeadedNet(nn.Module):
    """A generator and its error head as one network for the tile engine: its first output is the restored
    image with log sigma and the invented-structure logit as fourth and fifth channels. `noise` (the input's noise SD) is set per image before the pass,
    so that every tile sees the same value."""

    def __init__(self, net: nn.Module, head: ErrorHead) -> None:
        super().__init__()
        self.net, self.head = net, head
        self.scale, self.multiple = net.scale, getattr(net, "multiple", 8)
        base = getattr(net, "context", None) or 48
        self.context = -(-(base + REACH) // self.multiple) * self.multiple
        self.noise = 0.01

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out, aux = self.net(x)
        return torch.cat([out, self.head(x, out.float().clamp(0, 1), self.noise).to(out.dtype)], 1), aux


@dataclass
class HeadTrust:
    """The head and its calibration, as stored with the weights (provenance['error_head'])."""

    head: ErrorHead
    lam: float = 2.0  # conformal factor on sigma for the `level` band
    level: float = LEVEL
    loss: str = "laplace"
    fitted_on: str = "not fitted"
    calibrated_on: str = "not calibrated"
    calibration_images: int = 0
    kind = "learned error head"

    def to_dict(self) -> dict:
        return {"width": self.head.width, "scale": self.head.scale, "lambda": self.lam, "level": self.level,
                "loss": self.loss, "fitted_on": self.fitted_on, "calibrated_on": self.calibrated_on,
                "calibration_images": self.calibration_images,
                "guarantee": f"conformal risk control: expected share of pixels outside +-2 map <= {1 - self.level:g} "
                             "for images exchangeable with the calibration images"}

    @classmethod
    def from_state(cls, meta: dict, state: dict[str, torch.Tensor]) -> HeadTrust:
        head = ErrorHead(int(meta["width"]), int(meta["scale"]))
        head.load_state_dict({k[len(HEAD_PREFIX):]: v for k, v in state.items() if k.startswith(HEAD_PREFIX)})
        return cls(head.eval(), float(meta["lambda"]), float(meta["level"]), str(meta.get("loss", "")),
                   str(meta.get("fitted_on", "")), str(meta.get("calibrated_on", "")),
                   int(meta.get("calibration_images", 0)))

    def tensors(self) -> dict[str, torch.Tensor]:
        return {HEAD_PREFIX + k: v.detach().cpu().contiguous() for k, v in self.head.state_dict().items()}

    def to_map(self, log_sigma: np.ndarray) -> np.ndarray:
        """log sigma (normalised units) -> the trust map: lambda * sigma / 2 (+-2 map is the `level` band)."""
        return (np.exp(np.clip(log_sigma, -30, 5)) * (self.lam / 2)).astype(np.float32)


CROP = 64  # output px: the calibration unit (each held-out image is cut into crops of this side)


def crops(ratio: np.ndarray, side: int = CROP) -> list[np.ndarray]:
    """A 2-D map cut into side x side crops (the last row and column of crops may be smaller, at least half)."""
    h, w = ratio.shape
    ys = [y for y in range(0, h, side) if h - y >= side // 2] or [0]
    xs = [x for x in range(0, w, side) if w - x >= side // 2] or [0]
    return [ratio[y : y + side, x : x + side].ravel() for y in ys for x in xs]


def crc_lambda(ratios: list[np.ndarray], level: float = LEVEL) -> float:
    """Conformal risk control for miscoverage: the smallest lambda with (n * mean_i miss_i + 1) / (n + 1) <=
    1 - level, where miss_i(lambda) = mean(ratios_i > lambda) over image i's pixels (ratio = |error| / sigma)."""
    n = len(ratios)
    if n == 0:
        raise ValueError("conformal calibration needs at least one image")
    alpha = 1 - level
    if (n * 0 + 1) / (n + 1) > alpha:  # even a band covering everything cannot certify this level with n images
        return float(max(float(np.max(r)) for r in ratios)) * 1.0001
    sorted_r = [np.sort(r.ravel()) for r in ratios]

    def risk(lam: float) -> float:
        miss = [1.0 - np.searchsorted(r, lam, side="right") / r.size for r in sorted_r]
        return (n * float(np.mean(miss)) + 1) / (n + 1)

    lo, hi = 0.0, max(float(r[-1]) for r in sorted_r) * 1.0001 + 1e-12
    for _ in range(60):  # risk is non-increasing in lambda
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if risk(mid) > alpha else (lo, mid)
    return hi


def verdict(sd: np.ndarray, logit: np.ndarray, img: np.ndarray, out: np.ndarray, sigma: float,
            units: float = 1.0) -> dict:
    """Per plane: the median of the map (file units), the doubtful share and the verdict (see the module)."""
    from .trust import amplified, output_contrast

    contrast = output_contrast(out)
    doubtful = ((contrast > STRUCTURE_NOISE * sigma) & (logit > INVENTED_LOGIT)) | amplified(img, out, sigma, contrast)
    share = float(doubtful.mean())
    return {"median_error": float(np.median(sd)) * units, "doubtful_share": share, "suspect": share > SUSPECT_SHARE,
            "map": "learned error head"}


def run_head(net: nn.Module, trust: HeadTrust, img: np.ndarray, **kw) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One normalised (H, W, 3) input through the generator and its head in one tiled pass: (restored (sH, sW, 3),
    log sigma (sH, sW), invented-structure logit (sH, sW)). The head's noise feature is the input's wavelet noise
    estimate alone (no quantisation step), as in training; `kw` goes to the tile engine."""
    from .tiles import restore_float
    from .trust import noise_sigma

    headed = HeadedNet(net, trust.head)
    headed.noise = noise_sigma(img)
    y = restore_float(headed, img, clip=False, out_channels=5, **kw)
    return y[..., :3], y[..., 3], y[..., 4]
