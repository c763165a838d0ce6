"""Benchmark: PSNR/SSIM of bicubic, RL-deconvolution + SR and the learned models on named datasets."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from .datasets import BenchPair
from .degrade import upscale_bicubic
from .metrics import psnr, rgb_to_y, ssim
from .models import count_params
from .restore import restore_float
from .rl import richardson_lucy


@dataclass
class Method:
    """A restoration method: LR (C, H, W) -> SR (C, H*s, W*s), with its parameter count if learned."""

    name: str
    run: Callable[[BenchPair], torch.Tensor]
    params: int | None = None


def bicubic_method(scale: int) -> Method:
    return Method("bicubic", lambda p: upscale_bicubic(p.lr, scale))


def rl_method(scale: int, iterations: int = 30, psf: torch.Tensor | None = None) -> Method:
    """Richardson-Lucy with the pair's true PSF (or a given one), then bicubic."""

    def run(p: BenchPair) -> torch.Tensor:
        k = psf if psf is not None else p.psf
        if k is None:
            raise ValueError(f"{p.name}: no PSF known; pass one")
        return upscale_bicubic(richardson_lucy(p.lr, k, iterations).clamp(0, 1), scale)

    return Method("rl-sr", run)


def model_method(name: str, model: nn.Module, device: torch.device, tile: int = 512) -> Method:
    def run(p: BenchPair) -> torch.Tensor:
        out = restore_float(model, p.lr.permute(1, 2, 0).numpy(), tile=tile, device=device)
        return torch.from_numpy(out).permute(2, 0, 1)

    return Method(name, run, count_params(model))


def score(sr: torch.Tensor, hr: torch.Tensor, border: int, y_channel: bool = False) -> tuple[float, float]:
    """PSNR and SSIM of one image (RGB or Y), data range 1, `border` px cropped."""
    sr, hr = sr.clamp(0, 1)[None].float(), hr[None].float()
    if y_channel:
        sr, hr = rgb_to_y(sr), rgb_to_y(hr)
    return psnr(sr, hr, border).item(), ssim(sr, hr, border).item()


def run_benchmark(
    pairs: list[BenchPair], methods: list[Method], scale: int, y_channel: bool = False,
    on_step: Callable[[], None] | None = None,
) -> list[dict]:
    """Mean and std of PSNR/SSIM for every method, with seconds per output megapixel."""
    results = []
    for m in methods:
        ps, ss, ys, seconds, mpix = [], [], [], 0.0, 0.0
        per_image = {}
        for p in pairs:
            t = time.perf_counter()
            with torch.no_grad():
                sr = m.run(p)
            seconds += time.perf_counter() - t
            mpix += sr.shape[-1] * sr.shape[-2] / 1e6
            a, b = score(sr, p.hr, scale)
            ps.append(a)
            ss.append(b)
            per_image[p.name] = {"psnr": a, "ssim": b}
            if y_channel:
                ys.append(score(sr, p.hr, scale, y_channel=True))
            if on_step is not None:
                on_step()
        row = {
            "method": m.name, "psnr": float(np.mean(ps)), "psnr_std": float(np.std(ps)),
            "ssim": float(np.mean(ss)), "ssim_std": float(np.std(ss)), "params": m.params,
            "seconds_per_mpix": seconds / mpix if mpix else math.nan, "n_images": len(pairs), "per_image": per_image,
        }
        if y_channel:
            row["psnr_y"] = float(np.mean([y[0] for y in ys]))
            row["ssim_y"] = float(np.mean([y[1] for y in ys]))
        results.append(row)
    return results
