"""Benchmark: PSNR/SSIM of bicubic, RL-deconvolution + SR and the learned models on named datasets."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np
import torch

from ..data import Pair
from ..data.degrade import upscale_bicubic
from ..models import count_params
from ..restore.tiles import restore_float
from ..weights import LoadedModel
from .psfs import PSF_GRID, parse_psf
from .rl import richardson_lucy
from .validate import evaluate


@dataclass
class Method:
    """A restoration method: LR (C, H, W) -> SR (C, H*s, W*s), with its parameter count if learned."""

    name: str
    run: Callable[[Pair], torch.Tensor]
    params: int | None = None
    weights: str | None = None  # the shipped name or path a learned method was loaded from


def bicubic_method(scale: int) -> Method:
    return Method("bicubic", lambda p: upscale_bicubic(p.lr, scale, clip=False))


def rl_method(scale: int, iterations: int = 30, psf: torch.Tensor | None = None) -> Method:
    """Richardson-Lucy with the pair's true PSF (or a given one), then bicubic."""

    def run(p: Pair) -> torch.Tensor:
        k = psf if psf is not None else p.psf
        if k is None:
            raise ValueError(f"{p.name}: no PSF known; pass one")
        # RL models raw intensities (Poisson counts), so it runs on the file's own units, not on the
        # offset-subtracted normalised ones, and its result is mapped back into them.
        a, b = p.to_file
        est = richardson_lucy((p.lr * a + b).clamp(min=0), k, iterations).clamp(min=0)
        return (upscale_bicubic(est, scale, clip=False) - b) / a

    return Method("rl-sr", run)


def model_method(name: str, model: LoadedModel, device: torch.device, tile: int = 512,
                 weights: str | None = None) -> Method:
    def run(p: Pair) -> torch.Tensor:
        out = restore_float(model.net, p.lr.permute(1, 2, 0).numpy(), tile=tile, device=device, clip=False)
        return torch.from_numpy(out).permute(2, 0, 1)

    return Method(name, run, count_params(model.net), weights)


@dataclass(frozen=True)
class InputCondition:
    """How the low-res image reaches a method: as a user's file of this kind, then normalised as `restore` does."""

    name: str
    label: str  # for table headers and the JSON's "input"
    bits: int | None = None  # integer file depth (8 or 16); None: float32
    jpeg_quality: int | None = None
    peak: float | None = None  # Poisson photons at white, with read noise `read_sigma`
    read_sigma: float = 0.0
    dim: tuple[float, float] | None = None  # (gain, offset) as fractions of the 16-bit range: a dim camera image


INPUT_CONDITIONS = {
    "float": InputCondition("float", "float32 file (no quantisation)"),
    "16": InputCondition("16", "16-bit file", bits=16),
    "8": InputCondition("8", "8-bit file", bits=8),
    "jpeg90": InputCondition("jpeg90", "8-bit JPEG q90", bits=8, jpeg_quality=90),
    "poisson1000": InputCondition("poisson1000", "Poisson 1000 photons + read 0.005, 16-bit file", bits=16,
                                  peak=1000.0, read_sigma=0.005),
    "dim12": InputCondition("dim12", "dim 12-bit camera in a 16-bit file (counts 100-4200)", bits=16,
                            dim=(4100 / 65535, 100 / 65535)),
}
ROBUSTNESS = ("float", "16", "8", "jpeg90", "poisson1000", "dim12")
NOISE_SEED = 7_000_000  # noise of the noisy condition, per image: fixed across runs and methods


def encode_input(lr: torch.Tensor, cond: InputCondition, generator: torch.Generator) -> tuple[np.ndarray, float, float]:
    """The file a user would hold for this LR (C, H, W) in [0, 1]: (H, W, C) array, and the (gain, offset) of its
    intensities relative to the clean signal, in the file's [0, 1] float units."""
    from ..data.degrade import dim, jpeg_compress, poisson_gaussian_noise

    x, gain, offset = lr.clamp(0, 1), 1.0, 0.0
    if cond.dim is not None:
        gain, offset = cond.dim
        x = dim(x, gain, offset)
    if cond.peak is not None:
        x = poisson_gaussian_noise(x, cond.peak, cond.read_sigma, generator)
    if cond.jpeg_quality is not None:
        x = jpeg_compress(x, cond.jpeg_quality)
    arr = x.permute(1, 2, 0).numpy()
    if cond.bits is None:
        return arr.astype(np.float32), gain, offset
    dtype = np.uint8 if cond.bits == 8 else np.uint16
    return np.rint(np.clip(arr, 0, 1) * np.iinfo(dtype).max).astype(dtype), gain, offset


