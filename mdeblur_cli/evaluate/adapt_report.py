"""The report of `mdeblur adapt`: on held-out regions degraded by the same forward model, bicubic, Richardson-Lucy
given the same PSF, the starting and the adapted model (PSNR, SSIM), the trust map recalibrated there, and one
before/after figure. Written as report.json, report.md and report.png in the run folder."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..data import to_tensor
from ..data.degrade import upscale_bicubic
from .metrics import psnr, ssim
from .rl import richardson_lucy

RL_ITERATIONS = (5, 10, 20, 40, 80)  # chosen among on the training regions
COVER = 0.683  # the share of pixels whose error a calibrated +-1 SD band covers (Gaussian)
TRUST_COST = 12.0  # a trust map costs about this many plain restores (8 passes and the change map)
METHODS = ("bicubic", "rl", "initial", "adapted")


@dataclass
class HeldOut:
    """One held-out region: the file the microscope would record, and its truth ((sH, sW, C) in [0, 1])."""

    name: str
    file_lr: np.ndarray
    truth: np.ndarray
    dz: float


def held_out(fm, specimens, split, seed: int) -> list[HeldOut]:
    """The bottom region of every image through the forward model, once, with fixed seeds."""
    out = []
    for i, (name, img, gray) in enumerate(specimens):
        _, bottom = split(img, fm.scale)
        g = torch.Generator().manual_seed(seed * 1_000_003 + 7919 * i + 500_000)
        file_lr, hr, meta = fm.simulate(to_tensor(bottom), g, gray=gray)
        truth = hr[:1] if gray else hr
        out.append(HeldOut(name, file_lr, truth.permute(1, 2, 0).numpy(), meta["defocus_um"]))
    return out


def _chw(x: np.ndarray) -> torch.Tensor:
    x = x[..., None] if x.ndim == 2 else x
    return torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1))).float()


def score(out: np.ndarray, truth: np.ndarray, scale: int) -> tuple[float, float]:
    """PSNR and SSIM on [0, 1] data, border of `scale` px cropped (the project's convention)."""
    a, b = _chw(out)[None].clamp(0, 1), _chw(truth)[None]
    return float(psnr(a, b, scale)), float(ssim(a, b, scale))


def bicubic(fm, h: HeldOut) -> np.ndarray:
    return upscale_bicubic(_chw(fm.camera.to_unit(h.file_lr)), fm.scale).permute(1, 2, 0).numpy()


def rl_sr(fm, file_lr: np.ndarray, dz: float, iterations: int) -> np.ndarray:
    """Richardson-Lucy with the forward model's own PSF on the file's intensities, then bicubic."""
    x = _chw(fm.camera.to_unit(file_lr)).clamp(min=0)
    k = fm.lr_psf(dz)[: x.shape[0]]
    est = richardson_lucy(x, k, iterations).clamp(min=0)
    return upscale_bicubic(est, fm.scale, clip=False).clamp(0, 1).permute(1, 2, 0).numpy()


def model_output(fm, model, h: HeldOut, device, trust=None) -> np.ndarray:
    """The model on the file as a user has it (restore's normalisation), back in truth units."""
    from ..restore.arrays import restore_stack

    axes = "YX" if h.file_lr.ndim == 2 else "YXS"
    out = restore_stack(h.file_lr, axes, model, device=device, trust=trust)
    out = fm.camera.to_unit(out)
    return out[..., None] if out.ndim == 2 else out


def choose_rl_iterations(fm, specimens, split, seed: int) -> int:
    """The RL iteration count with the best mean PSNR on a simulated pair of each training region."""
    best, best_psnr = RL_ITERATIONS[0], -1.0
    pairs = []
    for i, (_, img, gray) in enumerate(specimens):
        top, _ = split(img, fm.scale)
        top = top[: min(top.shape[0], 256), : min(top.shape[1], 256)]
        g = torch.Generator().manual_seed(seed * 1_000_003 + 7919 * i + 900_000)
        file_lr, hr, meta = fm.simulate(to_tensor(top), g, gray=gray)
        pairs.append((file_lr, (hr[:1] if gray else hr).permute(1, 2, 0).numpy(), meta["defocus_um"]))
    for n in RL_ITERATIONS:
        mean = float(np.mean([score(rl_sr(fm, f, dz, n), t, fm.scale)[0] for f, t, dz in pairs]))
        if mean > best_psnr:
            best, best_psnr = n, mean
    return best


def _rows(fm, held, method) -> list[dict]:
    return [dict(zip(("psnr", "ssim"), score(method(h), h.truth, fm.scale), strict=True)) | {"image": h.name}
            for h in held]


def baselines(fm, specimens, held, spec, split, device: torch.device, say) -> dict:
    """Bicubic, RL and the starting model on the held-out regions, with the starting model's time."""
    from ..weights import load_model

    iterations = choose_rl_iterations(fm, specimens, split, spec.seed)
    initial = load_model(spec.init, device)
    first = model_output(fm, initial, held[0], device)  # untimed: the first pass pays one-time start-up costs
    t = time.perf_counter()
    rows = _rows(fm, held, lambda h: first if h is held[0] else model_output(fm, initial, h, device))
    seconds = (time.perf_counter() - t) * len(held) / max(1, len(held) - 1)
    res = {"bicubic": _rows(fm, held, lambda h: bicubic(fm, h)),
           "rl": _rows(fm, held, lambda h: rl_sr(fm, h.file_lr, h.dz, iterations)),
           "initial": rows, "rl_iterations": iterations, "initial_seconds": seconds, "initial_output": first}
    say(f"held-out regions: bicubic {_mean(res['bicubic']):.2f} dB, RL ({iterations} iterations, the same PSF) "
        f"{_mean(res['rl']):.2f} dB, {spec.init} {_mean(rows):.2f} dB")
    return res


def report_seconds(before: dict, budget: float) -> float:
    """Time to keep for scoring the adapted model and its trust map (measured on the starting model)."""
    return before["initial_seconds"] * (2 + TRUST_COST) + 0.02 * budget + 5


def _mean(rows: list[dict], key: str = "psnr") -> float:
    return float(np.mean([r[key] for r in rows]))


def recalibrate(fm, model, held, device) -> tuple[object, dict]:
    """Split-conformal scaling of the trust map: its scale is set on the top half of each held-out region so
    that +-1 predicted SD covers COVER of the pixels; the coverage is measured on the bottom halves."""
    from dataclasses import replace

    from ..restore.arrays import TrustRequest

    tm = model.trust
    head = getattr(tm, "head", None) is not None  # the learned head: +-2 map is its 95% band
    level, width = (tm.level, 2.0) if head else (COVER, 1.0)
    ratios_cal, ratios_eval, outs = [], [], []
    for h in held:
        req = TrustRequest(tm)
        out = model_output(fm, model, h, device, trust=req)
        sd = fm.camera.to_unit(req.maps[-1]) - fm.camera.to_unit(np.zeros(1))  # an SD: scale only, no offset
        sd = sd[..., None] if sd.ndim == 2 else sd
        ratio = (np.abs(out - h.truth).mean(2) / np.maximum(width * sd.mean(2), 1e-6))
        half = ratio.shape[0] // 2
        ratios_cal.append(ratio[:half].ravel())
        ratios_eval.append(ratio[half:].ravel())
        outs.append(out)
    cal, ev = np.concatenate(ratios_cal), np.concatenate(ratios_eval)
    factor = float(np.quantile(cal, level))
    why = f"scaled by {factor:.3g} on adapt's held-out regions (split conformal over their pixels)"
    new = (replace(tm, lam=tm.lam * factor, calibrated_on=f"{tm.calibrated_on}; {why}") if head else
           replace(tm, scale=tm.scale * factor, fitted_on=f"{tm.fitted_on}; {why}"))
    stats = {"level": level, "band": "+-2 map" if head else "+-1 map", "factor": factor, "coverage_before": float(np.mean(ev <= 1.0)),
             "coverage_after": float(np.mean(ev <= factor)), "pixels_calibration": int(cal.size),
             "pixels_evaluation": int(ev.size)}
    return new, {"trust": stats, "outputs": outs}


def finish(fm, spec, run: Path, held, before: dict, device: torch.device, say, elapsed: float,
           seconds: dict) -> dict:
    """Score the adapted model, recalibrate its trust map, write best.safetensors and the report."""
    from ..weights import load_model, save_weights, sha256

    t = time.time()
    best = run / "fit" / "best.safetensors"
    adapted = load_model(best if best.is_file() else spec.init, device)
    tm, extra = recalibrate(fm, adapted, held, device)
    rows = [dict(zip(("psnr", "ssim"), score(o, h.truth, fm.scale), strict=True)) | {"image": h.name}
            for o, h in zip(extra["outputs"], held, strict=True)]
    methods = {"bicubic": before["bicubic"], "rl": before["rl"], "initial": before["initial"], "adapted": rows}
    forward = {"objective_lr": spec.objective_lr, "objective_hr": spec.objective_hr,
               "camera_pixel_um": spec.camera_pixel_um, "defocus_um": list(fm.spec.defocus_um),
               "photons": fm.spec.peak, "read_sigma": fm.spec.read_sigma, "camera": {
                   "bits": fm.camera.bits, "lo": fm.camera.lo, "white": fm.camera.white},
               **(fm.psf.describe() if fm.psf is not None else {}), **({"like": spec.like, "estimated": spec.estimated}
                                                                         if spec.like else {})}
    prov = {**adapted.provenance, **({"error_head": tm.to_dict()} if adapted.head is not None else {"trust": tm.to_dict()}),
            "adapt": {"forward_model": forward, "init": spec.init, "sources": [h.name for h in held],
                      "held_out": f"bottom {0.25:.0%} of every image's rows"}}
    save_weights(run / "best.safetensors", adapted.net, adapted.arch, prov)
    if adapted.head is not None:
        from ..weights import store_error_head

        store_error_head(run / "best.safetensors", tm)
    report = {"methods": {m: {"psnr": _mean(r), "ssim": _mean(r, "ssim"), "per_image": r} for m, r in methods.items()},
              "rl_iterations": before["rl_iterations"], "trust": extra["trust"], "forward_model": forward,
              "weights": str(run / "best.safetensors"), "weights_sha256": sha256(run / "best.safetensors"),
              "minutes_budget": spec.minutes, "minutes_used": round((elapsed + time.time() - t) / 60, 2),
              "seconds": {**{k: round(v, 1) for k, v in seconds.items()}, "report": round(time.time() - t, 1)},
              "protocol": "held-out regions (the bottom rows of every in-focus image, never trained on), through the "
                          "same forward model, stored as the camera's files; PSNR/SSIM on [0, 1], border 2 px"}
    (run / "report.json").write_text(json.dumps(report, indent=1) + "\n")
    (run / "report.md").write_text(markdown(report, spec))
    figure(fm, held[0], before["initial_output"], extra["outputs"][0], before["rl_iterations"], run / "report.png")
    m = report["methods"]
    say(f"adapted: {m['adapted']['psnr']:.2f} dB on the held-out regions ({m['adapted']['psnr'] - m['rl']['psnr']:+.2f}"
        f" vs RL, {m['adapted']['psnr'] - m['initial']['psnr']:+.2f} vs {spec.init}); report in {run / 'report.md'}")
    return report


def markdown(report: dict, spec) -> str:
    m = report["methods"]
    lines = [f"# mdeblur adapt: {spec.out}", "", report["protocol"] + ".", "",
             "| method | PSNR (dB) | SSIM | vs RL (dB) | vs initial (dB) |", "|---|---|---|---|---|"]
    for k in METHODS:
        lines.append(f"| {k} | {m[k]['psnr']:.2f} | {m[k]['ssim']:.4f} | {m[k]['psnr'] - m['rl']['psnr']:+.2f} | "
                     f"{m[k]['psnr'] - m['initial']['psnr']:+.2f} |")
    lines += ["", f"RL: {report['rl_iterations']} iterations (chosen on the training regions), the forward model's "
              f"own PSF. initial: `{spec.init}`.", "", "| image | " + " | ".join(METHODS) + " |",
              "|---|" + "---|" * len(METHODS)]
    for i, row in enumerate(m["adapted"]["per_image"]):
        lines.append(f"| {row['image']} | " + " | ".join(f"{m[k]['per_image'][i]['psnr']:.2f}" for k in METHODS) + " |")
    t = report["trust"]
    lines += ["", f"Trust map: {t.get('band', '+-1 map')} covered {t['coverage_before']:.1%} of held-out pixels before, "
              f"{t['coverage_after']:.1%} after recalibration (target {t['level']:.1%}; scale x{t['factor']:.3g}, "
              "set on the top halves of the held-out regions, measured on the bottom halves).", "",
              f"Forward model: `{json.dumps(report['forward_model'])}`", "",
              f"Time: {report['minutes_used']} of {report['minutes_budget']} minutes. Weights: "
              f"`{report['weights']}` (sha256 {report['weights_sha256'][:16]}...).", "", "![before and after](report.png)", ""]
    return "\n".join(lines)


def _flattest(truth: np.ndarray, side: int) -> tuple[int, int]:
    g = truth.mean(2)
    best, at = np.inf, (0, 0)
    for y in range(0, g.shape[0] - side + 1, side // 2):
        for x in range(0, g.shape[1] - side + 1, side // 2):
            v = g[y : y + side, x : x + side]
            if v.mean() > 0.2 and v.std() < best:
                best, at = v.std(), (y, x)
    return at


def figure(fm, h: HeldOut, initial: np.ndarray, adapted: np.ndarray, iterations: int, path: Path,
           side: int = 128) -> None:
    """Bicubic | RL | initial | adapted | truth: a crop at normal contrast, then the flattest bright region of the
    truth contrast-stretched (its 1st-99th percentile, the same map in every panel), where invented texture
    shows."""
    from ..formats.images import write_image

    panels = [bicubic(fm, h), rl_sr(fm, h.file_lr, h.dz, iterations), initial, adapted, h.truth]
    t = h.truth
    cy, cx = max(0, t.shape[0] // 2 - side // 2), max(0, t.shape[1] // 2 - side // 2)
    fy, fx = _flattest(t, side // 2)
    lo, hi = np.percentile(t[fy : fy + side // 2, fx : fx + side // 2].mean(2), (1, 99))
    rows = []
    for p in panels:
        p3 = np.repeat(p, 3, 2) if p.shape[2] == 1 else p
        crop = p3[cy : cy + side, cx : cx + side]
        flat = np.clip((p3[fy : fy + side // 2, fx : fx + side // 2].mean(2) - lo) / max(hi - lo, 1e-6), 0, 1)
        flat = np.repeat(np.repeat(flat, 2, 0), 2, 1)[..., None].repeat(3, 2)
        rows.append(np.concatenate([np.clip(crop, 0, 1), np.ones((4, crop.shape[1], 3)), flat[: crop.shape[0]]], 0))
    gap = np.ones((rows[0].shape[0], 4, 3))
    img = np.concatenate([x for r in rows for x in (r, gap)][:-1], 1)
    write_image(path, np.rint(img * 255).astype(np.uint8))
