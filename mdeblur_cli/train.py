"""The training loop: degradation on the fly, two-part MSE + SSIM, Adam, LR decay, best-by-validation."""

from __future__ import annotations

import csv
import json
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from .datasets import PairedImage, PatchSampler, load_sources, split_columns
from .degrade import DegradationSpec, random_degradation
from .device import resolve_device
from .errors import MdeblurError
from .metrics import psnr, ssim
from .models import build_model, count_params, preset_config
from .weights import save_weights

VAL_SEED = 1_000_003  # validation degradations use seeds from here, fixed across runs


@dataclass
class TrainConfig:
    """Everything a training run depends on."""

    data: str | None = None  # None: scikit-image's bundled images (reserved ones excluded)
    model: str = "mdeblurgan"  # mdeblurgan | unet-sr
    preset: str = "small"
    use_oa: bool = True
    scale: int = 2
    iters: int = 6000
    batch_size: int = 8
    patch: int = 48  # low-res patch side
    learning_rate: float = 2e-4
    final_learning_rate: float = 1e-7
    decay_start: float = 0.75  # share of iterations at constant learning rate, then linear decay
    deblur_weight: float = 1.0  # MSE(deblurred, clear LR)
    ssim_weight: float = 0.01  # (1 - SSIM(SR, HR))
    val_every: int = 250
    seed: int = 0
    device: str = "auto"
    threads: int | None = None
    out: str = "runs/train"
    degradation: DegradationSpec = field(default_factory=DegradationSpec)


def learning_rate_at(cfg: TrainConfig, it: int) -> float:
    """Constant for the first `decay_start` share, then linear down to `final_learning_rate`."""
    start = int(cfg.decay_start * cfg.iters)
    if it < start:
        return cfg.learning_rate
    t = (it - start) / max(1, cfg.iters - start)
    return cfg.learning_rate + t * (cfg.final_learning_rate - cfg.learning_rate)


def split_sources(sources: list, scale: int) -> tuple[list, list]:
    """Training parts and validation strips of every source."""
    train, val = [], []
    for src in sources:
        if isinstance(src, PairedImage):
            lr_train, lr_val = split_columns(src.lr, min_val=16)
            cut = lr_train.shape[-1] * scale
            train.append(PairedImage(lr_train, src.hr[..., :cut]))
            val.append(PairedImage(lr_val, src.hr[..., cut : cut + lr_val.shape[-1] * scale]))
        else:
            t, v = split_columns(src, multiple=4 * scale, min_val=16 * scale)
            train.append(t)
            val.append(v)
    return train, val


def validation_set(val_sources: list, spec: DegradationSpec, copies: int = 2) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Fixed (LR, HR) validation pairs: each strip degraded `copies` times with fixed seeds."""
    pairs = []
    for i, src in enumerate(val_sources):
        if isinstance(src, PairedImage):
            pairs.append((src.lr, src.hr))
            continue
        s = spec.scale
        h, w = src.shape[-2] // s * s, src.shape[-1] // s * s
        if min(h, w) < 16 * s:
            continue
        hr = src[:, :h, :w]
        for c in range(copies):
            g = torch.Generator().manual_seed(VAL_SEED + copies * i + c)
            lr, _, _ = random_degradation(hr, spec, g)
            pairs.append((lr, hr))
    return pairs


@torch.no_grad()
def validate(model: torch.nn.Module, pairs: list, device: torch.device, scale: int) -> tuple[float, float]:
    """Mean PSNR and SSIM (RGB, data range 1, border = scale) over the validation pairs."""
    model.eval()
    ps, ss = [], []
    for lr, hr in pairs:
        sr = model(lr[None].to(device))[0].clamp(0, 1).cpu()
        ps.append(psnr(sr, hr[None], border=scale).item())
        ss.append(ssim(sr, hr[None], border=scale).item())
    model.train()
    return sum(ps) / len(ps), sum(ss) / len(ss)


def generator_loss(sr, deblurred, hr, lr_clear, cfg: TrainConfig) -> tuple[torch.Tensor, dict]:
    """The paper's two-part MSE plus the SSIM term; returns the total and its parts."""
    parts = {
        "mse_sr": F.mse_loss(sr, hr),
        "mse_deblur": cfg.deblur_weight * F.mse_loss(deblurred, lr_clear),
        "ssim": cfg.ssim_weight * (1 - ssim(sr, hr).mean()),
    }
    return sum(parts.values()), {k: v.item() for k, v in parts.items()}


