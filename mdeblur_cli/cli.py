"""The `mdeblur` command line: thin Typer commands over the package's functions."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from . import __version__
from .errors import MdeblurError

console = Console(stderr=True)


def fail(exc: MdeblurError) -> None:
    from rich.markup import escape

    console.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False, soft_wrap=True, emoji=False)
    raise typer.Exit(2)


class _Boundary(typer.core.TyperGroup):
    """The one place where the package's error becomes a one-line message and exit code 2 (as fastapi-cli
    does): commands raise MdeblurError and never print it themselves."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except MdeblurError as exc:
            fail(exc)


app = typer.Typer(
    cls=_Boundary,
    help="Restore blurry, low-resolution optical microscope images with M-Deblurgan (deblur + x2 SR).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _percentiles(text: str | None) -> tuple[float, float] | None:
    """'LO,HI' to a pair of percentiles, checked."""
    if text is None:
        return None
    from .restore.normalize import check_percentiles

    parts = text.split(",")
    if len(parts) != 2:
        raise MdeblurError(f"--percentiles {text}: expected two numbers LO,HI such as 0.1,99.9")
    try:
        return check_percentiles(parts)
    except ValueError as exc:
        raise MdeblurError(f"--percentiles {text}: {exc} (LO,HI such as 0.1,99.9)") from None


def _version(value: bool) -> None:
    if value:
        print(f"mdeblur {__version__}")
        raise typer.Exit()


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Python warnings as one line each ("warning: ..."), not as source locations."""
    from rich.markup import escape

    console.print(f"[yellow]warning:[/yellow] {escape(str(message))}", highlight=False, soft_wrap=True)


@app.callback()
def main(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version.")] = False,
) -> None:
    """mdeblur command line."""
    import warnings

    warnings.showwarning = _show_warning


@app.command(epilog="Examples:\n\n  mdeblur train dataset/ --iters 2000 --out runs/mine\n\n  mdeblur train builtin --model unet-sr --threads 1\n\n  mdeblur train dataset/ --loss-balance auto --adversarial-weight 1e-3 --adv-start 1000 --vgg19-weights vgg19-dcbb9e9d.pth\n\n  mdeblur train --resume runs/mine\n\n  torchrun --nproc_per_node=2 -m mdeblur_cli train dataset/ --out runs/ddp")
def train(
    dataset: Annotated[str | None, typer.Argument(help="Folder of HR images, a paired folder with lr/ and hr/, or 'builtin'.")] = None,
    config: Annotated[Path | None, typer.Option(help="TOML config file; options given here override it.")] = None,
    print_config: Annotated[bool, typer.Option("--print-config", help="Print the config this command would run (the defaults, --config and the options given) as TOML, and exit.")] = False,
    resume: Annotated[Path | None, typer.Option(help="Continue the run in this directory from its state.pt (with --iters N: extend it to N iterations).")] = None,
    no_oa: Annotated[bool, typer.Option("--no-oa", help="Ablation: mdeblurgan without the optimal approximation module.")] = False,
    overwrite: Annotated[bool, typer.Option(help="Start afresh in an --out that already holds a run, replacing it.")] = False,
    **options,
) -> None:
    """Train M-Deblurgan (or the U-Net + SR baseline) on your own images; resumable, multi-GPU with torchrun.

    Every other option is a field of the training config (config.TrainConfig), with its default there."""
    from .train.config import TrainConfig, check_run_folder, config_from_toml, config_to_toml
    from .train.loop import train as run_training

    if resume is not None:
        if not (resume / "config.toml").is_file():
            raise MdeblurError(f"{resume}: not a run directory (no config.toml)")
        given = [f"--{k.replace('_', '-')}" for k, v in options.items() if v is not None
                 and k not in ("iters", "device", "threads")] + ["DATASET"] * (dataset is not None) + \
            ["--config"] * (config is not None) + ["--no-oa"] * no_oa + ["--overwrite"] * overwrite
        if given:
            raise MdeblurError(f"--resume continues {resume} with its own config.toml: {', '.join(given)} cannot "
                               "change it (only --iters, --device and --threads can); start a new run with --init "
                               f"{resume / 'last.safetensors'} instead")
        cfg = config_from_toml(resume / "config.toml", {"out": str(resume), "device": options["device"],
                                                        "threads": options["threads"], "iters": options["iters"]})
        if print_config:
            print(config_to_toml(cfg), end="")
            return
    else:
        if dataset is None and config is None and not print_config:
            raise MdeblurError("train needs DATASET (a folder, or 'builtin'), --config FILE, --resume RUN_DIR or "
                               "--print-config")
        if options["epochs"] is not None and options["iters"] is not None:
            raise MdeblurError("give --iters or --epochs, not both")
        data = None if dataset in (None, "builtin") else str(Path(dataset).resolve())
        init = options["init"]
        if init is not None and Path(init).exists():  # a path, stored absolute like the data: the run's config
            init = str(Path(init).resolve())          # then works from any folder (a shipped name stays a name)
        overrides = {**options, "data": data, "init": init, "use_oa": False if no_oa else None}
        cfg = (config_from_toml(config, overrides) if config else
               TrainConfig(**{k: v for k, v in overrides.items() if v is not None}))
        if dataset == "builtin":
            cfg.data = None
        if cfg.init is not None and (options["preset"] is not None or no_oa):
            raise MdeblurError(f"--init {cfg.init}: fine-tuning keeps the network the file holds; drop "
                               f"{'--preset' if options['preset'] is not None else '--no-oa'}")
        if print_config:  # the config this command would run, with --config and the options applied
            note = ("# model, preset, use_oa and init_sha256 are taken from the init file when the run starts\n"
                    if cfg.init is not None else "")
            print(note + config_to_toml(cfg), end="")
            return
        init, model = options["init"], options["model"]
        if init is not None and model is not None:
            from .weights import read_metadata

            arch = read_metadata(init)["arch"]
            if arch != model:
                raise MdeblurError(f"--init {init} holds {arch} weights but --model says {model}; drop --model "
                                   "(fine-tuning keeps the architecture of --init)")
        check_run_folder(Path(cfg.out), cfg.data, overwrite)
    try:
        run_training(cfg, console=console, resume=resume is not None)
    except KeyboardInterrupt as exc:
        console.print(f"[yellow]interrupted:[/yellow] {exc}. Resume with: mdeblur train --resume {cfg.out}")
        raise typer.Exit(getattr(exc, "exit_code", 130)) from None


def _config_options(command) -> None:
    """Give `command` one --option per config.OPTION_HELP field: its type from TrainConfig (None: not given),
    its help with the dataclass's default, so neither is written twice."""
    import dataclasses
    import inspect
    import typing

    from .train.config import OPTION_HELP, TrainConfig

    hints = typing.get_type_hints(TrainConfig)
    defaults = {f.name: f.default for f in dataclasses.fields(TrainConfig)}  # not TrainConfig(): no torch import
    fixed = [q for q in inspect.signature(command, eval_str=True).parameters.values() if q.kind != q.VAR_KEYWORD]
    added = []
    for name, text in OPTION_HELP.items():
        base = next(t for t in (*typing.get_args(hints[name]), hints[name]) if t is not type(None))
        default = defaults[name]
        option = typer.Option(help=text + (f" \\[default: {default}]" if default is not None else ""))  # \\[: not markup
        added.append(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None,
                                       annotation=Annotated[base | None, option]))
    params = [q.replace(kind=inspect.Parameter.KEYWORD_ONLY) for q in fixed[1:]]
    command.__signature__ = inspect.Signature([fixed[0], *params, *added], return_annotation=None)
    command.__annotations__ = {q.name: q.annotation for q in command.__signature__.parameters.values()}


