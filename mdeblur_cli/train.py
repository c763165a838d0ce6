"""The training loop: on-the-fly degradation, the paper's losses, LR decay, best-by-validation, crash-safe resume."""

from __future__ import annotations

import contextlib
import copy
import csv
import json
import math
import random
import signal
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from . import distributed as ddp
from .checkpoint import STATE_FILE, _rng_state, _set_rng_state, load_state, save_state  # noqa: F401 (re-export)
from .config import (  # noqa: F401 (re-export)
    RUN_FILES,
    TRAIN_BYTES_PER_LR_PIXEL,
    TrainConfig,
    check_run_folder,
    config_from_toml,
    config_to_toml,
)
from .datasets import (
    MICRO_VAL_COUNT,
    PairedImage,
    PatchSampler,
    hr_of,
    load_sources,
    microscope_validation,
    soften,
    split_columns,
)
from .degrade import DegradationSpec, random_degradation
from .device import resolve_device, resolve_precision
from .errors import MdeblurError
from .losses import BALANCE_SHARE, LOG_MSE_EPS, Losses, PerceptualLoss  # noqa: F401 (re-export)
from .models import Discriminator, build_model, count_params, preset_config
from .runlog import METRIC_COLUMNS, _truncate_metrics, read_metrics  # noqa: F401 (re-export)
from .stacks import machine_memory
from .vgg import find_vgg19_weights, load_vgg19_features
from .weights import load_model, save_weights

VAL_SEED = 1_000_003  # validation degradations use seeds from here, fixed across runs
BALANCE_BATCHES = 4  # batches measured by --loss-balance auto


# ---------------------------------------------------------------- data and validation


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
            train.append(PairedImage(lr_train, src.hr[..., :cut], src.name))
            val.append(PairedImage(lr_val, src.hr[..., cut : cut + lr_val.shape[-1] * scale], src.name))
        else:
            t, v = split_columns(src, multiple=4 * scale, min_val=16 * scale)
            train.append(t)
            val.append(v)
    return train, val


