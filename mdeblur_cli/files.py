"""Restoring files: input expansion, output naming, collisions, skip/overwrite rules, per-file errors, metadata."""

from __future__ import annotations

import glob
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from torch import nn

from . import stream
from .device import resolve_device, resolve_precision
from .distributed import env_info
from .errors import MdeblurError
from .io import atomic_write, is_image, list_images
from .models import SelfEnsemble
from .normalize import MODES, Normalization
from .paths import check_folder_path
from .restore import (
    CHANNEL_MODES,
    DEFAULT_TILE,
        MIN_TILE,
    choose_channels,
    model_percentiles,
    nonfinite_mask,
    restore_stack,
)
from .stacks import WRITE_EXT, Series, check_writable, lost_metadata, read_series, split_name, write_series
from .weights import load_model


@dataclass
class RestoreJob:
    """What `mdeblur restore` was asked to do."""

    inputs: list[str]
    output: Path | None = None
    out_dir: Path | None = None
    weights: str = "mdeblurgan-x2"
    recursive: bool = False
    tile: int = DEFAULT_TILE
    device: str = "auto"
    precision: str = "fp32"
    suffix: str = "_x2"
    overwrite: bool = False
    skip_existing: bool = False
    self_ensemble: bool = False
    normalize: str = "auto"
    percentiles: tuple[float, float] | None = None  # None: the model's own
    axes: str | None = None  # None: from the file (OME, ImageJ, TIFF layout)
    channels: str = "auto"
    max_pixels: int | None = None  # None: what this machine's memory can restore
    debug: bool = False  # unexpected errors raise with their traceback instead of a one-line report


@dataclass
class FileResult:
    """What restoring one file did: per series, the channel mode; the intensity mappings; lost calibration."""

    modes: list[str] = field(default_factory=list)
    norms: list[Normalization] = field(default_factory=list)
    lost: dict[str, str] = field(default_factory=dict)  # calibration items of the input the output cannot keep
    nonfinite: int = 0  # NaN/Inf samples of the input: filled for the network, NaN again in the output
    streamed: bool = False  # restored band by band from a memory map into a tiled BigTIFF


def _inside(path: Path, folder: Path | None) -> bool:
    return folder is not None and path.resolve().is_relative_to(folder.resolve())


def expand_inputs(inputs: list[str], recursive: bool, exclude: Path | None = None) -> list[tuple[Path, Path]]:
    """Files, folders and globs to (file, path relative to its folder input); unknown paths raise.

    Folder scans leave out `exclude` (the output folder, when it lies inside an input folder).
    """
    files: list[tuple[Path, Path]] = []
    for item in inputs:
        p = Path(item)
        if is_image(p):  # a file, or an OME-Zarr folder
            files.append((p, Path(p.name)))
        elif p.is_dir():
            listed = list_images(p, recursive)
            found = [f for f in listed if not _inside(f, exclude)]
            if not found:
                raise MdeblurError(f"{p}: no images in folder" + (
                    f" outside the output folder {exclude} (its contents are outputs, not inputs)" if listed else ""))
            files += [(f, f.relative_to(p)) for f in found]
        elif p.exists():
            files.append((p, Path(p.name)))  # read_series says what is wrong with it
        elif any(ch in item for ch in "*?["):
            found = sorted(Path(f) for f in glob.glob(item, recursive=recursive)
                           if is_image(Path(f)) and not _inside(Path(f), exclude))
            if not found:
                raise MdeblurError(f"{item}: no images match")
            files += [(f, Path(f.name)) for f in found]
        else:
            raise MdeblurError(f"{p}: no such file or folder")
    return list({f: (f, rel) for f, rel in files}.values())


def output_name(rel: Path, suffix: str) -> Path:
    """cells.tif -> cells_x2.tif; cells.ome.tif -> cells_x2.ome.tif; sub/a.png -> sub/a_x2.png."""
    stem, ext = split_name(rel)
    return rel.parent / f"{stem}{suffix}{ext}"