_config_options(train)


@app.command(epilog="Examples:\n\n  mdeblur restore in.tif -o out.png\n\n  mdeblur restore cells.ome.tif --out-dir restored/          # -> restored/cells_x2.ome.tif, pixel size halved\n\n  mdeblur restore scans/ --recursive --out-dir restored/ --skip-existing\n\n  mdeblur restore stack.tif -o out.tif --axes ZYX --channels independent\n\n  mdeblur restore 'slides/*.png' --out-dir out/ --weights unet-sr-x2 --device cuda --precision bf16\n\n  mdeblur restore folder/ --out-dir r/ --trust --report r/report.json")
def restore(
    inputs: Annotated[list[str], typer.Argument(help="Image files, folders or glob patterns.")],
    output: Annotated[Path | None, typer.Option("-o", "--output", help="Output file (one input only).")] = None,
    out_dir: Annotated[Path | None, typer.Option(help="Output folder for one or many inputs.")] = None,
    weights: Annotated[str, typer.Option(help="Shipped model name or .safetensors path.")] = "mdeblurgan-x2",
    recursive: Annotated[bool, typer.Option(help="Descend into sub-folders of folder inputs.")] = False,
    tile: Annotated[int, typer.Option(help="Largest tile side in low-res pixels (at least 64); windows are balanced over the image. Windows of 256-512 measured within 4% of each other on CPU (benchmarks/restore_speed.py --tiles).")] = 320,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda, cuda:N or mps.")] = "auto",
    precision: Annotated[str, typer.Option(help="fp32, or fp16/bf16 on CUDA.")] = "fp32",
    suffix: Annotated[str, typer.Option(help="Added to the file name in --out-dir.")] = "_x2",
    overwrite: Annotated[bool, typer.Option(help="Replace existing output files.")] = False,
    skip_existing: Annotated[bool, typer.Option("--skip-existing", help="Skip inputs whose output exists: resumes an interrupted batch.")] = False,
    axes: Annotated[str | None, typer.Option(help="Override the file's axes: YX, CYX, YXC, ZYX, TZCYX, YXS (samples)... Only Y and X are restored; the rest are iterated.")] = None,
    max_pixels: Annotated[int | None, typer.Option(help="Refuse images of more pixels than this (every plane counted, channels not), read from the header before decoding. \\[default: what this machine's memory can restore, ~200 bytes per pixel]")] = None,
    debug: Annotated[bool, typer.Option("--debug", help="Show the traceback of unexpected errors instead of a one-line report.")] = False,
    channels: Annotated[str, typer.Option(help="auto (rgb for 8-bit images declared RGB: PNG/JPEG colour, TIFF photometric RGB; else independent), rgb (colour mixed: brightfield, histology) or independent (each channel alone: fluorescence).")] = "auto",
    self_ensemble: Annotated[bool, typer.Option("--self-ensemble", help="Average over the 8 flips/quarter turns: 8x slower; measured +0.3 dB for the shipped model.")] = False,
    normalize: Annotated[str, typer.Option(help="Intensity mapping before the network, undone after: auto (8-bit: range; 16-bit and float: percentile), percentile, range or none.")] = "auto",
    percentiles: Annotated[str | None, typer.Option(help="LO,HI percentiles for --normalize percentile. \\[default: the model's own, 0.1,99.9]")] = None,
    trust: Annotated[bool, typer.Option("--trust", help="Also write NAME_trust.tif: the predicted error (standard deviation, output units) of every pixel, and say per image whether it is suspect of invented detail. About 10x the restore's time.")] = False,
    report: Annotated[Path | None, typer.Option(help="Write a JSON report: one record per input (output, error, and with --trust the map and its summary).")] = None,
    fail_on_suspect: Annotated[bool, typer.Option("--fail-on-suspect", help="With --trust: exit 3 if any image is suspect (for pipelines).")] = False,
    cluster: Annotated[str | None, typer.Option(help="Run on Dask: 'local' (a LocalCluster on this machine) or a scheduler address such as tcp://head:8786. One task per file; one huge gray plane to .ome.zarr is spread over the workers. Needs the distributed extra.")] = None,
    workers: Annotated[int | None, typer.Option(help="--cluster local: worker processes. \\[default: cores / threads]")] = None,
    threads_per_worker: Annotated[int | None, typer.Option(help="--cluster local: threads per worker. \\[default: 1]")] = None,
) -> None:
    """Deblur and super-resolve images x2 (any size; tiled, seamless)."""
    from .formats.images import atomic_write
    from .formats.paths import check_folder_path
    from .scale.batch import RestoreJob, restore_files

    job = RestoreJob(inputs=inputs, output=output, out_dir=out_dir, weights=weights, recursive=recursive,
                     tile=tile, device=device, precision=precision, suffix=suffix, overwrite=overwrite,
                     skip_existing=skip_existing, self_ensemble=self_ensemble, normalize=normalize,
                     percentiles=_percentiles(percentiles), axes=axes, channels=channels, max_pixels=max_pixels,
                     debug=debug, trust=trust, cluster=cluster, workers=workers,
                     threads_per_worker=threads_per_worker)
    if fail_on_suspect and not trust:
        raise MdeblurError("--fail-on-suspect needs --trust (it acts on the trust maps' verdicts)")
    if report is not None:
        check_folder_path(report.parent, "the folder of --report")
        if report.is_dir():
            raise MdeblurError(f"--report {report}: is a folder; give a file such as {report / 'report.json'}")
    records: list = []
    failures, total = restore_files(job, console, records)
    if report is not None:
        import json

        summary = {"inputs": len(records), "failed": failures, "skipped": sum("skipped" in r for r in records),
                   "suspect": sum(bool(r.get("suspect")) for r in records), "records": records}
        atomic_write(report, lambda tmp: Path(tmp).write_text(json.dumps(summary, indent=2) + "\n"))
    if failures:
        if total > 1:
            console.print(f"[red]{failures} of {total} inputs failed[/red]")
        raise typer.Exit(2)
    if fail_on_suspect and any(r.get("suspect") for r in records):
        raise typer.Exit(3)


