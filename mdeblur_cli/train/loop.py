"""The training loop: on-the-fly degradation, the paper's losses, LR decay, best-by-validation, crash-safe resume."""

from __future__ import annotations

import contextlib
import copy
import json
import random
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from ..data.train import MICRO_VAL_COUNT, PatchSampler, load_sources, split_sources, validation_set
from ..device import resolve_device, resolve_precision
from ..errors import MdeblurError
from ..evaluate.validate import validate
from ..formats.series import machine_memory
from ..models import ARCHS, Discriminator, build_model, count_params, preset_config
from ..weights import load_model, resolve_weights, save_weights, sha256
from . import distributed as ddp
from .checkpoint import STATE_FILE, _rng_state, _set_rng_state, load_state, save_state
from .config import TRAIN_BYTES_PER_LR_PIXEL, TrainConfig, config_to_toml
from .losses import Losses, PerceptualLoss
from .runlog import RunLog, read_metrics
from .schedule import StopRequest, iters_per_epoch, learning_rate_at
from .vgg import find_vgg19_weights, load_vgg19_features

BALANCE_BATCHES = 4  # batches measured by --loss-balance auto


@dataclass
class Run:
    """Everything a training run holds between iterations: built once by `setup`, stepped by `train_step`."""

    cfg: TrainConfig  # resolved: scale and architecture from --init, degradation scale = scale
    out: Path
    device: torch.device
    dinfo: ddp.DistInfo
    autocast: contextlib.AbstractContextManager
    model: torch.nn.Module
    net: torch.nn.Module  # the model, or its DDP wrapper
    ema: torch.nn.Module | None
    disc: torch.nn.Module | None
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer | None
    scaler: torch.amp.GradScaler
    losses: Losses
    sampler: PatchSampler
    val_pairs: list
    per_epoch: int
    data_desc: str
    vgg_used: bool
    say: Callable
    start: int = 0
    best: dict = field(default_factory=lambda: {"psnr": -1.0, "ssim": 0.0, "iter": 0})
    running: dict = field(default_factory=dict)
    t0: float = 0.0

    @property
    def release(self) -> torch.nn.Module:
        """The weights that are validated and saved: the EMA where kept."""
        return self.ema if self.ema is not None else self.model

    def elapsed(self) -> float:
        return time.time() - self.t0


def _check_memory(cfg: TrainConfig, device: torch.device) -> None:
    need = cfg.batch_size * cfg.patch**2 * TRAIN_BYTES_PER_LR_PIXEL
    if device.type == "cpu" and need > machine_memory():
        raise MdeblurError(f"--batch-size {cfg.batch_size} --patch {cfg.patch}: about {need / 2**30:.0f} GiB of "
                           f"activations (~{TRAIN_BYTES_PER_LR_PIXEL // 1000} kB per low-res pixel), more than this "
                           f"machine's {machine_memory() / 2**30:.0f} GiB")


def _generator(cfg: TrainConfig, resume: bool) -> tuple[TrainConfig, torch.nn.Module]:
    """The generator (fresh, or from --init) and the config resolved to it; `cfg` itself is never changed.

    A fresh run from --init checks the file against `init_sha256` where the config names one, and records the
    file's sha256 otherwise, so the lineage survives the parent being overwritten (a resumed run loads its
    state instead, so its init file is not checked)."""
    own = Path(cfg.out) / "last.safetensors"
    if resume and own.is_file():  # the run's own weights say what it trains; its state.pt then loads over them
        loaded = load_model(own)
        return replace(cfg, degradation=replace(cfg.degradation, scale=loaded.scale)), loaded.net.train()
    if cfg.init is not None:
        path = resolve_weights(cfg.init)
        digest = sha256(path)
        if not resume and cfg.init_sha256 not in (None, digest):
            raise MdeblurError(f"--init {cfg.init}: its sha256 is {digest}, but the config's init_sha256 is "
                               f"{cfg.init_sha256}: this is not the parent the config names (to train from another "
                               "parent, remove init_sha256 from the config; for the configs in configs/history/, "
                               "the commit that shipped the parent is given beside it)")
        loaded = load_model(path)
        built = {k: v for k, v in loaded.net.cfg.to_dict().items() if k not in ("scale", "use_oa")}
        preset = next((name for name, p in ARCHS[loaded.arch].presets.items()
                       if {k: v for k, v in p.to_dict().items() if k not in ("scale", "use_oa")} == built), cfg.preset)
        cfg = replace(cfg, model=loaded.arch, scale=loaded.scale, preset=preset,
                      use_oa=getattr(loaded.net.cfg, "use_oa", cfg.use_oa), init_sha256=cfg.init_sha256 or digest)
        model = loaded.net.train()
    else:
        overrides = {"scale": cfg.scale, **({"use_oa": cfg.use_oa} if cfg.model == "mdeblurgan" else {})}
        model = build_model(cfg.model, preset_config(cfg.model, cfg.preset, **overrides))
    return replace(cfg, degradation=replace(cfg.degradation, scale=cfg.scale)), model