def plan_outputs(job: RestoreJob, files: list[tuple[Path, Path]]) -> tuple[list[tuple[Path, Path]], int]:
    """(input, output) pairs and how many were skipped as existing; refuses collisions and overwrites."""
    if job.output is None and job.out_dir is None:
        raise MdeblurError("give -o/--output FILE (one input) or --out-dir DIR, for example --out-dir restored/")
    if job.output is not None and job.out_dir is not None:
        raise MdeblurError("give either -o/--output FILE or --out-dir DIR, not both")
    if job.overwrite and job.skip_existing:
        raise MdeblurError("--overwrite and --skip-existing contradict each other; give one")
    for folder, option in ((job.out_dir, "--out-dir"), (job.output.parent if job.output else None, "the folder of -o")):
        if folder is not None:
            check_folder_path(folder, option)
    if job.output is not None and len(files) != 1:
        raise MdeblurError(f"-o {job.output}: {len(files)} inputs need --out-dir")
    if job.output is not None:
        if job.output.suffix.lower() not in WRITE_EXT:
            raise MdeblurError(f"{job.output}: unsupported output type {job.output.suffix or '(none)'} "
                               f"(use {', '.join(sorted(WRITE_EXT))}, or .ome.tif)")
        plan = [(files[0][0], job.output)]
    else:
        plan = [(f, job.out_dir / output_name(rel, job.suffix)) for f, rel in files]
    inputs = {f.resolve() for f, _ in files}
    seen: dict[Path, Path] = {}
    for src, dst in plan:
        key = dst.resolve()
        if key in inputs:
            raise MdeblurError(f"{dst}: refusing to write over an input")
        if key in seen:
            raise MdeblurError(f"{seen[key]} and {src} would both be written to {dst}; restore them into different "
                               "--out-dir folders, or give their folder with --recursive to keep sub-folders")
        seen[key] = src
    existing = [dst for _, dst in plan if dst.exists()]
    if existing and job.skip_existing:
        return [(s, d) for s, d in plan if not d.exists()], len(existing)
    if existing and not job.overwrite:
        raise MdeblurError(f"{existing[0]}: exists (use --overwrite to replace, or --skip-existing to resume)")
    return plan, 0


def restore_file(
    src: str | Path, dst: str | Path, model: nn.Module, axes: str | None = None, channels: str = "auto",
    normalize: str = "auto", percentiles: tuple[float, float] | None = None, tile: int = DEFAULT_TILE,
    device: torch.device | str = "cpu", precision: str = "fp32", progress=None, max_pixels: int | None = None,
) -> FileResult:
    """Restore one file into `dst` (atomically, replacing it if it exists), keeping axes, channels,
    calibration and OME/ImageJ metadata.

    The output format follows `dst`: .ome.tif gives OME-TIFF, .tif an ImageJ hyperstack for an ImageJ or OME
    input (else a TIFF with its axes), PNG/JPEG one 2-D image. What the format cannot keep is in `lost`.
    """
    src, dst = Path(src), Path(dst)
    if dst.resolve() == src.resolve():
        raise MdeblurError(f"{dst}: refusing to write over an input")
    check_folder_path(dst.parent, f"the folder of {dst}")
    result = FileResult()
    streamable = stream.probe(src, dst, axes, channels)
    if streamable is not None:  # a large plain TIFF: bounded memory, tiles straight into a tiled BigTIFF
        rgb, meta = streamable
        dev = resolve_device(device) if isinstance(device, str) else device
        dtype = resolve_precision(precision, dev)
        pct = percentiles or model_percentiles(model)
        try:
            atomic_write(dst, lambda tmp: result.norms.append(stream.write_streamed(
                src, tmp, model, rgb, normalize, pct, tile, dev, dtype, meta, progress)))
        except OSError as exc:
            raise MdeblurError(f"{dst}: cannot write ({exc.strerror or exc})") from None
        result.modes, result.streamed = ["rgb" if rgb else "independent"], True
        return result
    series = read_series(src, axes, max_pixels)
    for s in series:
        if s.data.dtype.kind == "f":
            bad = int(np.count_nonzero(nonfinite_mask(s.data)))
            if bad == s.data.size:
                raise MdeblurError(f"{src}: no finite pixels (every sample is NaN or Inf)")
            result.nonfinite += bad
    check_writable(dst, series)
    result.lost = lost_metadata(dst, series)
    out = []
    for s in series:
        try:
            mode = choose_channels(channels, s.channels - int(s.meta.alpha), s.data.dtype, s.meta.rgb)
        except MdeblurError as exc:
            raise MdeblurError(f"{src}: {exc}") from None
        data = restore_stack(s.data, s.axes, model, mode, s.meta.alpha, tile=tile, device=device, precision=precision,
                             progress=progress, normalize=normalize, percentiles=percentiles, norms=result.norms)
        meta = s.meta.scaled(model.scale)
        meta.ome.setdefault("Name", split_name(src)[0])  # the image's name in OME outputs
        out.append(Series(data, s.axes, meta))
        result.modes.append(mode)
    try:
        atomic_write(dst, lambda tmp: write_series(tmp, out))
    except OSError as exc:
        raise MdeblurError(f"{dst}: cannot write ({exc.strerror or exc})") from None
    return result


CHANNEL_HELP = {
    "rgb": "colour restored together (8-bit RGB, as the file declares it; --channels independent to change)",
    "independent": "each channel restored alone, none leaks into another (--channels rgb for colour images)",
}


def _describe(norms: list[Normalization], percentiles: tuple[float, float]) -> str:
    """The normalisation used, for the log line (the first mapping, and how many there were)."""
    n = norms[0]
    what = f"percentiles {percentiles[0]:g}-{percentiles[1]:g}%" if n.mode == "percentile" else n.mode
    more = f"; mapping 1 of {len(norms)}, one per plane and channel" if len(norms) > 1 else ""
    return f"{what} [{n.lo:.6g}, {n.hi:.6g}] -> [0, 1], inverted after{more}"