@app.command(epilog="Examples:\n\n  mdeblur benchmark --dataset reserved\n\n  mdeblur benchmark --dataset fire --json fire.json --markdown fire.md\n\n  mdeblur benchmark --dataset my_pairs/ --psf gaussian:1.2 --methods bicubic,rl-sr,mdeblurgan")
def benchmark(
    dataset: Annotated[str, typer.Option(help="reserved, fire, micro, pinecones, or a folder (lr/+hr/ pairs or HR images).")] = "reserved",
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
    trust: Annotated[bool, typer.Option("--trust", help="Instead of PSNR/SSIM: does the trust map of --weights predict the error? Ranking against the gradient baseline, coverage, and detection of a planted hallucinating model, at 8-bit, JPEG q90 and Poisson input.")] = False,
) -> None:
    """PSNR/SSIM of bicubic, RL-deconvolution + SR, U-Net + SR and M-Deblurgan on one dataset."""
    import json

    from rich.progress import Progress

    from .data.eval import load_eval_set
    from .device import resolve_device
    from .evaluate import benchmark as bm
    from .evaluate import figures
    from .formats.paths import check_new_file
    from .weights import load_model

    for option, value in (("--limit", limit), ("--figure-images", figure_images), ("--rl-iters", rl_iters)):
        if value is not None and value < 1:
            raise MdeblurError(f"{option} {value}: must be 1 or more")
    if not (sigma > 0 and sigma < 1e3):
        raise MdeblurError(f"--sigma {sigma:g}: a blur sigma in low-res pixels must be positive")
    outputs = {"--json": json_out, "--csv": csv_out, "--markdown": markdown, "--figure": figure,
               "--plot-params": plot_params}
    for option, value in outputs.items():
        check_new_file(value, overwrite, option)
    if plot_params is not None:
        figures.require_matplotlib()  # before any output is written
    if robustness and input_depth is not None:
        raise MdeblurError("--robustness runs every input condition; drop --input-depth")
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


