"""x8 geometric self-ensemble (Lim et al. 2017, EDSR+): average the outputs over flips and 90-degree turns."""

from __future__ import annotations

import torch
from torch import nn


def dihedral(x: torch.Tensor, k: int, flip: bool) -> torch.Tensor:
    """Turn the last two axes by k quarter turns, then mirror them left-right if `flip`."""
    x = torch.rot90(x, k, (-2, -1))
    return x.flip(-1) if flip else x


def undo_dihedral(x: torch.Tensor, k: int, flip: bool) -> torch.Tensor:
    return torch.rot90(x.flip(-1) if flip else x, -k, (-2, -1))


class SelfEnsemble(nn.Module):
    """Wraps a generator: the same (SR, deblurred) contract, averaged over the 8 symmetries of the square.

    A model trained with flips and quarter turns as augmentation is not exactly equivariant to them; the mean of
    its 8 answers has lower variance than any one. Costs 8 forward passes.
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.scale = model.scale
        self.context = getattr(model, "context", None)
        self.multiple = getattr(model, "multiple", 8)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        sr_sum = deblurred_sum = None
        for k in range(4):
            for flip in (False, True):
                sr, deblurred = self.model(dihedral(x, k, flip))
                sr, deblurred = undo_dihedral(sr, k, flip), undo_dihedral(deblurred, k, flip)
                sr_sum = sr if sr_sum is None else sr_sum + sr
                deblurred_sum = deblurred if deblurred_sum is None else deblurred_sum + deblurred
        return sr_sum / 8, deblurred_sum / 8
