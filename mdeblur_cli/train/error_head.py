"""Fitting the learned error head (restore/error_head.py) of a frozen generator, and its conformal calibration.

Head training: patches drawn as the generator's own training draws them (the degradation mix of its
provenance, half of them through the simulator's range of dry objectives), restored by the frozen generator;
the target is each output pixel's absolute error (mean over channels). A share of the patches carries planted
invented texture (band-limited noise of random scale and strength under a random soft mask, added to the
output and so to its error): the head learns that structure the input does not support is error. The planted
texture is not any of the benchmark's planted models.

Calibration: whole images the head never saw: the validation strips of the training images (right-most 20%,
which the generator never trained on either), each degraded twice with seeds of their own, and fresh
procedural specimens through drawn optics; each restored through the tile engine as `restore --trust` does.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..data import Pair
from ..data.degrade import DegradationSpec, random_degradation
from ..data.draws import chance, uniform
from ..restore.error_head import LEVEL, ErrorHead, HeadTrust, crc_lambda, crops, run_head
from ..restore.trust import noise_sigma

PATCH = 64  # LR px of a head training patch
BORDER = 8  # LR px at each patch edge left out of the loss (the generator saw no context there)
PLANT_PROB = 0.25
PLANT_MARK = 0.03  # planted texture at least this strong (SD, [0, 1] units) is marked as invented
DETECT_WEIGHT = 0.2  # the invented-structure term in the head's loss
CAL_SEED = 2_000_003  # calibration degradations use seeds from here
CAL_MICRO_SEED = 70_000  # fresh procedural specimens for calibration


@dataclass
class CalImage:
    name: str
    lr: np.ndarray  # (h, w, 3) normalised network input
    hr: np.ndarray  # (sh, sw, 3) truth in the same units


def plant(out: torch.Tensor, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, 3, H, W) outputs with invented texture in a soft random region of each (see the module), and where it
    is (N, 1, H, W): the region's core, for texture of at least PLANT_MARK in strength."""
    n, _, h, w = out.shape
    res, marks = [], []
    for i in range(n):
        amp = math.exp(uniform(g, math.log(0.02), math.log(0.25)))
        sig = uniform(g, 0.7, 3.0)
        tex = _blur(torch.randn((1, 1, h, w), generator=g), sig)
        tex = tex / tex.std().clamp_min(1e-6)
        mask = _blur(torch.randn((1, 1, h, w), generator=g), h / 8)
        mask = torch.sigmoid((mask - mask.mean()) / mask.std().clamp_min(1e-6) * 4)
        res.append((out[i : i + 1] + amp * tex * mask).clamp(0, 1))
        marks.append((mask > 0.5).float() * float(amp >= PLANT_MARK))
    return torch.cat(res), torch.cat(marks)


def _blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    r = max(1, int(math.ceil(3 * sigma)))
    t = torch.arange(-r, r + 1, dtype=torch.float32)
    k = torch.exp(-(t**2) / (2 * sigma**2))
    k = (k / k.sum()).to(x.dtype)
    x = F.pad(x, (r, r, r, r), mode="reflect" if r < min(x.shape[-2:]) else "replicate")
    x = F.conv2d(x, k.view(1, 1, 1, -1))
    return F.conv2d(x, k.view(1, 1, -1, 1))


def head_loss(log_sigma: torch.Tensor, err: torch.Tensor, loss: str) -> torch.Tensor:
    """laplace: the negative log-likelihood of |error| under an exponential of scale sigma; logabs: squared
    error of log sigma against the log of the locally smoothed |error|."""
    if loss == "laplace":
        return (log_sigma + err / log_sigma.exp()).mean()
    if loss == "logabs":
        target = torch.log(_blur(err, 1.0) + 1e-3)
        return ((log_sigma - target) ** 2).mean()
    if loss == "logrms":  # the local RMS error (Gaussian window of 3 px): what the tile ranking measures
        target = 0.5 * torch.log(_blur(err * err, 3.0) + 1e-6)
        return ((log_sigma - target) ** 2).mean()
    raise ValueError(f"unknown head loss {loss!r}")


def patch_pool(net, sampler, count: int, batch: int = 8) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, list]:
    """(inputs, outputs, truths, noise SDs) of `count` sampler patches through the frozen generator, drawn once:
    the generator's passes and the optics simulation cost far more than the head's steps."""
    xs, outs, hrs = [], [], []
    while sum(len(x) for x in xs) < count:
        lr, _, hr = sampler.batch(batch)
        with torch.no_grad():
            outs.append(net(lr)[0].clamp(0, 1))
        xs.append(lr)
        hrs.append(hr)
    x, out, hr = torch.cat(xs)[:count], torch.cat(outs)[:count], torch.cat(hrs)[:count]
    return x, out, hr, [noise_sigma(v.permute(1, 2, 0).numpy()) for v in x]