def _benchmark_trust(evalset, dataset: str, model, json_out: Path | None, markdown: Path | None) -> None:
    """mdeblur benchmark --trust: the calibration and detection tables (trust_bench.py)."""
    import json

    from rich.progress import Progress

    from .evaluate import trust_bench as tb
    from .formats.images import atomic_write

    n = len(evalset.pairs)
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("trust maps", total=n * len(tb.KINDS) + n + 1)
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

    from .evaluate import benchmark as bm

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


@app.command(epilog="Examples:\n\n  mdeblur export -o mdeblurgan-x2.onnx\n\n  mdeblur export --weights runs/mine/best.safetensors -o mine.pt\n\n  mdeblur export --format bioimageio -o mdeblurgan-x2.zip      # BioImage Model Zoo package")
def export(
    output: Annotated[Path, typer.Option("-o", "--output", help="File to write: .onnx, .pt, or .zip (bioimageio).")],
    weights: Annotated[str, typer.Option(help="Shipped model name or .safetensors path.")] = "mdeblurgan-x2",
    fmt: Annotated[str | None, typer.Option("--format", help="onnx (needs the onnx extra), torchscript, or bioimageio (a BioImage Model Zoo "
                                                          "package: rdf.yaml, ONNX and TorchScript weights, test tensors, card). \\[default: from the file name]")] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing file.")] = False,
) -> None:
    """Export the generator for other runtimes (dynamic height and width on the network's grid; normalised input)."""
    from .export.networks import export as run_export
    from .weights import load_model

    info = run_export(load_model(weights), fmt, output, overwrite, name=Path(weights).stem)
    lo, hi = info["normalization"]["percentiles"]
    console.print(f"wrote {output} ({info['format']}, {info['arch']} x{info['scale']}; input {info['input']}, "
                  f"normalised: its {lo:g} and {hi:g} percentiles to 0 and 1"
                  f"{' (the package declares this preprocessing)' if info['format'] == 'bioimageio' else ''}; "
                  "output in the same normalised units: map it back with the input's percentiles)",
                  markup=False, highlight=False, soft_wrap=True)