def _check_job(job: RestoreJob) -> None:
    if job.normalize not in MODES:
        raise MdeblurError(f"--normalize {job.normalize}: use one of {', '.join(MODES)}")
    if job.percentiles is not None and job.normalize in ("range", "none"):
        raise MdeblurError(f"--percentiles has no effect with --normalize {job.normalize}; use percentile or auto")
    if job.channels not in CHANNEL_MODES:
        raise MdeblurError(f"--channels {job.channels}: use one of {', '.join(CHANNEL_MODES)}")
    if job.max_pixels is not None and job.max_pixels < 1:
        raise MdeblurError(f"--max-pixels {job.max_pixels}: must be 1 or more")
    if job.tile < MIN_TILE:
        raise MdeblurError(f"--tile {job.tile}: use at least {MIN_TILE} (low-res pixels per tile side)")
    if job.axes is not None and not job.axes.strip():
        raise MdeblurError("--axes is empty: give letters such as YX, CYX, ZYX or TZCYX")
    if any(sep in job.suffix for sep in ("/", "\\")) or job.suffix in (".", ".."):
        raise MdeblurError(f"--suffix {job.suffix!r}: must not contain a path separator (outputs stay in --out-dir)")


def restore_files(job: RestoreJob, console: Console) -> tuple[int, int]:
    """Restore every input; returns (inputs that failed, inputs in all)."""
    _check_job(job)
    files = expand_inputs(job.inputs, job.recursive, exclude=job.out_dir)
    plan, skipped = plan_outputs(job, files)
    if skipped:
        console.print(f"skipping {skipped} input(s) whose output exists (--skip-existing)", highlight=False)
    dinfo = env_info()
    if dinfo.enabled:  # under torchrun: each process restores its share of the files
        plan = plan[dinfo.rank :: dinfo.world]
    device = resolve_device(job.device)
    if dinfo.enabled and device.type == "cuda" and device.index is None:
        device = torch.device("cuda", dinfo.local_rank % torch.cuda.device_count())
    resolve_precision(job.precision, device)
    model = load_model(job.weights, device)
    percentiles = job.percentiles or model_percentiles(model)
    if job.self_ensemble:
        model = SelfEnsemble(model).eval()
    failures, said = 0, set()
    columns = [TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
               TimeRemainingColumn()]
    with Progress(*columns, console=console, transient=True) as progress:
        files_task = progress.add_task("images", total=len(plan), visible=len(plan) > 1)
        tiles_task = progress.add_task("tiles", total=None, visible=False)

        def on_tile(done: int, total: int) -> None:
            progress.update(tiles_task, completed=done, total=total, visible=total > 1)

        for src, dst in plan:
            try:
                res = restore_file(src, dst, model, job.axes, job.channels, job.normalize, percentiles, job.tile,
                                   device, job.precision, on_tile, job.max_pixels)
                for mode in dict.fromkeys(res.modes):  # what each choice means, once per run
                    if mode not in said:
                        console.print(f"channels {mode}: {CHANNEL_HELP[mode]}", highlight=False, soft_wrap=True,
                                      markup=False)
                        said.add(mode)
                note = f"channels: {', '.join(dict.fromkeys(res.modes))}; intensities: {_describe(res.norms, percentiles)}"
                console.print(f"{src} -> {dst} ({note})", highlight=False, soft_wrap=True, markup=False)
                if res.lost and "lost" not in said:
                    items = "; ".join(f"{k} {v}" for k, v in res.lost.items())
                    once = " (said once per run)" if len(plan) > 1 else ""
                    console.print(f"warning: {dst} cannot keep the calibration of {src} ({items}); write .ome.tif to "
                                  f"keep it{once}", highlight=False, soft_wrap=True, markup=False)
                    said.add("lost")
                if res.nonfinite:
                    console.print(f"warning: {src}: {res.nonfinite} NaN/Inf sample(s) filled from their neighbours for "
                                  "the network and written as NaN in the output", highlight=False, soft_wrap=True,
                                  markup=False)
            except MdeblurError as exc:
                failures += 1
                console.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False, soft_wrap=True)
            except (KeyboardInterrupt, SystemExit):
                raise
            except Exception as exc:  # one bad file never stops a batch; --debug shows the traceback
                if job.debug:
                    raise
                failures += 1
                what = "out of memory" if isinstance(exc, MemoryError) else f"unexpected {type(exc).__name__}"
                reason = (str(exc).splitlines() or [""])[0][:200]
                console.print(f"[red]error:[/red] {escape(str(src))}: {what}{': ' + escape(reason) if reason else ''} "
                              "(--debug shows the traceback)", highlight=False, soft_wrap=True)
            progress.update(files_task, advance=1)
            progress.update(tiles_task, visible=False)
    return failures, len(plan)
