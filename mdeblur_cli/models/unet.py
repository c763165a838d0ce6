"""U-Net + SR baseline: a 4-level U-Net deblurring network in series with the SR module."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import conv3x3, pad_to_multiple
from .generator import SRModule


@dataclass
class UNetSRConfig:
    """Widths of the U-Net + SR baseline."""

    channels: int = 3
    width: int = 16  # features at the first level; doubled at each of the 4 levels below
    sr_width: int = 32
    scale: int = 2

    def to_dict(self) -> dict:
        return asdict(self)


UNET_PRESETS: dict[str, UNetSRConfig] = {
    "tiny": UNetSRConfig(width=4, sr_width=8),  # tests and smoke runs
    "small": UNetSRConfig(),
    "paper": UNetSRConfig(width=48, sr_width=64),
}

DEPTH = 4  # pooling steps


def double_conv(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(conv3x3(c_in, c_out), nn.ReLU(inplace=True), conv3x3(c_out, c_out), nn.ReLU(inplace=True))


class UNetSR(nn.Module):
    """Standard U-Net (residual output) followed by the SR module, with no optimal approximation."""

    context = 48  # low-res px of tile context: the shipped weights differ by 3.8e-4 tiled vs whole (32: 1.3e-3)
    multiple = 2**DEPTH  # input sides the network takes without padding itself (exports need them)

    def __init__(self, cfg: UNetSRConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.scale = cfg.scale
        widths = [cfg.width * 2**i for i in range(DEPTH + 1)]
        self.enc = nn.ModuleList(
            double_conv(cfg.channels if i == 0 else widths[i - 1], widths[i]) for i in range(DEPTH + 1)
        )
        self.up = nn.ModuleList(nn.ConvTranspose2d(widths[i + 1], widths[i], 2, stride=2) for i in reversed(range(DEPTH)))
        self.dec = nn.ModuleList(double_conv(2 * widths[i], widths[i]) for i in reversed(range(DEPTH)))
        self.tail = nn.Conv2d(widths[0], cfg.channels, 1)
        self.sr = SRModule(cfg.channels, cfg.sr_width, cfg.scale)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x, h, w = pad_to_multiple(x, 2**DEPTH)
        f = x
        skips = []
        for i, enc in enumerate(self.enc):
            f = enc(f if i == 0 else F.max_pool2d(f, 2))
            skips.append(f)
        for up, dec, s in zip(self.up, self.dec, reversed(skips[:-1]), strict=True):
            f = dec(torch.cat([up(f), s], 1))
        deblurred = x + self.tail(f)
        sr = self.sr(deblurred)
        s = self.scale
        return sr[..., : h * s, : w * s], deblurred[..., :h, :w]