def train(cfg: TrainConfig, console=None) -> dict:
    """Run one training run and write best/last weights, metrics.csv and train.log under cfg.out."""
    torch.manual_seed(cfg.seed)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    device = resolve_device(cfg.device)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    cfg.degradation.scale = cfg.scale
    overrides = {"scale": cfg.scale}
    if cfg.model == "mdeblurgan":
        overrides["use_oa"] = cfg.use_oa
    model = build_model(cfg.model, preset_config(cfg.model, cfg.preset, **overrides)).to(device)
    sources, data_desc = load_sources(cfg.data, cfg.scale)
    train_src, val_src = split_sources(sources, cfg.scale)
    sampler = PatchSampler(train_src, cfg.patch, cfg.degradation, cfg.seed)
    val_pairs = validation_set(val_src, cfg.degradation)
    if not val_pairs:
        raise MdeblurError("no image is large enough for a validation strip (need at least 32 px of width to spare)")
    opt = torch.optim.Adam(model.parameters(), lr=cfg.learning_rate)
    (out / "config.json").write_text(json.dumps(asdict(cfg), indent=2) + "\n")
    log = open(out / "train.log", "a")
    metrics_file = open(out / "metrics.csv", "w", newline="")
    writer = csv.writer(metrics_file)
    writer.writerow(["iter", "learning_rate", "loss", "mse_sr", "mse_deblur", "ssim_term", "val_psnr", "val_ssim", "seconds"])
    say = console.print if console is not None else print
    say(f"training {cfg.model} ({count_params(model):,} params) on {data_desc}, {len(val_pairs)} validation pairs, device {device}")
    provenance = {
        "data": data_desc, "degradation": cfg.degradation.to_dict(), "losses": "mse_sr + mse_deblur + ssim",
        "loss_weights": {"deblur": cfg.deblur_weight, "ssim": cfg.ssim_weight}, "batch_size": cfg.batch_size,
        "patch_lr": cfg.patch, "learning_rate": cfg.learning_rate, "seed": cfg.seed,
        "command": " ".join(["mdeblur", *sys.argv[1:]]) if sys.argv and "mdeblur" in sys.argv[0] else None,
    }
    best = {"psnr": -1.0, "ssim": 0.0, "iter": 0}
    start, running = time.time(), {}
    columns = [TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
               TextColumn("{task.fields[info]}"), TimeElapsedColumn(), TimeRemainingColumn()]
    with Progress(*columns, console=console, disable=console is None) as progress:
        task = progress.add_task("train", total=cfg.iters, info="")
        for it in range(1, cfg.iters + 1):
            for group in opt.param_groups:
                group["lr"] = learning_rate_at(cfg, it - 1)
            lr, lr_clear, hr = (t.to(device) for t in sampler.batch(cfg.batch_size))
            sr, deblurred = model(lr)
            loss, parts = generator_loss(sr, deblurred, hr, lr_clear, cfg)
            if not torch.isfinite(loss):
                raise RuntimeError(f"loss became {loss.item()} at iteration {it}")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            for k, v in {"loss": loss.item(), **parts}.items():
                running[k] = v if k not in running else 0.98 * running[k] + 0.02 * v
            val = None
            if it % cfg.val_every == 0 or it == cfg.iters:
                val = validate(model, val_pairs, device, cfg.scale)
                elapsed = time.time() - start
                info = {**provenance, "iterations": it, "val_psnr": val[0], "val_ssim": val[1], "wall_seconds": round(elapsed)}
                save_weights(out / "last.safetensors", model, cfg.model, info)
                if val[0] > best["psnr"]:
                    best = {"psnr": val[0], "ssim": val[1], "iter": it}
                    save_weights(out / "best.safetensors", model, cfg.model, info)
                writer.writerow([it, opt.param_groups[0]["lr"], running["loss"], running["mse_sr"], running["mse_deblur"],
                                 running["ssim"], f"{val[0]:.4f}", f"{val[1]:.5f}", round(elapsed, 1)])
                metrics_file.flush()
                line = f"iter {it} loss {running['loss']:.5f} val PSNR {val[0]:.3f} dB SSIM {val[1]:.4f} ({elapsed:.0f} s)"
                log.write(line + "\n")
                log.flush()
                if console is None:
                    print(line, flush=True)
            if val is not None or it % 10 == 0:
                progress.update(task, completed=it, info=f"loss {running['loss']:.4f} val {best['psnr']:.2f} dB")
    log.close()
    metrics_file.close()
    say(f"best validation PSNR {best['psnr']:.3f} dB, SSIM {best['ssim']:.4f} at iteration {best['iter']}; weights in {out}")
    return best
