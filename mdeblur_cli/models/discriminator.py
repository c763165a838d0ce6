"""VGG-like discriminator with global average pooling in place of the first FC layer."""

from __future__ import annotations

import torch
from torch import nn

from .blocks import conv3x3


class Discriminator(nn.Module):
    """Strided convs doubling the features, LeakyReLU 0.2, global average pooling, one logit."""

    def __init__(self, channels: int = 3, width: int = 32, stages: int = 4) -> None:
        super().__init__()
        layers: list[nn.Module] = [conv3x3(channels, width), nn.LeakyReLU(0.2)]
        c = width
        for i in range(stages):
            c_out = width * 2 ** (i + 1) if i else c
            layers += [conv3x3(c, c_out, stride=2), nn.LeakyReLU(0.2), conv3x3(c_out, c_out), nn.LeakyReLU(0.2)]
            c = c_out
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.Linear(c, 2 * c), nn.LeakyReLU(0.2), nn.Linear(2 * c, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.features(x).mean((2, 3))  # (B, C) global average pooling
        return self.head(f).squeeze(1)  # (B,) logits