def _perceptual(cfg: TrainConfig, say) -> PerceptualLoss | None:
    if cfg.perceptual_weight <= 0 and cfg.loss_balance != "auto":
        return None
    vgg_path = find_vgg19_weights(cfg.vgg19_weights)
    if vgg_path is None:
        say("[yellow]note:[/yellow] no VGG19 weights (--vgg19-weights, or vgg19-dcbb9e9d.pth in torch's hub cache): "
            "training WITHOUT the perceptual term; this is recorded in the weights' metadata")
        return None
    return PerceptualLoss(load_vgg19_features(vgg_path), cfg.vgg_layer)


def setup(cfg: TrainConfig, console=None, resume: bool = False) -> Run:
    """Device, seeds, networks, data, losses and optimisers of a fresh run (`resume_from` then loads a state)."""
    device = resolve_device(cfg.device)
    _check_memory(cfg, device)
    dinfo = ddp.init(device.type)
    if dinfo.enabled and device.type == "cuda":
        device = torch.device("cuda", dinfo.local_rank)
    amp_dtype = resolve_precision(cfg.precision, device)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    for seed in (torch.manual_seed, random.seed, np.random.seed):
        seed(cfg.seed + dinfo.rank)
    say = (console.print if console is not None else print) if dinfo.main else (lambda *a, **k: None)
    cfg, model = _generator(cfg, resume)
    model = model.to(device)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    sources, data_desc = load_sources(cfg.data, cfg.scale)
    train_src, val_src = split_sources(sources, cfg.scale)
    if cfg.epochs is not None:  # the data are loaded once, here
        cfg = replace(cfg, iters=cfg.epochs * iters_per_epoch(train_src, cfg), epochs=None)
    shard = train_src[dinfo.rank :: dinfo.world] if len(train_src) >= dinfo.world else train_src
    sampler = PatchSampler(shard, cfg.patch, cfg.degradation, cfg.seed * 1009 + dinfo.rank, zoom_prob=cfg.zoom_prob,
                           soft_prob=cfg.soft_prob, microscope_prob=cfg.microscope_prob,
                           microscope_optics=cfg.microscope_optics)
    val_pairs = validation_set(val_src, cfg.degradation, soft=cfg.soft_prob > 0,
                               microscope=cfg.microscope_optics if cfg.microscope_prob > 0 else None)
    if not val_pairs:
        raise MdeblurError("no image is large enough for a validation strip (need at least 32 px of width to spare)")
    perceptual = _perceptual(cfg, say)
    disc = Discriminator(model.cfg.channels).to(device) if cfg.adversarial_weight > 0 else None
    losses = Losses(cfg, perceptual.to(device) if perceptual is not None else None, disc)
    net = model
    if dinfo.enabled:
        ids = [dinfo.local_rank] if device.type == "cuda" else None
        net = torch.nn.parallel.DistributedDataParallel(model, device_ids=ids)
        if disc is not None:
            disc = losses.disc = torch.nn.parallel.DistributedDataParallel(disc, device_ids=ids)
    return Run(
        cfg=cfg, out=Path(cfg.out), device=device, dinfo=dinfo, say=say,
        autocast=torch.autocast(device.type, dtype=amp_dtype) if amp_dtype != torch.float32 else contextlib.nullcontext(),
        model=model, net=net, ema=copy.deepcopy(model).eval() if cfg.ema > 0 else None, disc=disc,
        opt_g=torch.optim.Adam(model.parameters(), lr=cfg.learning_rate),
        opt_d=torch.optim.Adam(disc.parameters(), lr=cfg.learning_rate, betas=(0.9, 0.999)) if disc is not None else None,
        scaler=torch.amp.GradScaler("cuda", enabled=amp_dtype == torch.float16), losses=losses, sampler=sampler,
        val_pairs=val_pairs, per_epoch=iters_per_epoch(train_src, cfg), data_desc=data_desc,
        vgg_used=perceptual is not None,
    )


