"""The M-Deblurgan generator: deblurring module, optimal approximation module, SR module."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import ResBlock, UpConv, conv3x3, pad_to_multiple


@dataclass
class GeneratorConfig:
    """Widths and depths of the M-Deblurgan generator."""

    channels: int = 3  # image channels in and out
    width: int = 32  # features at full resolution in the deblurring module
    max_width: int = 128  # cap on features at the coarser levels
    fusion_width: int = 32  # features after multi-scale fusion
    sr_width: int = 32  # features in the SR module
    oa_width: int = 16  # features in the optimal approximation module
    scale: int = 2  # super-resolution factor, a power of two
    use_oa: bool = True  # False: the ablation that feeds the deblurred image straight to SR

    def to_dict(self) -> dict:
        return asdict(self)


PRESETS: dict[str, GeneratorConfig] = {
    "tiny": GeneratorConfig(width=8, max_width=16, fusion_width=8, sr_width=8, oa_width=4),  # tests and smoke runs
    "small": GeneratorConfig(),
    "paper": GeneratorConfig(width=64, max_width=256, fusion_width=64, sr_width=64, oa_width=32),
}

LEVELS = 3  # downsampling steps in the encoder
MULTIPLE = 2**LEVELS


class DeblurModule(nn.Module):
    """Encoder-decoder with multi-scale fusion; returns (encoder-decoder image, deblurred image)."""

    def __init__(self, cfg: GeneratorConfig) -> None:
        super().__init__()
        widths = [min(cfg.width * 2**i, cfg.max_width) for i in range(LEVELS + 1)]
        self.head = nn.Conv2d(cfg.channels, widths[0], 5, padding=2)
        self.enc = nn.ModuleList(ResBlock(w) for w in widths)
        self.down = nn.ModuleList(conv3x3(widths[i], widths[i + 1], stride=2) for i in range(LEVELS))
        self.up = nn.ModuleList(UpConv(widths[i + 1], widths[i]) for i in reversed(range(LEVELS)))
        self.skip = nn.ModuleList(conv3x3(widths[i], widths[i]) for i in reversed(range(LEVELS)))
        self.dec = nn.ModuleList(ResBlock(widths[i]) for i in reversed(range(LEVELS)))
        # The encoder-decoder output as an image is a candidate for the optimal approximation module only.
        self.ed_tail = conv3x3(widths[0], cfg.channels) if cfg.use_oa else None
        # Fusion of the bottleneck and the three decoder outputs, all brought to 1/4 size.
        self.fuse = nn.Conv2d(sum(widths), cfg.fusion_width, 1)
        self.fuse_up = nn.Sequential(
            UpConv(cfg.fusion_width, cfg.fusion_width), UpConv(cfg.fusion_width, cfg.fusion_width)
        )
        self.tail = conv3x3(cfg.fusion_width, cfg.channels)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor]:
        h, w = x.shape[-2:]  # (B, C, H, W), H and W multiples of 8
        f = self.enc[0](F.relu(self.head(x), inplace=True))
        skips = [f]
        for down, enc in zip(self.down, self.enc[1:], strict=True):
            f = enc(F.relu(down(f), inplace=True))
            skips.append(f)
        scales = [f]  # bottleneck, (B, C3, H/8, W/8)
        for up, skip, dec, s in zip(self.up, self.skip, self.dec, reversed(skips[:-1]), strict=True):
            f = dec(up(f) + skip(s))
            scales.append(f)
        ed_image = x + self.ed_tail(f) if self.ed_tail is not None else None
        q = (h // 4, w // 4)
        fused = torch.cat([F.interpolate(s, size=q, mode="bilinear", align_corners=False) for s in scales], 1)
        deblurred = x + self.tail(self.fuse_up(F.relu(self.fuse(fused), inplace=True)))
        return ed_image, deblurred


class OptimalApproximation(nn.Module):
    """Per-pixel softmax choice among the input, the encoder-decoder image and the deblurred image."""

    candidates = 3

    def __init__(self, cfg: GeneratorConfig) -> None:
        super().__init__()
        c = cfg.channels * self.candidates
        self.net = nn.Sequential(
            conv3x3(c, cfg.oa_width), nn.ReLU(inplace=True), conv3x3(cfg.oa_width, cfg.oa_width), nn.ReLU(inplace=True),
            conv3x3(cfg.oa_width, self.candidates),
        )

    def forward(self, *images: torch.Tensor) -> torch.Tensor:
        stack = torch.stack(images, 1)  # (B, 3, C, H, W)
        weights = torch.softmax(self.net(torch.cat(images, 1)), 1)  # (B, 3, H, W)
        return (weights.unsqueeze(2) * stack).sum(1)


class SRModule(nn.Module):
    """Three 3x3 convs, one trainable sub-pixel x2 step per factor of two, tail conv, global skip."""

    def __init__(self, channels: int, width: int, scale: int) -> None:
        super().__init__()
        if scale not in (2, 4):
            raise ValueError(f"scale must be 2 or 4, got {scale}")
        g = width
        self.scale = scale
        self.body = nn.Sequential(
            conv3x3(channels, g), nn.ReLU(inplace=True), conv3x3(g, g), nn.ReLU(inplace=True), conv3x3(g, g), nn.ReLU(inplace=True)
        )
        steps = []
        for _ in range(scale.bit_length() - 1):
            steps += [conv3x3(g, 4 * g), nn.PixelShuffle(2), nn.ReLU(inplace=True)]
        self.upsample = nn.Sequential(*steps)
        self.tail = conv3x3(g, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        base = F.interpolate(x, scale_factor=self.scale, mode="bicubic", align_corners=False)
        return base + self.tail(self.upsample(self.body(x)))


class MDeblurGAN(nn.Module):
    """M-Deblurgan generator; forward returns (SR image, deblurred low-res image)."""

    # Low-res px of context a tile needs on each side so that tiled equals whole: with 32 the shipped weights
    # differ by 1.4e-4 at most (48: 1.3e-6; 24: 1.2e-3), measured by benchmarks/bench_tiling.py --contexts.
    context = 32
    multiple = MULTIPLE  # input sides the network takes without padding itself (exports need them)

    def __init__(self, cfg: GeneratorConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.scale = cfg.scale
        self.deblur = DeblurModule(cfg)
        self.oa = OptimalApproximation(cfg) if cfg.use_oa else None
        self.sr = SRModule(cfg.channels, cfg.sr_width, cfg.scale)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x, h, w = pad_to_multiple(x, MULTIPLE)
        ed_image, deblurred = self.deblur(x)
        chosen = self.oa(x, ed_image, deblurred) if self.oa is not None else deblurred
        sr = self.sr(chosen)
        s = self.scale
        return sr[..., : h * s, : w * s], deblurred[..., :h, :w]
