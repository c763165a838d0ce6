"""`mdeblur train`, `mdeblur adapt` and `mdeblur runs`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..errors import MdeblurError
from .app import app, console, parse_range_and_noise


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
    from ..train.config import TrainConfig, check_run_folder, config_from_toml, config_to_toml

    if resume is not None:
        if not (resume / "config.toml").is_file():
            raise MdeblurError(f"{resume}: not a run directory (no config.toml)")
        cfg = config_from_toml(resume / "config.toml", {"out": str(resume), "device": options["device"],
                                                        "threads": options["threads"], "iters": options["iters"]})
        _check_resume_options(resume, cfg, options, dataset, config, no_oa, overwrite)
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
            from ..weights import read_metadata

            arch = read_metadata(init)["arch"]
            if arch != model:
                raise MdeblurError(f"--init {init} holds {arch} weights but --model says {model}; drop --model "
                                   "(fine-tuning keeps the architecture of --init)")
        check_run_folder(Path(cfg.out), cfg.data, overwrite)
    from ..train.loop import train as run_training

    try:
        run_training(cfg, console=console, resume=resume is not None)
    except KeyboardInterrupt as exc:
        console.print(f"[yellow]interrupted:[/yellow] {exc}. Resume with: mdeblur train --resume {cfg.out}")
        raise typer.Exit(getattr(exc, "exit_code", 130)) from None


def _check_resume_options(resume: Path, cfg, options: dict, dataset, config, no_oa: bool, overwrite: bool) -> None:
    """--resume takes options equal to the run's own; one that differs is named with both values (only --iters,
    --device and --threads may change)."""
    run_cfg = vars(cfg)
    differ = []
    for k, v in options.items():
        if v is None or k in ("iters", "device", "threads"):
            continue
        own = run_cfg.get(k)
        if k == "init" and own is not None and Path(v).exists():
            v = str(Path(v).resolve())
        if isinstance(own, tuple | list) and isinstance(v, tuple | list):
            own, v = list(own), list(v)
        if v != own:
            differ.append(f"--{k.replace('_', '-')} {v} (the run has {own})")
    if dataset is not None:
        data = None if dataset == "builtin" else str(Path(dataset).resolve())
        if data != cfg.data:
            differ.append(f"DATASET {dataset} (the run has {cfg.data or 'builtin'})")
    if no_oa and cfg.use_oa:
        differ.append("--no-oa (the run has the optimal approximation module)")
    differ += ["--config (the run has its own config.toml)"] * (config is not None) + ["--overwrite"] * overwrite
    if differ:
        raise MdeblurError(f"--resume continues {resume} with its own config: {'; '.join(differ)} would change it "
                           "(only --iters, --device and --threads can); start a new run with --init "
                           f"{resume / 'last.safetensors'} instead")


def _config_options(command) -> None:
    """Give `command` one --option per config.OPTION_HELP field: its type from TrainConfig (None: not given),
    its help with the dataclass's default, so neither is written twice."""
    import dataclasses
    import inspect
    import typing

    from ..train.config import OPTION_HELP, TrainConfig

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

runs_app = typer.Typer(help="Training runs: compare their validation curves.", no_args_is_help=True)
app.add_typer(runs_app, name="runs")


@runs_app.command("compare", epilog="Example:\n\n  mdeblur runs compare runs/a runs/b -o curves.png")
def runs_compare(
    runs: Annotated[list[Path], typer.Argument(help="Run directories (each with its metrics.csv).")],
    output: Annotated[Path, typer.Option("-o", "--output", help="The PNG to write.")] = Path("runs/training_curve.png"),
    overwrite: Annotated[bool, typer.Option(help="Replace an existing --output.")] = False,
) -> None:
    """Plot the validation PSNR of training runs against their epochs, one curve per run."""
    from ..evaluate.figures import training_curve
    from ..formats.paths import check_new_file
    from ..train.runlog import read_metrics

    check_new_file(output, overwrite, "--output")
    curves = {str(r): read_metrics(r) for r in runs}
    output.parent.mkdir(parents=True, exist_ok=True)
    training_curve(curves, output)
    console.print(f"wrote {output}", markup=False, highlight=False)