def _bare(module: torch.nn.Module | None) -> torch.nn.Module | None:
    """A network without its DDP wrapper."""
    return module.module if isinstance(module, torch.nn.parallel.DistributedDataParallel) else module


def resume_from(run: Run) -> None:
    """Load state.pt into a run built by `setup`: networks, optimisers, loss weights, counters and RNG states."""
    state = load_state(run.out / STATE_FILE)
    run.model.load_state_dict(state["generator"])
    run.opt_g.load_state_dict(state["opt_g"])
    if run.disc is not None:
        _bare(run.disc).load_state_dict(state["discriminator"])
        run.opt_d.load_state_dict(state["opt_d"])
    if run.ema is not None:
        run.ema.load_state_dict(state["ema"])
    run.scaler.load_state_dict(state["scaler"])
    run.start, run.best, run.running = state["iteration"], state["best"], state["running"]
    if run.start >= run.cfg.iters:
        raise MdeblurError(f"{run.out}: the run has done {run.start} iterations of the {run.cfg.iters} it is asked for: "
                           f"it is complete; give --iters N > {run.start} to extend it")
    run.losses.alpha, run.losses.beta = state["alpha"], state["beta"]
    _set_rng_state(state["rng"], run.sampler, state["sampler_states"][run.dinfo.rank])
    run.say(f"resuming {run.out} at iteration {run.start} of {run.cfg.iters} (the learning-rate schedule follows "
            f"{run.cfg.iters} iterations)")


@torch.no_grad()
def balance_losses(run: Run) -> None:
    """--loss-balance auto: alpha and beta from the raw terms of the first BALANCE_BATCHES batches."""
    sums: dict[str, float] = {}
    for _ in range(BALANCE_BATCHES):
        lr, lr_clear, hr = (t.to(run.device) for t in run.sampler.batch(run.cfg.batch_size))
        sr, deblurred = run.net(lr)
        for k, v in run.losses.raw_terms(sr, deblurred, hr, lr_clear, adversarial=True).items():
            sums[k] = sums.get(k, 0.0) + v.item() / BALANCE_BATCHES
    run.losses.balance(sums)
    run.say(f"loss balance (auto, from {BALANCE_BATCHES} batches): alpha {run.losses.alpha:.4g}, "
            f"beta {run.losses.beta:.4g}")


def provenance(run: Run) -> dict:
    """What the weights' metadata records about how they were trained."""
    cfg = run.cfg
    return {
        "data": run.data_desc, "degradation": cfg.degradation.to_dict(), "zoom_prob": cfg.zoom_prob,
        "soft_prob": cfg.soft_prob, "microscope_prob": cfg.microscope_prob,
        "microscope_optics": cfg.microscope_optics, "pixel_loss": cfg.pixel_loss,
        "normalization": {"8-bit": "range", "12/16-bit and float": "percentile",
                          "percentiles": list(cfg.degradation.percentiles)},
        "losses": run.losses.describe(), "vgg19": "used" if run.vgg_used else "absent",
        "batch_size": cfg.batch_size * run.dinfo.world, "patch_lr": cfg.patch, "learning_rate": cfg.learning_rate,
        "schedule": f"constant {cfg.decay_start:.0%}, then linear to {cfg.final_learning_rate:g}",
        "seed": cfg.seed, "ema": cfg.ema, "precision": cfg.precision, "init": cfg.init, "init_sha256": cfg.init_sha256,
        "command": " ".join(["mdeblur", *sys.argv[1:]]) if sys.argv and "mdeblur" in sys.argv[0] else None,
        "val_protocol": "right-most 20% of each training image, training degradation mix, 2 seeds"
        + (f", + {MICRO_VAL_COUNT * (2 if cfg.microscope_optics == 'range' else 1)} held-out simulated microscope "
           "pairs" if cfg.microscope_prob > 0 else ""),
    }