runs_app = typer.Typer(help="Training runs: compare their validation curves.", no_args_is_help=True)
app.add_typer(runs_app, name="runs")


@runs_app.command("compare", epilog="Example:\n\n  mdeblur runs compare runs/a runs/b -o curves.png")
def runs_compare(
    runs: Annotated[list[Path], typer.Argument(help="Run directories (each with its metrics.csv).")],
    output: Annotated[Path, typer.Option("-o", "--output", help="The PNG to write.")] = Path("runs/training_curve.png"),
    overwrite: Annotated[bool, typer.Option(help="Replace an existing --output.")] = False,
) -> None:
    """Plot the validation PSNR of training runs against their epochs, one curve per run."""
    from .evaluate.figures import training_curve
    from .formats.paths import check_new_file
    from .train.runlog import read_metrics

    check_new_file(output, overwrite, "--output")
    curves = {str(r): read_metrics(r) for r in runs}
    output.parent.mkdir(parents=True, exist_ok=True)
    training_curve(curves, output)
    console.print(f"wrote {output}", markup=False, highlight=False)


datasets_app = typer.Typer(help="Named datasets: what is found where.", no_args_is_help=True)
app.add_typer(datasets_app, name="datasets")


@datasets_app.command("list")
def datasets_list(
    data_root: Annotated[Path | None, typer.Option(help="Where real data sets live (else $MDEBLUR_DATA, user data dir).")] = None,
) -> None:
    """Show each named dataset: real data found or stand-in, where, and how many images."""
    from rich.table import Table

    from .data.eval import data_roots, list_datasets

    table = Table(title="searched: " + ", ".join(str(r) for r in data_roots(data_root)), title_justify="left")
    for col in ("dataset", "data", "where", "images"):
        table.add_column(col)
    for d in list_datasets(data_root):
        table.add_row(d["name"], "real" if d["real"] else f"STAND-IN ({d['stand_in']})", d["where"] or "-",
                      str(d["images"]))
    Console().print(table)


