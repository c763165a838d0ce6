"""One evaluation path: the PSNR/SSIM of a method's outputs against ground truth, used by training's validation,
`mdeblur benchmark` and benchmarks/held_out.py.

PSNR and SSIM on RGB (or Y) with data range 1 and a border of `border` pixels cropped; SSIM as Wang et al.
(metrics.py). Outputs are clamped to [0, 1], widened to the truth's own range where percentile-normalised
targets pass it, before scoring.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch

from .metrics import psnr, rgb_to_y, ssim


def score(sr: torch.Tensor, hr: torch.Tensor, border: int, y_channel: bool = False) -> tuple[float, float]:
    """PSNR and SSIM of one (C, H, W) output against its (C, H, W) truth."""
    sr = sr.clamp(min(0.0, hr.min().item()), max(1.0, hr.max().item()))[None].float()
    hr = hr[None].float()
    if y_channel:
        sr, hr = rgb_to_y(sr), rgb_to_y(hr)
    return psnr(sr, hr, border).item(), ssim(sr, hr, border).item()


@dataclass
class Scored:
    """One image's scores, the output and the seconds the method took for it."""

    psnr: float
    ssim: float
    seconds: float
    output: torch.Tensor
    psnr_y: float | None = None
    ssim_y: float | None = None


def evaluate(
    predict: Callable[[object], torch.Tensor], pairs: Iterable, border: int, truth: Callable[[object], torch.Tensor],
    y_channel: bool = False, on_step: Callable[[], None] | None = None,
) -> list[Scored]:
    """Run `predict(pair) -> (C, H, W)` on every pair and score it against `truth(pair)`."""
    out = []
    with torch.no_grad():
        for pair in pairs:
            t = time.perf_counter()
            sr = predict(pair)
            seconds = time.perf_counter() - t
            hr = truth(pair)
            p, s = score(sr, hr, border)
            row = Scored(p, s, seconds, sr)
            if y_channel:
                row.psnr_y, row.ssim_y = score(sr, hr, border, y_channel=True)
            out.append(row)
            if on_step is not None:
                on_step()
    return out


@torch.no_grad()
def validate(model: torch.nn.Module, pairs: list, device: torch.device, border: int) -> tuple[float, float]:
    """Mean PSNR and SSIM of a network over pairs (training's validation, benchmarks/held_out.py)."""
    was_training = model.training
    model.eval()
    rows = evaluate(lambda p: model(p.lr[None].to(device))[0][0].float().cpu(), pairs, border, truth=lambda p: p.hr)
    model.train(was_training)
    return sum(r.psnr for r in rows) / len(rows), sum(r.ssim for r in rows) / len(rows)