def train_step(run: Run, it: int) -> dict[str, float]:
    """One iteration (1-based `it`): discriminator step where adversarial, generator step, EMA; the loss values."""
    cfg, lr_now = run.cfg, learning_rate_at(run.cfg, it - 1, run.elapsed())
    for group in run.opt_g.param_groups:
        group["lr"] = lr_now
    lr, lr_clear, hr = (t.to(run.device) for t in run.sampler.batch(cfg.batch_size))
    if run.device.type == "cuda":
        lr = lr.contiguous(memory_format=torch.channels_last)
    adversarial = run.disc is not None and it > cfg.adv_start
    d_loss = torch.zeros(())
    with run.autocast:
        sr, deblurred = run.net(lr)
    if adversarial:
        for group in run.opt_d.param_groups:
            group["lr"] = lr_now
        with run.autocast:  # one forward over real and fake, as DDP expects one forward per backward
            logits = run.disc(torch.cat([hr, sr.detach().to(hr.dtype)]))
            target = torch.cat([torch.ones(len(hr)), torch.zeros(len(hr))]).to(logits)
            d_loss = 2 * F.binary_cross_entropy_with_logits(logits, target)
        run.opt_d.zero_grad(set_to_none=True)
        run.scaler.scale(d_loss).backward()
        run.scaler.step(run.opt_d)
    with run.autocast:
        terms = run.losses.weighted(run.losses.raw_terms(sr.float(), deblurred.float(), hr, lr_clear, adversarial))
        loss = sum(terms.values())
    if not torch.isfinite(loss):
        raise MdeblurError(f"loss became {loss.item()} at iteration {it}; lower --learning-rate")
    run.opt_g.zero_grad(set_to_none=True)
    run.scaler.scale(loss).backward()
    run.scaler.step(run.opt_g)
    run.scaler.update()
    if run.ema is not None:
        with torch.no_grad():
            for pe, pm in zip(run.ema.parameters(), run.model.parameters(), strict=True):
                pe.lerp_(pm.detach(), 1 - cfg.ema)
    return {"loss": loss.item(), "d_loss": d_loss.item(), **{k: v.item() for k, v in terms.items()}}


def evaluate_and_save(run: Run, it: int, log: RunLog, info: dict) -> str:
    """Validate the release weights, save last (and best) weights, log a metrics row; the log line."""
    psnr, ssim = validate(run.release, run.val_pairs, run.device, run.cfg.scale)
    elapsed = run.elapsed()
    info = {**info, "iterations": it, "val_psnr": psnr, "val_ssim": ssim, "wall_seconds": round(elapsed)}
    save_weights(run.out / "last.safetensors", run.release, run.cfg.model, info)
    if psnr > run.best["psnr"]:
        run.best = {"psnr": psnr, "ssim": ssim, "iter": it}
        save_weights(run.out / "best.safetensors", run.release, run.cfg.model, info)
    log.metrics([it, f"{it / run.per_epoch:.3f}", run.opt_g.param_groups[0]["lr"],
                 *(f"{run.running.get(k, 0.0):.6g}" for k in ("loss", "mse", "ssim", "percep", "adv", "d_loss")),
                 f"{psnr:.4f}", f"{ssim:.5f}", round(elapsed, 1)])
    return log.line(f"iter {it} loss {run.running['loss']:.5f} val PSNR {psnr:.3f} dB SSIM {ssim:.4f} "
                    f"({elapsed:.0f} s)")


def snapshot(run: Run, it: int) -> None:
    """state.pt at iteration `it` (every rank's sampler state gathered; the main process writes)."""
    sampler_states = ddp.gather_objects(run.sampler.generator.get_state(), run.dinfo)
    if not run.dinfo.main:
        return
    run.running["_seconds"] = run.elapsed()
    opt_d, disc = run.opt_d, _bare(run.disc)
    save_state(run.out / STATE_FILE, {
        "iteration": it, "generator": run.model.state_dict(), "opt_g": run.opt_g.state_dict(),
        "discriminator": disc.state_dict() if disc is not None else {},
        "opt_d": opt_d.state_dict() if opt_d is not None else {},
        "ema": run.ema.state_dict() if run.ema is not None else {}, "scaler": run.scaler.state_dict(),
        "best": run.best, "running": dict(run.running), "alpha": run.losses.alpha, "beta": run.losses.beta,
        "rng": _rng_state(run.sampler), "sampler_states": sampler_states,
    })


PROGRESS = (TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
            TextColumn("{task.fields[info]}"), TimeElapsedColumn(), TimeRemainingColumn())