@app.command(epilog="Examples:\n\n  mdeblur simulate my_x10_images/ sim/ --defocus 30:120\n\n  mdeblur simulate plant sim/ --count 50\n\n  mdeblur simulate --explain")
def simulate(
    source: Annotated[str | None, typer.Argument(help="Folder of in-focus HR (x10) images, or plant|fundus|fibres.")] = None,
    out_dir: Annotated[Path | None, typer.Argument(help="Output folder: lr/, hr/ and meta/.")] = None,
    objective_lr: Annotated[str, typer.Option(help="Low-res objective, MAG/NA.")] = "5x/0.12",
    objective_hr: Annotated[str, typer.Option(help="High-res objective, MAG/NA.")] = "10x/0.25",
    camera_pixel: Annotated[float, typer.Option(help="Camera pixel size in um.")] = 6.5,
    defocus: Annotated[str, typer.Option(help="Defocus range |dz| in um, LO:HI.")] = "30:120",
    noise: Annotated[str, typer.Option(help="Photons at white (Poisson) or 'none'.")] = "1000",
    read_noise: Annotated[float, typer.Option(help="Gaussian read noise (fraction of white).")] = 0.005,
    count: Annotated[int, typer.Option(help="Procedural specimens to make.")] = 20,
    size: Annotated[int, typer.Option(help="Procedural specimen side in HR px.")] = 512,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    explain: Annotated[bool, typer.Option("--explain", help="Print the optics (pixel sizes, depth of field) and exit.")] = False,
    overwrite: Annotated[bool, typer.Option(help="Write into a folder that already holds a dataset.")] = False,
) -> None:
    """Make a paired x5-defocus/x10 dataset with the microscope optics simulator, ready for `mdeblur train`."""
    from .data.simulate import SimulationSpec, parse_objective, write_pairs

    try:
        lo, _, hi = defocus.partition(":")
        spec = SimulationSpec(parse_objective(objective_lr, camera_pixel), parse_objective(objective_hr, camera_pixel),
                              (float(lo), float(hi or lo)), None if noise == "none" else float(noise), read_noise)
    except ValueError:
        raise MdeblurError(f"bad optics option (objective '{objective_lr}'/'{objective_hr}', defocus '{defocus}', "
                           f"noise '{noise}')") from None
    if explain:
        from .data.simulate import explain as explain_lines

        for line in explain_lines(spec):
            print(line)
        return
    if source is None or out_dir is None:
        fail(MdeblurError("simulate needs SOURCE and OUT_DIR (or --explain)"))
    import functools

    from rich.markup import escape

    from .data import TRAIN_SEED_LIMIT, read_rgb
    from .data.specimens import SPECIMENS
    from .formats.images import list_images

    inputs: tuple = ()
    if source in SPECIMENS:
        if count < 1 or not 64 <= size <= 8192:
            raise MdeblurError(f"--count {count} --size {size}: need at least 1 specimen of 64 to 8192 px")
        if seed < 0 or seed * count >= TRAIN_SEED_LIMIT:
            raise MdeblurError(f"--seed {seed}: procedural training seeds must lie in 0..{TRAIN_SEED_LIMIT // count - 1}")
        items = ((f"{source}_{seed * count + i:06d}", functools.partial(SPECIMENS[source], size, seed * count + i))
                 for i in range(count))
    else:
        files = list_images(Path(source), recursive=True) if Path(source).is_dir() else []
        if not files:
            raise MdeblurError(f"{source}: not a folder of images nor one of {', '.join(SPECIMENS)}")
        inputs = (Path(source),)
        items = ((f.stem, functools.partial(read_rgb, f)) for f in files)
    records, errors = write_pairs(items, out_dir, spec, seed, overwrite, inputs)
    for err in errors:
        console.print(f"[red]error:[/red] {escape(err)} (skipped)", highlight=False, soft_wrap=True)
    console.print(f"wrote {len(records)} pairs to {out_dir} (lr/, hr/, meta/)", highlight=False, markup=False,
                  soft_wrap=True)
    if errors:
        raise typer.Exit(2)


pairs_app = typer.Typer(help="Build training pairs from real x5/x10 images.", no_args_is_help=True)
app.add_typer(pairs_app, name="pairs")


@pairs_app.command("align", epilog="Example:\n\n  mdeblur pairs align raw/x5 raw/x10 pairs/ && mdeblur train pairs/")
def pairs_align(
    lr_dir: Annotated[Path, typer.Argument(help="Low-res (x5) images.")],
    hr_dir: Annotated[Path, typer.Argument(help="High-res (x10) images of the same fields, same file stems.")],
    out_dir: Annotated[Path, typer.Argument(help="Output: lr/, hr/ and align.json.")],
    scale: Annotated[int, typer.Option(help="Magnification ratio.")] = 2,
    overwrite: Annotated[bool, typer.Option(help="Replace earlier outputs in OUT (the inputs are never written).")] = False,
) -> None:
    """Register x5/x10 pairs (scale, shift, small rotation), crop to the common field, normalise exposure."""
    from rich.markup import escape

    from .data.registration import align_folder

    report = align_folder(lr_dir, hr_dir, out_dir, scale, overwrite)
    for r in report:
        if r["status"] == "aligned":
            console.print(f"{escape(r['stem'])}: aligned, rotation {r['rotation_deg']:.2f} deg, shift "
                          f"({r['translation_lr_px'][0]:.2f}, {r['translation_lr_px'][1]:.2f}) LR px, "
                          f"correlation {r['correlation']:.3f}, residual RMS {r['residual_rms']:.4f}", highlight=False)
        else:
            colour = "red" if r["status"] == "error" else "yellow"
            console.print(f"[{colour}]{escape(r['stem'])}: {r['status']}[/{colour}] ({escape(r['reason'])})",
                          highlight=False, soft_wrap=True)
    n = sum(r["status"] == "aligned" for r in report)
    errors = sum(r["status"] == "error" for r in report)
    console.print(f"{n} of {len(report)} pairs aligned into {out_dir}; report in {out_dir / 'align.json'}"
                  + (f"; {errors} unreadable" if errors else ""), highlight=False, markup=False, soft_wrap=True)
    if n == 0 or errors:
        raise typer.Exit(2)
