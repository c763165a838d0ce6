"""`mdeblur benchmark`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from ..errors import MdeblurError
from .app import app, console


@app.command(epilog="Examples:\n\n  mdeblur benchmark --dataset reserved\n\n  mdeblur benchmark --dataset fire --json fire.json --markdown fire.md\n\n  mdeblur benchmark --dataset my_pairs/ --psf gaussian:1.2 --methods bicubic,rl-sr,mdeblurgan")
def benchmark(
    dataset: Annotated[str, typer.Option(help="reserved, fire, micro, pinecones, defocus, or a folder (lr/+hr/ pairs or HR images).")] = "reserved",
    methods: Annotated[str, typer.Option(help="Comma-separated: bicubic, rl-sr, unet-sr, mdeblurgan, mdeblurgan-no-oa.")] = "bicubic,rl-sr,unet-sr,mdeblurgan",
    weights: Annotated[str, typer.Option(help="Weights for mdeblurgan.")] = "mdeblurgan-x2",
    unet_weights: Annotated[str, typer.Option(help="Weights for unet-sr.")] = "unet-sr-x2",
    no_oa_weights: Annotated[str, typer.Option(help="Weights for the ablation without the optimal approximation module (not shipped: train them with `mdeblur train --config configs/ablation-no-oa.toml`).")] = "mdeblurgan-no-oa-x2",
    sigma: Annotated[float, typer.Option(help="Gaussian sigma (low-res px) of the FIRE protocol.")] = 1.5,
    psf: Annotated[str | None, typer.Option(help="PSF for rl-sr: gaussian:SIGMA (LR px), disk:R, defocus:DZ_UM (x5/NA 0.12) or a file. Default: the data's own PSF, else a grid search.")] = None,
    rl_iters: Annotated[int, typer.Option(help="Richardson-Lucy iterations.")] = 30,
    data_root: Annotated[Path | None, typer.Option(help="Where real data sets live (else $MDEBLUR_DATA, user data dir).")] = None,
    limit: Annotated[int | None, typer.Option(help="Use the first N images.")] = None,
    y_channel: Annotated[bool, typer.Option("--y-channel", help="Also report BT.601 Y-channel numbers.")] = False,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda, cuda:N or mps.")] = "auto",
    json_out: Annotated[Path | None, typer.Option("--json", help="Write results as JSON.")] = None,
    csv_out: Annotated[Path | None, typer.Option("--csv", help="Write results as CSV.")] = None,
    markdown: Annotated[Path | None, typer.Option(help="Write results as a Markdown table.")] = None,
    figure: Annotated[Path | None, typer.Option(help="Write a comparison figure (PNG) with zoomed regions.")] = None,
    figure_images: Annotated[int, typer.Option(help="Images in the comparison figure.")] = 2,
    plot_params: Annotated[Path | None, typer.Option(help="Write PSNR vs parameters (PNG; needs matplotlib).")] = None,
    self_ensemble: Annotated[bool, typer.Option("--self-ensemble", help="Learned methods average over the 8 flips/quarter turns (named NAME+, as EDSR+).")] = False,
    input_depth: Annotated[str | None, typer.Option(help="The low-res input as a user's file: 8, 16 or float (also jpeg90, poisson1000, dim12); normalised as restore does. \\[default: 8]")] = None,
    robustness: Annotated[bool, typer.Option("--robustness", help="Run every method under float, 16-bit, 8-bit, JPEG q90, Poisson 1000 photons and dim 12-bit input; one table.")] = False,
    overwrite: Annotated[bool, typer.Option(help="Replace existing --json/--csv/--markdown/--figure/--plot-params files.")] = False,
    trust: Annotated[bool, typer.Option("--trust", help="Instead of PSNR/SSIM: does the trust map of --weights predict the error? Ranking against the gradient baseline (and the sampling map), coverage, and detection of planted hallucinating models, at 8-bit, JPEG q90, Poisson and physical-defocus input.")] = False,
) -> None:
    """PSNR/SSIM of bicubic, RL-deconvolution + SR, U-Net + SR and M-Deblurgan on one dataset."""
    import json

    from rich.progress import Progress

    from ..data.eval import load_eval_set
    from ..device import resolve_device
    from ..evaluate import benchmark as bm
    from ..evaluate import figures
    from ..weights import load_model

    _check_options({"--limit": limit, "--figure-images": figure_images, "--rl-iters": rl_iters}, sigma,
                   {"--json": json_out, "--csv": csv_out, "--markdown": markdown, "--figure": figure,
                    "--plot-params": plot_params}, overwrite, robustness and input_depth is not None)
    spec = bm.Spec(methods=[m.strip() for m in methods.split(",") if m.strip()],
                   weights={"unet-sr": unet_weights, "mdeblurgan": weights, "mdeblurgan-no-oa": no_oa_weights},
                   conditions=list(bm.ROBUSTNESS) if robustness else [input_depth or "8"], psf=psf,
                   rl_iters=rl_iters, y_channel=y_channel, self_ensemble=self_ensemble,
                   keep=figure_images if figure else 0)
    dev = resolve_device(device)
    evalset = load_eval_set(dataset, data_root, sigma, 2, limit)
    if evalset.stand_in:
        console.print(f"[yellow]note:[/yellow] {evalset.source}")
    if trust:
        _benchmark_trust(evalset, dataset, load_model(weights, dev), json_out, markdown)
        return
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("benchmark", total=len(spec.methods) * len(evalset.pairs) * len(spec.conditions))
        result = bm.run(spec, evalset, dev, say=console.print, on_step=lambda: progress.advance(task))
    if robustness:
        _print_robustness(result.reports, json_out, markdown)
        return
    rep = result.reports[0]
    Console().print(bm.render(rep, y_channel))
    console.print("paper columns: the paper's Table 1, on its own data and protocol; not comparable number for number.")
    for path, text in ((json_out, json.dumps(rep, indent=2)), (csv_out, bm.to_csv(rep)),
                       (markdown, bm.to_markdown(rep))):
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text if text.endswith("\n") else text + "\n")
    if figure is not None:
        figures.benchmark_figure(evalset, rep["results"], result.kept, figure_images, figure)
        console.print(f"figure: {figure}", markup=False, highlight=False)
    if plot_params is not None:
        figures.params_plot(rep["results"], bm.header_line(rep)[:90], plot_params)
        console.print(f"plot: {plot_params}", markup=False, highlight=False)


def _check_options(counts: dict, sigma: float, outputs: dict, overwrite: bool, both_inputs: bool) -> None:
    """Every benchmark option checked before any work or output."""
    from ..evaluate import figures
    from ..formats.paths import check_new_file

    for option, value in counts.items():
        if value is not None and value < 1:
            raise MdeblurError(f"{option} {value}: must be 1 or more")
    if not (sigma > 0 and sigma < 1e3):
        raise MdeblurError(f"--sigma {sigma:g}: a blur sigma in low-res pixels must be positive")
    for option, value in outputs.items():
        check_new_file(value, overwrite, option)
    if outputs["--plot-params"] is not None:
        figures.require_matplotlib()  # before any output is written
    if both_inputs:
        raise MdeblurError("--robustness runs every input condition; drop --input-depth")


def _benchmark_trust(evalset, dataset: str, model, json_out: Path | None, markdown: Path | None) -> None:
    """mdeblur benchmark --trust: the calibration and detection tables (trust_bench.py)."""
    import json

    from rich.progress import Progress

    from ..evaluate import trust_bench as tb
    from ..formats.images import atomic_write

    n = len(evalset.pairs)
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("trust maps", total=n * len(tb.KINDS) + 2 * n + 1)
        rows = tb.calibration(model, evalset.pairs, on_step=lambda: progress.advance(task))
        det = tb.detection(model, evalset.pairs, on_step=lambda: progress.advance(task))
    text = tb.render(rows, det, dataset, evalset.stand_in)
    Console().print(text, markup=False, highlight=False, soft_wrap=True)
    for path, body in ((json_out, json.dumps({"dataset": dataset, "stand_in": evalset.stand_in,
                                              "trust": model.trust.to_dict(), "calibration": rows,
                                              "detection": det}, indent=2)), (markdown, text)):
        if path is not None:
            atomic_write(path, lambda tmp, body=body: Path(tmp).write_text(body + "\n"))


def _print_robustness(reps: list[dict], json_out: Path | None, markdown: Path | None) -> None:
    import json

    from rich.table import Table

    from ..evaluate import benchmark as bm

    table = Table(title=bm.header_line({**reps[0], "input": {"description": "see columns"}}), title_justify="left")
    table.add_column("method")
    for rep in reps:
        table.add_column(rep["input"]["description"], justify="right")
    for i, row in enumerate(reps[0]["results"]):
        table.add_row(row["method"], *(f"{rep['results'][i]['psnr']:.2f} / {rep['results'][i]['ssim']:.4f}"
                                       for rep in reps))
    Console().print(table)
    console.print("cells: PSNR (dB) / SSIM against the clean ground truth; each input normalised as restore does.")
    for path, text in ((json_out, json.dumps({"robustness": reps}, indent=2)), (markdown, bm.robustness_markdown(reps))):
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text + "\n")