def prepare_inputs(pairs: list[Pair], cond: InputCondition,
                   percentiles: tuple[float, float] | None = None) -> list[Pair]:
    """Each pair's LR as a file of this kind, normalised as `restore --normalize auto` does; `to_truth` maps a
    method's output back through the exact inverse and the known dimming, so it is scored against the clean HR."""
    from ..restore.normalize import DEFAULT_PERCENTILES, choose, dtype_range

    out = []
    for i, p in enumerate(pairs):
        arr, gain, offset = encode_input(p.lr, cond, torch.Generator().manual_seed(NOISE_SEED + i))
        norm = choose(arr, "auto", percentiles or DEFAULT_PERCENTILES)
        lr = torch.from_numpy(norm.apply(arr.astype(np.float32)).transpose(2, 0, 1).copy()).float()
        unit = dtype_range(arr.dtype)[1]  # file counts per [0, 1] float unit
        a, b = (norm.hi - norm.lo) / unit, norm.lo / unit  # normalised -> file float units
        out.append(replace(p, lr=lr, to_truth=(a / gain, (b - offset) / gain), to_file=(a, b)))
    if any(not np.isfinite(q.to_truth).all() for q in out):
        raise ValueError("an input condition produced a non-finite normalisation")
    return out


def run_on(method: Method, pair: Pair) -> torch.Tensor:
    """A method's output for one pair, mapped into the ground truth's intensity units."""
    with torch.no_grad():
        sr = method.run(pair)
    a, b = pair.to_truth
    return sr * a + b


def run_benchmark(
    pairs: list[Pair], methods: list[Method], scale: int, y_channel: bool = False,
    on_step: Callable[[], None] | None = None, keep: int = 0,
) -> tuple[list[dict], dict[str, dict[str, np.ndarray]]]:
    """Mean and std of PSNR/SSIM for every method, with seconds per output megapixel.

    Also returns the outputs of the first `keep` images, {image: {method: (H, W, C)}}, for figures.
    """
    results = []
    kept: dict[str, dict[str, np.ndarray]] = {p.name: {} for p in pairs[:keep]}
    for m in methods:
        rows = evaluate(lambda p, m=m: run_on(m, p), pairs, scale, truth=lambda p: p.hr, y_channel=y_channel,
                        on_step=on_step)
        ps, ss = [r.psnr for r in rows], [r.ssim for r in rows]
        ys = [(r.psnr_y, r.ssim_y) for r in rows] if y_channel else []
        seconds = sum(r.seconds for r in rows)
        mpix = sum(r.output.shape[-1] * r.output.shape[-2] / 1e6 for r in rows)
        per_image = {p.name: {"psnr": r.psnr, "ssim": r.ssim} for p, r in zip(pairs, rows, strict=True)}
        for p, r in zip(pairs, rows, strict=True):
            if p.name in kept:
                kept[p.name][m.name] = r.output.clamp(0, 1).permute(1, 2, 0).numpy()
        row = {
            "method": m.name, "weights": m.weights, "psnr": float(np.mean(ps)), "psnr_std": float(np.std(ps)),
            "ssim": float(np.mean(ss)), "ssim_std": float(np.std(ss)), "params": m.params,
            "seconds_per_mpix": seconds / mpix if mpix else math.nan, "n_images": len(pairs), "per_image": per_image,
        }
        if y_channel:
            row["psnr_y"] = float(np.mean([y[0] for y in ys]))
            row["ssim_y"] = float(np.mean([y[1] for y in ys]))
        results.append(row)
    return results, kept


# The paper's Table 1 (its own data and protocol; shown for reference only).
PAPER_TABLE1 = {
    "rl-sr": {"FIRE": (26.1325, 0.8034), "PINE CONES": (25.2356, 0.7822)},
    "unet-sr": {"FIRE": (33.6004, 0.9138), "PINE CONES": (32.7293, 0.9021)},
    "mdeblurgan": {"FIRE": (38.5014, 0.9736), "PINE CONES": (37.5326, 0.9551)},
}
METRIC = {"psnr": "RGB, data range 1, mean over images", "ssim": "Wang et al., 11x11 Gaussian window sigma 1.5, "
          "population covariance, valid region, mean over channels", "border_crop_px": None}


PSF_SEARCH_IMAGES = 4

def search_psf(pairs: list[Pair], scale: int, iterations: int, grid: tuple[str, ...] = PSF_GRID,
               max_images: int = PSF_SEARCH_IMAGES) -> tuple[str, list[dict]]:
    """The grid PSF under which RL + bicubic scores the best mean PSNR on the first `max_images` pairs.

    It looks at the ground truth, so the rl-sr row it feeds is a tuned baseline (one PSF for the whole data set),
    which the output says.
    """
    rows = []
    for spec in grid:
        method = rl_method(scale, iterations, parse_psf(spec))
        scores = [r.psnr for r in evaluate(lambda p, method=method: run_on(method, p), pairs[:max_images], scale,
                                           truth=lambda p: p.hr)]
        rows.append({"psf": spec, "psnr": float(np.mean(scores))})
    best = max(rows, key=lambda r: r["psnr"])
    return best["psf"], rows