def train(cfg: TrainConfig, console=None, resume: bool = False, deadline: float | None = None) -> dict:
    """Run (or resume) a training run; writes best/last weights, state.pt, metrics.csv, train.log under cfg.out.
    `deadline` (a time.time()) sets a fresh run's time limit to what is left of it once the data are loaded."""
    run = setup(cfg, console, resume)
    if resume:
        resume_from(run)
    elif run.cfg.loss_balance == "auto":
        balance_losses(run)
    if deadline is not None and not resume:
        run.cfg = replace(run.cfg, time_limit_s=max(1.0, deadline - time.time()))
    cfg, main = run.cfg, run.dinfo.main
    log = RunLog(run.out, resume_at=run.start if resume else None, enabled=main)
    if main:
        (run.out / "config.toml").write_text(config_to_toml(cfg))
        (run.out / "config.json").write_text(json.dumps({**asdict(cfg), "alpha": run.losses.alpha,
                                                         "beta": run.losses.beta, "world_size": run.dinfo.world},
                                                        indent=2) + "\n")
    run.say(f"training {cfg.model} ({count_params(run.model):,} params) on {run.data_desc}; "
            f"{len(run.val_pairs)} validation pairs; device {run.device}; {run.dinfo.world} process(es), global batch "
            f"{cfg.batch_size * run.dinfo.world}; loss {run.losses.describe()}")
    info = provenance(run)
    run.t0 = time.time() - run.running.get("_seconds", 0.0)
    stopped_at = None
    with StopRequest() as stop, Progress(*PROGRESS, console=console, disable=console is None or not main) as bar:
        timed = cfg.time_limit_s is not None  # the bar counts seconds against the limit, not iterations
        total = int(cfg.time_limit_s) if timed else cfg.iters
        task = bar.add_task("train (s)" if timed else "train", total=total,
                            completed=min(total, int(run.elapsed())) if timed else run.start, info="")
        for it in range(run.start + 1, cfg.iters + 1):
            for k, v in train_step(run, it).items():
                run.running[k] = v if k not in run.running else 0.98 * run.running[k] + 0.02 * v
            out_of_time = cfg.time_limit_s is not None and ddp.any_flag(run.elapsed() >= cfg.time_limit_s, run.dinfo,
                                                                        run.device)  # every rank stops together
            if main and (it % cfg.val_every == 0 or it == cfg.iters or out_of_time):
                line = evaluate_and_save(run, it, log, info)
                if console is None:
                    print(line, flush=True)
            if out_of_time:
                snapshot(run, it)
                run.say(f"time limit of {cfg.time_limit_s:g} s reached at iteration {it} of {cfg.iters}")
                break
            stop_now = ddp.any_flag(stop.requested, run.dinfo, run.device)
            if it % cfg.checkpoint_every == 0 or it == cfg.iters or stop_now:
                snapshot(run, it)
            if it % 10 == 0 or it == cfg.iters:
                bar.update(task, completed=min(total, int(run.elapsed())) if timed else it,
                           info=f"{f'iter {it} ' if timed else ''}loss {run.running['loss']:.4f} best val "
                                f"{run.best['psnr']:.2f} dB")
            if stop_now:
                stopped_at = it
                break
    log.close()
    if main:
        from ..evaluate.figures import training_curve

        training_curve({run.out.name: read_metrics(run.out)}, run.out / "training_curve.png")
    ddp.shutdown(run.dinfo)
    if stopped_at is not None:
        exc = KeyboardInterrupt(f"stopped at iteration {stopped_at}; state saved to {run.out / STATE_FILE}")
        exc.exit_code = 128 + int(stop.signal)  # 130 for Ctrl-C, 143 for SIGTERM, as the shell reports them
        raise exc
    best = run.best
    run.say(f"best validation PSNR {best['psnr']:.3f} dB, SSIM {best['ssim']:.4f} at iteration {best['iter']}; "
            f"weights in {run.out}")
    if main and (run.out / "best.safetensors").is_file():
        fit_run_head(run)
    return best


HEAD_SHARE, HEAD_MAX_S, HEAD_MIN_S = 0.1, 120.0, 2.0  # the error head's fitting time: a share of the run's


def fit_run_head(run: Run) -> None:
    """Fit the learned error head of best.safetensors on the run's own draws and calibrate it on its held-out
    pairs (restore/error_head.py), in a tenth of the run's time (2-120 s)."""
    from .error_head import fit_for_weights

    seconds = min(HEAD_MAX_S, max(HEAD_MIN_S, HEAD_SHARE * run.elapsed()))
    trust = fit_for_weights(run.out / "best.safetensors", run.sampler, run.val_pairs, seconds,
                            patches=128 if seconds >= 30 else 32)
    run.say(f"error head fitted in {seconds:.0f} s and calibrated on {trust.calibration_images} held-out pairs "
            f"(conformal factor {trust.lam:.3g}; --trust uses it)")
