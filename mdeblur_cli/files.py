"""Restoring files: input expansion, output naming, overwrite rules, per-file errors."""

from __future__ import annotations

import glob
from dataclasses import dataclass
from pathlib import Path

import torch
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

from .device import resolve_device, resolve_precision
from .distributed import env_info
from .errors import MdeblurError
from .io import IMAGE_EXT, list_images, read_image, write_image
from .models import SelfEnsemble
from .normalize import MODES, Normalization
from .restore import model_percentiles, page_normalization, restore_array
from .weights import load_model


@dataclass
class RestoreJob:
    """What `mdeblur restore` was asked to do."""

    inputs: list[str]
    output: Path | None = None
    out_dir: Path | None = None
    weights: str = "mdeblurgan-x2"
    recursive: bool = False
    tile: int = 256
    device: str = "auto"
    precision: str = "fp32"
    suffix: str = "_x2"
    overwrite: bool = False
    self_ensemble: bool = False
    normalize: str = "auto"
    percentiles: tuple[float, float] | None = None  # None: the model's own


def expand_inputs(inputs: list[str], recursive: bool) -> list[Path]:
    """Files, folders and globs to a list of files; unknown paths raise."""
    files: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            found = list_images(p, recursive)
            if not found:
                raise MdeblurError(f"{p}: no images in folder")
            files += found
        elif p.exists():
            files.append(p)
        elif any(ch in item for ch in "*?["):
            found = sorted(Path(f) for f in glob.glob(item, recursive=recursive) if Path(f).suffix.lower() in IMAGE_EXT)
            if not found:
                raise MdeblurError(f"{item}: no images match")
            files += found
        else:
            raise MdeblurError(f"{p}: no such file or folder")
    return list(dict.fromkeys(files))


def plan_outputs(job: RestoreJob, files: list[Path]) -> list[tuple[Path, Path]]:
    """(input, output) pairs, refusing to overwrite inputs or, without --overwrite, existing files."""
    if (job.output is None) == (job.out_dir is None):
        raise MdeblurError("give exactly one of -o/--output FILE or --out-dir DIR")
    if job.output is not None and len(files) != 1:
        raise MdeblurError(f"-o {job.output}: {len(files)} inputs need --out-dir")
    if job.output is not None:
        if job.output.suffix.lower() not in IMAGE_EXT:
            raise MdeblurError(f"{job.output}: unsupported output type {job.output.suffix or '(none)'}")
        plan = [(files[0], job.output)]
    else:
        plan = [(f, job.out_dir / f"{f.stem}{job.suffix}{f.suffix}") for f in files]
    inputs = {f.resolve() for f in files}
    for _, dst in plan:
        if dst.resolve() in inputs:
            raise MdeblurError(f"{dst}: refusing to write over an input")
        if dst.exists() and not job.overwrite:
            raise MdeblurError(f"{dst}: exists (use --overwrite)")
    return plan


def _describe(norms: list[Normalization], percentiles: tuple[float, float]) -> str:
    """The normalisation used, for the log line (the first page's, and how many pages)."""
    n = norms[0]
    what = f"percentiles {percentiles[0]:g}-{percentiles[1]:g}%" if n.mode == "percentile" else n.mode
    more = f"; page 1 of {len(norms)}, each page mapped by its own" if len(norms) > 1 else ""
    return f"{what} [{n.lo:.6g}, {n.hi:.6g}] -> [0, 1], inverted after{more}"


def restore_files(job: RestoreJob, console: Console) -> tuple[int, int]:
    """Restore every input; returns (inputs that failed, inputs in all)."""
    files = expand_inputs(job.inputs, job.recursive)
    plan = plan_outputs(job, files)
    dinfo = env_info()
    if dinfo.enabled:  # under torchrun: each process restores its share of the files
        plan = plan[dinfo.rank :: dinfo.world]
    device = resolve_device(job.device)
    if dinfo.enabled and device.type == "cuda" and device.index is None:
        device = torch.device("cuda", dinfo.local_rank % torch.cuda.device_count())
    resolve_precision(job.precision, device)
    if job.normalize not in MODES:
        raise MdeblurError(f"--normalize {job.normalize}: use one of {', '.join(MODES)}")
    if job.percentiles is not None and job.normalize in ("range", "none"):
        raise MdeblurError(f"--percentiles has no effect with --normalize {job.normalize}; use percentile or auto")
    model = load_model(job.weights, device)
    percentiles = job.percentiles or model_percentiles(model)
    if job.self_ensemble:
        model = SelfEnsemble(model).eval()
    failures = 0
    columns = [TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
               TimeRemainingColumn()]
    with Progress(*columns, console=console, transient=True) as progress:
        files_task = progress.add_task("images", total=len(plan), visible=len(plan) > 1)
        tiles_task = progress.add_task("tiles", total=None, visible=False)

        def on_tile(done: int, total: int) -> None:
            progress.update(tiles_task, completed=done, total=total, visible=total > 1)

        for src, dst in plan:
            try:
                image = read_image(src)
                pages, norms = [], []
                for page in image.pages:  # percentiles per page, over the whole page (every tile alike)
                    norm = page_normalization(page, job.normalize, percentiles)
                    pages.append(restore_array(page, model, tile=job.tile, device=device, precision=job.precision,
                                               progress=on_tile, normalize=norm))
                    norms.append(norm)
                write_image(dst, pages)
                console.print(f"{src} -> {dst} (intensities: {_describe(norms, percentiles)})", highlight=False, soft_wrap=True,
                              markup=False)
            except MdeblurError as exc:
                failures += 1
                console.print(f"[red]error:[/red] {exc}", highlight=False, soft_wrap=True)
            progress.update(files_task, advance=1)
            progress.update(tiles_task, visible=False)
    return failures, len(plan)
