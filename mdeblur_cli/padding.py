"""Edge padding, one rule for the whole package: reflect the image across its border (no darkened or
brightened edges), or replicate the border where the image is too small to reflect (torch's reflect needs
every pad below the side)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def edge_pad(x: torch.Tensor, left: int, right: int, top: int, bottom: int) -> torch.Tensor:
    """Pad the last two axes of a (C, H, W) or (B, C, H, W) tensor."""
    if not (left or right or top or bottom):
        return x
    mode = "reflect" if min(x.shape[-2:]) > max(left, right, top, bottom) else "replicate"
    return F.pad(x, (left, right, top, bottom), mode=mode)