def validation_set(
    val_sources: list, spec: DegradationSpec, copies: int = 2, soft: bool = False, microscope: bool = False
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Fixed (LR, HR) validation pairs: each strip degraded `copies` times with fixed seeds (and, with `soft`,
    once more with its ground truth softened; with `microscope`, plus held-out simulated microscope pairs)."""
    pairs = microscope_validation(encoding=spec) if microscope else []
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
            lr, _, target, _ = random_degradation(hr, spec, g)
            pairs.append((lr, target))
        if soft:
            g = torch.Generator().manual_seed(VAL_SEED - 1 - i)
            soft_hr = soften(hr, g)
            lr, _, target, _ = random_degradation(soft_hr, spec, g)
            pairs.append((lr, target))
    return pairs


@torch.no_grad()
def validate(model: torch.nn.Module, pairs: list, device: torch.device, scale: int) -> tuple[float, float]:
    """Mean PSNR and SSIM (RGB, data range 1, border = scale) over the validation pairs."""
    from .evaluation import evaluate

    was_training = model.training
    model.eval()
    rows = evaluate(lambda p: model(p[0][None].to(device))[0][0].float().cpu(), pairs, scale, truth=lambda p: p[1])
    model.train(was_training)
    return sum(r.psnr for r in rows) / len(rows), sum(r.ssim for r in rows) / len(rows)


def iters_per_epoch(sources: list, cfg: TrainConfig) -> int:
    """Iterations that show about as many HR pixels as the training images hold."""
    pixels = sum(hr_of(s).shape[-1] * hr_of(s).shape[-2] for s in sources)
    return max(1, math.ceil(pixels / (cfg.batch_size * (cfg.patch * cfg.scale) ** 2)))


# ---------------------------------------------------------------- losses


# ---------------------------------------------------------------- checkpoints


# ---------------------------------------------------------------- the loop


class _StopRequest:
    """SIGINT/SIGTERM set a flag; the loop checkpoints and exits at the end of the iteration."""

    def __init__(self) -> None:
        self.requested = False
        self.signal = signal.SIGINT
        self._old = {}

    def __enter__(self):
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(ValueError):  # not the main thread
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        self.requested = True
        self.signal = signum

    def __exit__(self, *exc) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)


def train(cfg: TrainConfig, console=None, resume: bool = False) -> dict:
    """Run (or resume) a training run; writes best/last weights, state.pt, metrics.csv, train.log under cfg.out."""
    device = resolve_device(cfg.device)
    need = cfg.batch_size * cfg.patch**2 * TRAIN_BYTES_PER_LR_PIXEL
    if device.type == "cpu" and need > machine_memory():
        raise MdeblurError(f"--batch-size {cfg.batch_size} --patch {cfg.patch}: about {need / 2**30:.0f} GiB of "
                           f"activations (~{TRAIN_BYTES_PER_LR_PIXEL // 1000} kB per low-res pixel), more than this "
                           f"machine's {machine_memory() / 2**30:.0f} GiB")
    dinfo = ddp.init(device.type)
    if dinfo.enabled and device.type == "cuda":
        device = torch.device("cuda", dinfo.local_rank)
    amp_dtype = resolve_precision(cfg.precision, device)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed + dinfo.rank)
    random.seed(cfg.seed + dinfo.rank)
    np.random.seed(cfg.seed + dinfo.rank)
    out = Path(cfg.out)
    say = (console.print if console is not None else print) if dinfo.main else (lambda *a, **k: None)
    cfg.degradation.scale = cfg.scale

    overrides = {"scale": cfg.scale}
    if cfg.model == "mdeblurgan":
        overrides["use_oa"] = cfg.use_oa
    if cfg.init is not None:
        model = load_model(cfg.init)
        cfg.model, cfg.scale = model.arch, model.scale
        model = model.train().to(device)
    else:
        model = build_model(cfg.model, preset_config(cfg.model, cfg.preset, **overrides)).to(device)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    sources, data_desc = load_sources(cfg.data, cfg.scale)
    train_src, val_src = split_sources(sources, cfg.scale)
    shard = train_src[dinfo.rank :: dinfo.world] if len(train_src) >= dinfo.world else train_src
    sampler = PatchSampler(shard, cfg.patch, cfg.degradation, cfg.seed * 1009 + dinfo.rank, zoom_prob=cfg.zoom_prob,
                           soft_prob=cfg.soft_prob, microscope_prob=cfg.microscope_prob)
    val_pairs = validation_set(val_src, cfg.degradation, soft=cfg.soft_prob > 0, microscope=cfg.microscope_prob > 0)
    if not val_pairs:
        raise MdeblurError("no image is large enough for a validation strip (need at least 32 px of width to spare)")
    per_epoch = iters_per_epoch(train_src, cfg)

    perceptual = None
    if cfg.perceptual_weight > 0 or cfg.loss_balance == "auto":
        vgg_path = find_vgg19_weights(cfg.vgg19_weights)
        if vgg_path is None:
            say("[yellow]note:[/yellow] no VGG19 weights (--vgg19-weights, or vgg19-dcbb9e9d.pth in torch's hub cache): "
                "training WITHOUT the perceptual term; this is recorded in the weights' metadata")
        else:
            perceptual = PerceptualLoss(load_vgg19_features(vgg_path), cfg.vgg_layer).to(device)
    disc = Discriminator(model.cfg.channels).to(device) if cfg.adversarial_weight > 0 else None
    losses = Losses(cfg, perceptual, disc)

    net = model
    if dinfo.enabled:
        net = torch.nn.parallel.DistributedDataParallel(model, device_ids=[dinfo.local_rank] if device.type == "cuda" else None)
        if disc is not None:
            disc = torch.nn.parallel.DistributedDataParallel(disc, device_ids=[dinfo.local_rank] if device.type == "cuda" else None)
            losses.disc = disc
    opt_g = torch.optim.Adam(model.parameters(), lr=cfg.learning_rate)
    opt_d = torch.optim.Adam(disc.parameters(), lr=cfg.learning_rate, betas=(0.9, 0.999)) if disc is not None else None
    scaler = torch.amp.GradScaler("cuda", enabled=amp_dtype == torch.float16)
    ema = copy.deepcopy(model).eval() if cfg.ema > 0 else None
    autocast = (torch.autocast(device.type, dtype=amp_dtype) if amp_dtype != torch.float32
                else contextlib.nullcontext())

    start, best, running = 0, {"psnr": -1.0, "ssim": 0.0, "iter": 0}, {}
    if resume:
        state = load_state(out / STATE_FILE)
        model.load_state_dict(state["generator"])
        opt_g.load_state_dict(state["opt_g"])
        if disc is not None:
            (disc.module if dinfo.enabled else disc).load_state_dict(state["discriminator"])
            opt_d.load_state_dict(state["opt_d"])
        if ema is not None:
            ema.load_state_dict(state["ema"])
        scaler.load_state_dict(state["scaler"])
        start, best, running = state["iteration"], state["best"], state["running"]
        if start >= cfg.iters:
            raise MdeblurError(f"{out}: the run is at iteration {start} of {cfg.iters}; give --iters N > {start} "
                               "to extend it")
        losses.alpha, losses.beta = state["alpha"], state["beta"]
        _set_rng_state(state["rng"], sampler, state["sampler_states"][dinfo.rank])
        say(f"resuming {out} at iteration {start}")
    elif cfg.loss_balance == "auto":
        sums: dict[str, float] = {}
        with torch.no_grad():
            for _ in range(BALANCE_BATCHES):
                lr, lr_clear, hr = (t.to(device) for t in sampler.batch(cfg.batch_size))
                sr, deblurred = net(lr)
                for k, v in losses.raw_terms(sr, deblurred, hr, lr_clear, adversarial=True).items():
                    sums[k] = sums.get(k, 0.0) + v.item() / BALANCE_BATCHES
        losses.balance(sums)
        say(f"loss balance (auto, from {BALANCE_BATCHES} batches): alpha {losses.alpha:.4g}, beta {losses.beta:.4g}")

    log = metrics_file = writer = None
    if dinfo.main:
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.toml").write_text(config_to_toml(cfg))
        (out / "config.json").write_text(json.dumps({**asdict(cfg), "alpha": losses.alpha, "beta": losses.beta,
                                                     "world_size": dinfo.world}, indent=2) + "\n")
        if resume:
            _truncate_metrics(out / "metrics.csv", start)
        else:
            (out / "metrics.csv").unlink(missing_ok=True)
        new_file = not (out / "metrics.csv").exists()
        metrics_file = open(out / "metrics.csv", "a", newline="")
        writer = csv.writer(metrics_file)
        if new_file:
            writer.writerow(METRIC_COLUMNS)
            metrics_file.flush()
        log = open(out / "train.log", "a")
        if resume:
            log.write(f"resumed at iteration {start}\n")
    say(f"training {cfg.model} ({count_params(model):,} params) on {data_desc}; {len(val_pairs)} validation pairs; "
        f"device {device}; {dinfo.world} process(es), global batch {cfg.batch_size * dinfo.world}; "
        f"loss {losses.describe()}")
    provenance = {
        "data": data_desc, "degradation": cfg.degradation.to_dict(), "zoom_prob": cfg.zoom_prob,
        "soft_prob": cfg.soft_prob, "microscope_prob": cfg.microscope_prob, "pixel_loss": cfg.pixel_loss,
        "normalization": {"8-bit": "range", "12/16-bit and float": "percentile",
                          "percentiles": list(cfg.degradation.percentiles)},
        "losses": losses.describe(), "vgg19": "used" if perceptual is not None else "absent",
        "batch_size": cfg.batch_size * dinfo.world, "patch_lr": cfg.patch, "learning_rate": cfg.learning_rate,
        "schedule": f"constant {cfg.decay_start:.0%}, then linear to {cfg.final_learning_rate:g}",
        "seed": cfg.seed, "ema": cfg.ema, "precision": cfg.precision, "init": cfg.init,
        "command": " ".join(["mdeblur", *sys.argv[1:]]) if sys.argv and "mdeblur" in sys.argv[0] else None,
    }
    t0 = time.time() - (running.get("_seconds", 0.0))

    def snapshot(it: int) -> None:
        sampler_states = ddp.gather_objects(sampler.generator.get_state(), dinfo)
        if not dinfo.main:
            return
        running["_seconds"] = time.time() - t0
        save_state(out / STATE_FILE, {
            "iteration": it, "generator": model.state_dict(), "opt_g": opt_g.state_dict(),
            "discriminator": (disc.module if dinfo.enabled else disc).state_dict() if disc is not None else {},
            "opt_d": opt_d.state_dict() if opt_d is not None else {}, "ema": ema.state_dict() if ema is not None else {},
            "scaler": scaler.state_dict(), "best": best, "running": dict(running), "alpha": losses.alpha,
            "beta": losses.beta, "rng": _rng_state(sampler), "sampler_states": sampler_states,
        })

    columns = [TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
               TextColumn("{task.fields[info]}"), TimeElapsedColumn(), TimeRemainingColumn()]
    stopped_at = None
    with _StopRequest() as stop, Progress(*columns, console=console, disable=console is None or not dinfo.main) as bar:
        task = bar.add_task("train", total=cfg.iters, completed=start, info="")
        for it in range(start + 1, cfg.iters + 1):
            for group in opt_g.param_groups:
                group["lr"] = learning_rate_at(cfg, it - 1)
            lr, lr_clear, hr = (t.to(device) for t in sampler.batch(cfg.batch_size))
            if device.type == "cuda":
                lr = lr.contiguous(memory_format=torch.channels_last)
            adversarial = disc is not None and it > cfg.adv_start
            d_loss = torch.zeros(())
            with autocast:
                sr, deblurred = net(lr)
            if adversarial:
                for group in opt_d.param_groups:
                    group["lr"] = learning_rate_at(cfg, it - 1)
                with autocast:  # one forward over real and fake, as DDP expects one forward per backward
                    logits = disc(torch.cat([hr, sr.detach().to(hr.dtype)]))
                    target = torch.cat([torch.ones(len(hr)), torch.zeros(len(hr))]).to(logits)
                    d_loss = 2 * F.binary_cross_entropy_with_logits(logits, target)
                opt_d.zero_grad(set_to_none=True)
                scaler.scale(d_loss).backward()
                scaler.step(opt_d)
            with autocast:
                terms = losses.weighted(losses.raw_terms(sr.float(), deblurred.float(), hr, lr_clear, adversarial))
                loss = sum(terms.values())
            if not torch.isfinite(loss):
                raise MdeblurError(f"loss became {loss.item()} at iteration {it}; lower --learning-rate")
            opt_g.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(opt_g)
            scaler.update()
            if ema is not None:
                with torch.no_grad():
                    for pe, pm in zip(ema.parameters(), model.parameters(), strict=True):
                        pe.lerp_(pm.detach(), 1 - cfg.ema)
            values = {"loss": loss.item(), "d_loss": d_loss.item(), **{k: v.item() for k, v in terms.items()}}
            for k, v in values.items():
                running[k] = v if k not in running else 0.98 * running[k] + 0.02 * v
            if dinfo.main and (it % cfg.val_every == 0 or it == cfg.iters):
                release = ema if ema is not None else model
                val = validate(release, val_pairs, device, cfg.scale)
                elapsed = time.time() - t0
                info = {**provenance, "iterations": it, "val_psnr": val[0], "val_ssim": val[1],
                        "val_protocol": "right-most 20% of each training image, training degradation mix, 2 seeds"
                        + (f", + {MICRO_VAL_COUNT} held-out simulated microscope pairs" if cfg.microscope_prob > 0 else ""),
                        "wall_seconds": round(elapsed)}
                save_weights(out / "last.safetensors", release, cfg.model, info)
                if val[0] > best["psnr"]:
                    best = {"psnr": val[0], "ssim": val[1], "iter": it}
                    save_weights(out / "best.safetensors", release, cfg.model, info)
                writer.writerow([it, f"{it / per_epoch:.3f}", opt_g.param_groups[0]["lr"],
                                 *(f"{running.get(k, 0.0):.6g}" for k in ("loss", "mse", "ssim", "percep", "adv", "d_loss")),
                                 f"{val[0]:.4f}", f"{val[1]:.5f}", round(elapsed, 1)])
                metrics_file.flush()
                line = f"iter {it} loss {running['loss']:.5f} val PSNR {val[0]:.3f} dB SSIM {val[1]:.4f} ({elapsed:.0f} s)"
                log.write(line + "\n")
                log.flush()
                if console is None:
                    print(line, flush=True)
            stop_now = ddp.any_flag(stop.requested, dinfo, device)
            if it % cfg.checkpoint_every == 0 or it == cfg.iters or stop_now:
                snapshot(it)
            if it % 10 == 0 or it == cfg.iters:
                bar.update(task, completed=it, info=f"loss {running['loss']:.4f} best val {best['psnr']:.2f} dB")
            if stop_now:
                stopped_at = it
                break
    if dinfo.main:
        log.close()
        metrics_file.close()
        from .figures import training_curve

        training_curve({out.name: read_metrics(out)}, out / "training_curve.png")
    ddp.shutdown(dinfo)
    if stopped_at is not None:
        exc = KeyboardInterrupt(f"stopped at iteration {stopped_at}; state saved to {out / STATE_FILE}")
        exc.exit_code = 128 + int(stop.signal)  # 130 for Ctrl-C, 143 for SIGTERM, as the shell reports them
        raise exc
    say(f"best validation PSNR {best['psnr']:.3f} dB, SSIM {best['ssim']:.4f} at iteration {best['iter']}; weights in {out}")
    return best