def report(evalset, results: list[dict], scale: int, rl_psf: dict | None = None,
           cond: InputCondition = INPUT_CONDITIONS["float"]) -> dict:
    """The machine-readable result: dataset, stand-in flag, protocol, input, metric convention, rows, rl-sr's PSF."""
    rep = {"dataset": evalset.name, "stand_in": evalset.stand_in, "source": evalset.source,
           "protocol": evalset.protocol, "input": {"name": cond.name, "description": cond.label,
                                                   "normalization": "as restore --normalize auto"},
           "metric": {**METRIC, "border_crop_px": scale}, "results": results}
    if rl_psf is not None:
        rep["rl_psf"] = rl_psf
    return rep


def header_line(rep: dict) -> str:
    source = rep["source"].removeprefix("STAND-IN: ")
    stand = "STAND-IN data" if rep["stand_in"] else "real data"
    p = rep["protocol"]
    if p.get("name") == "FIRE":
        proto = f"FIRE protocol ({p['downscale']}, Gaussian sigma {p['sigma_lr_px']} LR px, noise-free)"
    elif "defocus_um" in p:
        proto = (f"{p['name']} ({p['objective_lr']} defocused {p['defocus_um'][0]:g}-{p['defocus_um'][1]:g} um -> "
                 f"{p['objective_hr']} in focus; Poisson {p['peak_photons']:g} photons + read {p['read_sigma']})")
    else:
        proto = f"{p.get('name')} (PSF {p.get('psf', 'unknown')})"
    inp = rep.get("input", {}).get("description", "float32 (no quantisation)")
    line = (f"dataset {rep['dataset']} ({stand}: {source}); {proto}; input: {inp}; PSNR/SSIM on RGB in [0, 1], "
            f"border {rep['metric']['border_crop_px']} px cropped")
    rl = rep.get("rl_psf")
    if rl is not None and rl["source"] != "dataset":
        line += f"; rl-sr PSF {rl['psf']} ({rl['source']})"
    return line


def to_markdown(rep: dict) -> str:
    lines = [f"_{header_line(rep)}_", "", "| method | PSNR (dB) | SSIM | params | s / Mpix |", "|---|---|---|---|---|"]
    for r in rep["results"]:
        params = f"{r['params']:,}" if r["params"] else "-"
        lines.append(f"| {r['method']} | {r['psnr']:.2f} ± {r['psnr_std']:.2f} | {r['ssim']:.4f} ± {r['ssim_std']:.4f} "
                     f"| {params} | {r['seconds_per_mpix']:.2f} |")
    return "\n".join(lines) + "\n"


def to_csv(rep: dict) -> str:
    cols = ["method", "psnr", "psnr_std", "ssim", "ssim_std", "params", "seconds_per_mpix", "n_images"]
    rows = [",".join(["dataset", "stand_in", *cols])]
    for r in rep["results"]:
        rows.append(",".join([rep["dataset"], str(rep["stand_in"]).lower(), *(str(r[c]) for c in cols)]))
    return "\n".join(rows) + "\n"