def fit_head(pool, seconds: float, loss: str = "laplace", width: int = 32, batch: int = 8, seed: int = 0,
             plant_prob: float = PLANT_PROB, progress: Callable[[int, float], None] | None = None) -> ErrorHead:
    """Train an ErrorHead for `seconds` on a patch_pool (Adam, cosine decay by time); each step draws a batch,
    plants invented texture in a share of its outputs (which becomes error) and flips it at random."""
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    x_all, out_all, hr_all, noise_all = pool
    scale = out_all.shape[-1] // x_all.shape[-1]
    head = ErrorHead(width, scale)
    opt = torch.optim.Adam(head.parameters(), lr=2e-3)
    start, it = time.monotonic(), 0
    b = min(BORDER, x_all.shape[-1] // 4) * scale
    while (elapsed := time.monotonic() - start) < seconds:
        for group in opt.param_groups:
            group["lr"] = 2e-3 * 0.5 * (1 + math.cos(math.pi * min(elapsed / seconds, 1)))
        idx = torch.randint(len(x_all), (batch,), generator=g)
        x, out, hr = x_all[idx], out_all[idx].clone(), hr_all[idx]
        keep = torch.rand(batch, generator=g) < plant_prob
        mark = torch.zeros_like(out[:, :1])
        if keep.any():
            out[keep], mark[keep] = plant(out[keep], g)
        if chance(g, 0.5):
            x, out, hr, mark = x.flip(-1), out.flip(-1), hr.flip(-1), mark.flip(-1)
        err = (out - hr).abs().mean(1, keepdim=True)
        y = head(x, out, torch.tensor([noise_all[int(j)] for j in idx]))[..., b:-b, b:-b]
        value = head_loss(y[:, :1], err[..., b:-b, b:-b], loss) + DETECT_WEIGHT * F.binary_cross_entropy_with_logits(
            y[:, 1:], mark[..., b:-b, b:-b])
        opt.zero_grad()
        value.backward()
        opt.step()
        it += 1
        if progress:
            progress(it, float(value.detach()))
    return head.eval()


def calibration_images(val_sources: list[Pair], spec: DegradationSpec, copies: int = 2,
                       micro: int = 8, micro_mix: int = 0) -> list[CalImage]:
    """Held-out images for calibration (see the module): degraded validation strips, fresh specimens through
    drawn optics (`micro`), and fresh specimens through the weights' own degradation mix (`micro_mix`)."""
    from dataclasses import replace

    from ..data.simulate import simulate_pair
    from ..data.train import procedural_specimen, range_optics

    out = []
    s = spec.scale
    for i, src in enumerate(val_sources):
        h, w = src.hr.shape[-2] // (8 * s) * 8 * s, src.hr.shape[-1] // (8 * s) * 8 * s
        if min(h, w) < 32 * s:
            continue
        for c in range(copies):
            g = torch.Generator().manual_seed(CAL_SEED + copies * i + c)
            lr, _, hr, _ = random_degradation(src.hr[:, :h, :w], spec, g)
            out.append(CalImage(f"{src.name}#{c}", _hwc(lr), _hwc(hr)))
    for i in range(micro if s == 2 else 0):
        seed = CAL_MICRO_SEED + i
        g = torch.Generator().manual_seed(seed)
        opt, dz = range_optics(g)
        lr, hr, _ = simulate_pair(procedural_specimen(i, seed, 192), replace(opt, defocus_um=(dz, dz), peak=1000.0), g)
        out.append(CalImage(f"specimen_{seed}", _hwc(lr), _hwc(hr)))
    for i in range(micro_mix):
        seed = CAL_MICRO_SEED + micro + i
        lr, _, hr, _ = random_degradation(procedural_specimen(i, seed, 192 * s), spec,
                                          torch.Generator().manual_seed(seed))
        out.append(CalImage(f"specimen_{seed}_mix", _hwc(lr), _hwc(hr)))
    return out


def _hwc(t: torch.Tensor) -> np.ndarray:
    return np.ascontiguousarray(t.numpy().transpose(1, 2, 0), np.float32)


def calibrate(net, head: ErrorHead, images: list[CalImage], level: float = LEVEL, loss: str = "laplace",
              fitted_on: str = "", calibrated_on: str = "") -> tuple[HeadTrust, list[dict]]:
    """The conformal factor of `head` on `images` (restored as the tool restores), and per-image records
    (error, log sigma) for measuring."""
    ratios, records = [], []
    probe = HeadTrust(head)
    for im in images:
        out, ls, _ = run_head(net, probe, im.lr)
        noise = noise_sigma(im.lr)
        h, w = min(out.shape[0], im.hr.shape[0]), min(out.shape[1], im.hr.shape[1])
        err = np.abs(np.clip(out[:h, :w], 0, 1) - im.hr[:h, :w]).mean(2)
        ratios += crops(err / np.exp(ls[:h, :w]))
        records.append({"name": im.name, "err": err, "log_sigma": ls[:h, :w], "out": out[:h, :w], "noise": noise})
    lam = crc_lambda(ratios, level)
    return HeadTrust(head, lam, level, loss, fitted_on, calibrated_on, len(ratios)), records


def fit_for_weights(path, sampler, val_pairs: list[Pair], seconds: float, patches: int = 128,
                    fitted_on: str = "") -> HeadTrust:
    """Fit, calibrate and store an error head in the weights file `path`: the end of `mdeblur train` and of
    `mdeblur adapt`. Patches come from the run's own sampler, the calibration from its held-out pairs."""
    from ..weights import load_model, store_error_head

    model = load_model(path)
    for p in model.net.parameters():
        p.requires_grad_(False)
    pool = patch_pool(model.net, sampler, patches)
    head = fit_head(pool, seconds)
    images = [CalImage(p.name, _hwc(p.lr), _hwc(p.hr)) for p in val_pairs]
    trust, _ = calibrate(model.net, head, images, fitted_on=fitted_on or f"{patches} patches of the run's own "
                         f"training draws, {seconds:.0f} s", calibrated_on=f"the run's {len(images)} held-out pairs")
    store_error_head(path, trust)
    return trust