@app.command(epilog="Examples:\n\n  mdeblur adapt infocus/ --out runs/scope1 --psf beads.tif --minutes 15\n\n  mdeblur adapt "
             "infocus/ --out runs/scope1 --objective-lr 5x/0.12 --defocus 40:60 --like blurry/\n\n  mdeblur adapt "
             "--specimens plant --out runs/plant --minutes 5\n\n  mdeblur adapt --resume runs/scope1\n\n  "
             "mdeblur restore blurry/ --out-dir restored/ --weights runs/scope1")
def adapt(
    infocus: Annotated[Path | None, typer.Argument(help="Well-focused images of your own specimens (at the sharp "
                                                        "objective's sampling).")] = None,
    out: Annotated[Path | None, typer.Option(help="Run folder: best.safetensors, report.md/json/png.")] = None,
    specimens: Annotated[str | None, typer.Option(help="plant, fibres or fundus: built-in specimens instead of "
                                                       "INFOCUS.")] = None,
    psf: Annotated[Path | None, typer.Option(help="Measured PSF of the blurry objective: a 2-D image or a 3-D bead "
                                                  "stack (its planes give the defocus range).")] = None,
    psf_pixel_size: Annotated[float | None, typer.Option(help="The PSF's pixel size in um (else its OME/ImageJ "
                                                               "calibration).")] = None,
    objective_lr: Annotated[str, typer.Option(help="Blurry (low-res) objective, MAG/NA.")] = "5x/0.12",
    objective_hr: Annotated[str, typer.Option(help="Sharp (high-res) objective, MAG/NA: twice the magnification.")] = "10x/0.25",
    camera_pixel: Annotated[float, typer.Option(help="Camera pixel size in um.")] = 6.5,
    defocus: Annotated[str, typer.Option(help="Defocus range |dz| in um, LO:HI (ignored with --psf).")] = "40:60",
    noise: Annotated[str, typer.Option(help="Photons at white (Poisson) or 'none' (ignored with --like).")] = "2000",
    read_noise: Annotated[float, typer.Option(help="Gaussian read noise, fraction of white (ignored with --like).")] = 0.002,
    like: Annotated[Path | None, typer.Option(help="Your real blurry files: their noise, bit depth and intensity "
                                                   "range are estimated and simulated.")] = None,
    minutes: Annotated[float, typer.Option(help="Time for the whole command: simulation, fitting and report.")] = 15.0,
    init: Annotated[str, typer.Option(help="Weights to start from (shipped name, file or run folder).")] = "mdeblurgan-x2",
    device: Annotated[str, typer.Option(help="auto, cpu, cuda, cuda:N or mps.")] = "auto",
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    resume: Annotated[Path | None, typer.Option(help="Continue the adapt run in this folder.")] = None,
) -> None:
    """Fit the model to your microscope: simulate pairs from in-focus images through its optics, fine-tune, and
    report on held-out regions against bicubic, Richardson-Lucy and the starting model."""
    from ..train.adapt import AdaptSpec
    from ..train.adapt import adapt as run_adapt

    if resume is not None:
        run_adapt(AdaptSpec(out=str(resume)), console, resume=True)
        return
    if out is None:
        raise MdeblurError("adapt needs --out RUN (or --resume RUN)")
    dz, photons = parse_range_and_noise(defocus, noise)
    def absolute(p: Path | None) -> str | None:  # adapt.json must let --resume work from any folder
        return None if p is None else str(Path(p).resolve())

    spec = AdaptSpec(out=str(out), infocus=absolute(infocus), specimens=specimens,
                     psf=absolute(psf), psf_pixel_um=psf_pixel_size, objective_lr=objective_lr,
                     objective_hr=objective_hr, camera_pixel_um=camera_pixel, defocus_um=dz, photons=photons,
                     read_sigma=read_noise, like=absolute(like), minutes=minutes, init=init,
                     device=device, seed=seed)
    run_adapt(spec, console)