def robustness_markdown(reps: list[dict]) -> str:
    """One table: a row per method, a PSNR / SSIM column per input condition."""
    first = reps[0]
    head = header_line({**first, "input": {"description": "see columns"}})
    names = [r["method"] for r in first["results"]]
    lines = [f"_{head}_", "", "| method | " + " | ".join(r["input"]["description"] for r in reps) + " |",
             "|---|" + "---|" * len(reps)]
    for name in names:
        cells = []
        for rep in reps:
            row = next(r for r in rep["results"] if r["method"] == name)
            cells.append(f"{row['psnr']:.2f} / {row['ssim']:.4f}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- the command's run and its table

LEARNED = ("unet-sr", "mdeblurgan", "mdeblurgan-no-oa")
METHODS = ("bicubic", "rl-sr", *LEARNED)


@dataclass
class Spec:
    """What one benchmark runs: the methods (with the weights of the learned ones), rl-sr's PSF and iterations,
    the input conditions, and the images whose outputs are kept for a figure."""

    methods: list[str]
    weights: dict[str, str] = field(default_factory=dict)  # learned method -> shipped name or path
    conditions: list[str] = field(default_factory=lambda: ["8"])
    psf: str | None = None  # None: each pair's own PSF, else a grid search
    rl_iters: int = 30
    y_channel: bool = False
    self_ensemble: bool = False
    keep: int = 0
    scale: int = 2

    def __post_init__(self) -> None:
        from ..errors import MdeblurError

        unknown = next((m for m in self.methods if m not in METHODS), None)
        if unknown is not None:
            raise MdeblurError(f"--methods: unknown method {unknown!r}; use {', '.join(METHODS)}")
        bad = next((c for c in self.conditions if c not in INPUT_CONDITIONS), None)
        if bad is not None:
            raise MdeblurError(f"--input-depth {bad}: use one of {', '.join(INPUT_CONDITIONS)}")


@dataclass
class Report:
    """One report dict per input condition (as `report` makes them) and the kept outputs of the first."""

    reports: list[dict]
    kept: dict[str, dict[str, np.ndarray]]


def build_methods(spec: Spec, evalset, pairs: list[Pair], device: torch.device,
                  say: Callable[[str], None]) -> tuple[list[Method], dict | None]:
    """The methods of `spec`, and the record of rl-sr's PSF (searched on `pairs` where the data carry none)."""
    from ..weights import load_model

    fixed = parse_psf(spec.psf) if spec.psf else None
    rl_psf = {"source": "--psf", "psf": spec.psf} if spec.psf else None
    methods = []
    for name in spec.methods:
        if name == "bicubic":
            methods.append(bicubic_method(spec.scale))
        elif name == "rl-sr":
            if fixed is None and any(p.psf is None for p in evalset.pairs):
                n = min(len(evalset.pairs), PSF_SEARCH_IMAGES)
                say(f"rl-sr: the data carry no PSF; searching {len(PSF_GRID)} candidates on {n} image(s) by PSNR "
                    "against the ground truth (a tuned baseline; --psf sets one)")
                best, grid = search_psf(pairs, spec.scale, spec.rl_iters)
                fixed = parse_psf(best)
                rl_psf = {"source": f"grid search, best mean PSNR on {n} image(s)", "psf": best, "grid": grid}
                say("  " + ", ".join(f"{g['psf']} {g['psnr']:.2f}" for g in grid) + f" -> {best}")
            elif fixed is None:
                rl_psf = {"source": "dataset", "psf": "each pair's known PSF"}
            methods.append(rl_method(spec.scale, spec.rl_iters, fixed))
        else:
            weights = spec.weights[name]
            model = load_model(weights, device)
            if spec.self_ensemble:
                name, model = name + "+", model.self_ensemble()
            methods.append(model_method(name, model, device, weights=weights))
    return methods, rl_psf


def run(spec: Spec, evalset, device: torch.device, say: Callable[[str], None] = print,
        on_step: Callable[[], None] | None = None) -> Report:
    """Every method of `spec` on `evalset`, under each input condition."""
    inputs = {c: prepare_inputs(evalset.pairs, INPUT_CONDITIONS[c]) for c in spec.conditions}
    methods, rl_psf = build_methods(spec, evalset, inputs[spec.conditions[0]], device, say)
    reports, kept = [], {}
    for i, c in enumerate(spec.conditions):
        results, k = run_benchmark(inputs[c], methods, spec.scale, spec.y_channel, on_step=on_step,
                                   keep=spec.keep if i == 0 else 0)
        reports.append(report(evalset, results, spec.scale, rl_psf if "rl-sr" in spec.methods else None,
                              INPUT_CONDITIONS[c]))
        kept = k if i == 0 else kept
    return Report(reports, kept)


def render(rep: dict, y_channel: bool = False):
    """The results table of one report (a rich Table), with the paper's Table 1 beside it."""
    from rich.table import Table

    table = Table(title=header_line(rep), title_justify="left")
    for col in ("method", "PSNR (dB)", "SSIM", *(("PSNR-Y", "SSIM-Y") if y_channel else ()), "params", "s/Mpix",
                "paper FIRE", "paper PINE CONES"):
        table.add_column(col, justify="left" if col == "method" else "right")
    for r in rep["results"]:
        paper = PAPER_TABLE1.get(r["method"], {})
        cells = [r["method"], f"{r['psnr']:.2f} ± {r['psnr_std']:.2f}", f"{r['ssim']:.4f} ± {r['ssim_std']:.4f}"]
        if y_channel:
            cells += [f"{r['psnr_y']:.2f}", f"{r['ssim_y']:.4f}"]
        cells += [f"{r['params']:,}" if r["params"] else "-", f"{r['seconds_per_mpix']:.2f}"]
        cells += [f"{paper[k][0]:.2f} / {paper[k][1]:.4f}" if k in paper else "-" for k in ("FIRE", "PINE CONES")]
        table.add_row(*cells)
    return table
