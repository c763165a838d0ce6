"""Restoring files: input expansion, output naming, collisions, skip/overwrite rules, per-file errors, metadata."""

from __future__ import annotations

import glob
import json
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, ProgressColumn, TextColumn, TimeRemainingColumn
from rich.text import Text

from . import stream
from .device import resolve_device, resolve_precision
from .distributed import env_info
from .errors import MdeblurError
from .io import atomic_write, is_image, list_images
from .normalize import MODES, Normalization
from .paths import check_folder_path
from .restore import (
    CHANNEL_MODES,
    DEFAULT_TILE,
    MIN_TILE,
    TrustRequest,
    choose_channels,
    nonfinite_mask,
    restore_stack,
)
from .stacks import WRITE_EXT, Meta, Series, check_writable, lost_metadata, read_series, split_name, write_series
from .trust import SUSPECT_SHARE
from .trust import line as trust_line
from .weights import LoadedModel, load_model


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
    trust: bool = False  # also write NAME_trust.tif, the predicted error per pixel, and a summary per image
    cluster: str | None = None  # a Dask scheduler address, or 'local' (cluster.py); None: in this process
    workers: int | None = None  # --cluster local: worker processes
    threads_per_worker: int | None = None


@dataclass
class FileResult:
    """What restoring one file did: per series, the channel mode; the intensity mappings; lost calibration."""

    modes: list[str] = field(default_factory=list)
    norms: list[Normalization] = field(default_factory=list)
    lost: dict[str, str] = field(default_factory=dict)  # calibration items of the input the output cannot keep
    nonfinite: int = 0  # NaN/Inf samples of the input: filled for the network, NaN again in the output
    streamed: bool = False  # restored band by band from a memory map into a tiled BigTIFF
    trust: dict | None = None  # --trust: median predicted error (file units), doubtful share, suspect
    colours: list[int] = field(default_factory=list)  # per series, its colour channels (1: a gray image)
    trust_path: Path | None = None


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


def plan_outputs(job: RestoreJob, files: list[tuple[Path, Path]]) -> tuple[list[tuple[Path, Path]], list]:
    """(input, output) pairs to restore, and those skipped as done; refuses collisions and overwrites.

    With --trust an input is done when its output and its trust map both exist (a run stopped between the two
    writes is redone); any existing file among them needs --overwrite otherwise."""
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
        if key in inputs or (job.trust and trust_path(dst).resolve() in inputs):
            raise MdeblurError(f"{dst if key in inputs else trust_path(dst)}: refusing to write over an input")
        if key in seen:
            raise MdeblurError(f"{seen[key]} and {src} would both be written to {dst}; restore them into different "
                               "--out-dir folders, or give their folder with --recursive to keep sub-folders")
        seen[key] = src
    if job.trust:  # the maps must not land on another output, nor on each other
        maps: dict[Path, Path] = {}
        for src, dst in plan:
            key = trust_path(dst).resolve()
            if key in seen:
                raise MdeblurError(f"the trust map of {src} ({trust_path(dst)}) would overwrite the output of "
                                   f"{seen[key]}; use another --suffix or restore them into different folders")
            if key in maps:
                raise MdeblurError(f"{maps[key]} and {src} would both have their trust map at {trust_path(dst)}; "
                                   "restore them into different --out-dir folders")
            maps[key] = src

    def done(dst: Path) -> bool:
        return dst.exists() and (not job.trust or trust_path(dst).exists())

    def exists(dst: Path) -> bool:
        return dst.exists() or (job.trust and trust_path(dst).exists())

    existing = [dst if dst.exists() else trust_path(dst) for _, dst in plan if exists(dst)]
    if existing and job.skip_existing:
        return [(s, d) for s, d in plan if not done(d)], [(s, d) for s, d in plan if done(d)]
    if existing and not job.overwrite:
        more = f" (and {len(existing) - 1} more of the {len(plan)} outputs)" if len(existing) > 1 else ""
        raise MdeblurError(f"{existing[0]}: exists{more}; use --overwrite to replace, or --skip-existing to resume")
    return plan, []


@dataclass
class Loaded:
    """One input read and checked, on its way through the batch pipeline (read -> restore -> write)."""

    src: Path
    dst: Path
    series: list[Series] | None  # None: a large plain TIFF, restored by streaming in the restore stage
    result: FileResult
    stream_rgb: bool = False
    stream_meta: Meta | None = None  # the streamed TIFF's metadata
    trust_series: list[Series] | None = None  # --trust: the predicted-error maps, written beside the output


def trust_path(dst: str | Path) -> Path:
    """Where --trust writes the map of `dst`: NAME_trust.tif (NAME_trust.ome.tif beside an OME-TIFF)."""
    dst = Path(dst)
    stem, ext = split_name(dst)
    return dst.with_name(f"{stem}_trust{'.ome.tif' if ext.startswith('.ome.tif') else '.tif'}")


def load_file(src: str | Path, dst: str | Path, axes: str | None = None, channels: str = "auto",
              max_pixels: int | None = None, trust: bool = False) -> Loaded:
    """Read and check one input (the read stage): everything that can refuse it before any compute.
    A trust map needs the whole image in memory, so `trust` turns streaming off."""
    src, dst = Path(src), Path(dst)
    if dst.resolve() == src.resolve():
        raise MdeblurError(f"{dst}: refusing to write over an input")
    check_folder_path(dst.parent, f"the folder of {dst}")
    result = FileResult()
    streamable = None if trust else stream.probe(src, dst, axes, channels)
    if streamable is not None:  # a large plain TIFF: bounded memory, tiles straight into a tiled BigTIFF
        rgb, meta = streamable
        return Loaded(src, dst, None, result, rgb, meta)
    series = read_series(src, axes, max_pixels)
    for s in series:
        if s.data.dtype.kind == "f":
            bad = int(np.count_nonzero(nonfinite_mask(s.data)))
            if bad == s.data.size:
                raise MdeblurError(f"{src}: no finite pixels (every sample is NaN or Inf)")
            result.nonfinite += bad
    check_writable(dst, series)
    result.lost = lost_metadata(dst, series)
    if trust:
        check_folder_path(trust_path(dst).parent, f"the folder of {trust_path(dst)}")
    return Loaded(src, dst, series, result)


def _plane_progress(progress, plane_pixels: int):
    """The tile callback of one plane: (done, total) -> progress(done, total, input pixels of the plane)."""
    return None if progress is None else lambda done, total: progress(done, total, plane_pixels)


def compute_file(
    job: Loaded, model: LoadedModel, channels: str = "auto", normalize: str = "auto",
    percentiles: tuple[float, float] | None = None, tile: int = DEFAULT_TILE, device: torch.device | str = "cpu",
    precision: str = "fp32", progress=None, trust_model=None,
) -> Loaded:
    """Restore a loaded input (the restore stage). A streamed input is read, restored and written here.
    With `trust_model` (trust.TrustModel), the predicted-error maps and the image's summary are made too."""
    result = job.result
    if job.series is None:
        dev = resolve_device(device) if isinstance(device, str) else device
        dtype = resolve_precision(precision, dev)
        pct = percentiles or model.percentiles
        shape = stream.plane_shape(job.src)
        prog = _plane_progress(progress, shape[0] * shape[1])
        try:
            atomic_write(job.dst, lambda tmp: result.norms.append(stream.write_streamed(
                job.src, tmp, model.net, job.stream_rgb, normalize, pct, tile, dev, dtype, job.stream_meta, prog)))
        except OSError as exc:
            raise MdeblurError(f"{job.dst}: cannot write ({exc.strerror or exc})") from None
        result.modes, result.streamed = ["rgb" if job.stream_rgb else "independent"], True
        return job
    out, maps, summaries = [], [], []
    for s in job.series:
        try:
            mode = choose_channels(channels, s.channels - int(s.meta.alpha), s.data.dtype, s.meta.rgb)
        except MdeblurError as exc:
            raise MdeblurError(f"{job.src}: {exc}") from None
        ys, xs = s.axes.index("Y"), s.axes.index("X")
        req = TrustRequest(trust_model) if trust_model is not None else None
        data = restore_stack(s.data, s.axes, model, mode, s.meta.alpha, tile=tile, device=device,
                             precision=precision, progress=_plane_progress(progress, s.data.shape[ys] * s.data.shape[xs]),
                             normalize=normalize, percentiles=percentiles, norms=result.norms, trust=req)
        meta = s.meta.scaled(model.scale)
        meta.ome.setdefault("Name", split_name(job.src)[0])  # the image's name in OME outputs
        out.append(Series(data, s.axes, meta))
        result.modes.append(mode)
        result.colours.append(s.channels - int(s.meta.alpha))
        if req is not None:
            maps.append(Series(req.maps[0], s.axes, _trust_meta(meta, s.data.dtype, trust_model)))
            summaries += req.summaries
    job.series = out
    if trust_model is not None:
        from .trust import combine

        job.trust_series, result.trust = maps, combine(summaries, [m.data for m in maps])
        result.trust_path = trust_path(job.dst)
    return job


def _trust_meta(meta, dtype: np.dtype, trust_model):
    """The map's metadata: the output's calibration, gray samples, and a description of what it holds."""
    from dataclasses import replace

    units = "counts of the output's integer samples" if np.issubdtype(dtype, np.integer) else "the output's units"
    desc = {"mdeblur": "trust map", "quantity": "predicted error standard deviation of the restored image, per pixel",
            "units": units,
            "band": "the true error lies within +-2 times this value for about 95% of pixels on the held-out "
                    "calibration images; it is wider (97-100%) on others, and overstates the error in flat regions",
            "made_from": "spread: SD over 8 restorations under flips/quarter turns, each with a re-sample of the "
                         "input's noise; change: |output - bicubic of the input|; combined log-linearly with the "
                         "coefficients and calibration factor stored in the weights",
            "trust": trust_model.to_dict()}
    m = replace(meta, rgb=False, alpha=False, description=json.dumps(desc), ome=dict(meta.ome), imagej=dict(meta.imagej))
    return m


def write_file(job: Loaded) -> FileResult:
    """Write a restored input (the write stage), atomically; a streamed one is already written. The trust map
    goes first, so that an output never stands without the map it was asked with."""
    if job.trust_series is not None:
        path = trust_path(job.dst)
        try:
            atomic_write(path, lambda tmp: write_series(tmp, job.trust_series))
        except OSError as exc:
            raise MdeblurError(f"{path}: cannot write ({exc.strerror or exc})") from None
    if not job.result.streamed:
        try:
            atomic_write(job.dst, lambda tmp: write_series(tmp, job.series))
        except OSError as exc:
            raise MdeblurError(f"{job.dst}: cannot write ({exc.strerror or exc})") from None
    return job.result


def restore_file(
    src: str | Path, dst: str | Path, model: LoadedModel, axes: str | None = None, channels: str = "auto",
    normalize: str = "auto", percentiles: tuple[float, float] | None = None, tile: int = DEFAULT_TILE,
    device: torch.device | str = "cpu", precision: str = "fp32", progress=None, max_pixels: int | None = None,
    trust: bool = False,
) -> FileResult:
    """Restore one file into `dst` (atomically, replacing it if it exists), keeping axes, channels,
    calibration and OME/ImageJ metadata. `progress(done, total, plane_pixels)` is called after each tile.

    The output format follows `dst`: .ome.tif gives OME-TIFF, .tif an ImageJ hyperstack for an ImageJ or OME
    input (else a TIFF with its axes), PNG/JPEG one 2-D image. What the format cannot keep is in `lost`.
    """
    job = load_file(src, dst, axes, channels, max_pixels, trust)
    tm = model.trust if trust else None
    return write_file(compute_file(job, model, channels, normalize, percentiles, tile, device, precision, progress,
                                   tm))


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
    if job.cluster is None and (job.workers is not None or job.threads_per_worker is not None):
        raise MdeblurError("--workers and --threads-per-worker need --cluster local")
    for option, value in (("--workers", job.workers), ("--threads-per-worker", job.threads_per_worker)):
        if value is not None and value < 1:
            raise MdeblurError(f"{option} {value}: must be 1 or more")
    if job.cluster is not None:
        from .cluster import require_dask

        require_dask()
    if job.max_pixels is not None and job.max_pixels < 1:
        raise MdeblurError(f"--max-pixels {job.max_pixels}: must be 1 or more")
    if job.tile < MIN_TILE:
        raise MdeblurError(f"--tile {job.tile}: use at least {MIN_TILE} (low-res pixels per tile side)")
    if job.axes is not None and not job.axes.strip():
        raise MdeblurError("--axes is empty: give letters such as YX, CYX, ZYX or TZCYX")
    if any(sep in job.suffix for sep in ("/", "\\")) or job.suffix in (".", ".."):
        raise MdeblurError(f"--suffix {job.suffix!r}: must not contain a path separator (outputs stay in --out-dir)")


def restore_files(job: RestoreJob, console: Console, records: list | None = None) -> tuple[int, int]:
    """Restore every input; returns (inputs that failed, inputs in all). `records` receives one dict per input
    (input, output, error or channel modes, and with --trust the map's path and summary)."""
    _check_job(job)
    files = expand_inputs(job.inputs, job.recursive, exclude=job.out_dir)
    plan, done_before = plan_outputs(job, files)
    skipped = len(done_before)
    if skipped:
        what = "output and trust map exist" if job.trust else "output exists"
        console.print(f"skipping {skipped} input(s) whose {what} (--skip-existing)", highlight=False)
    if records is not None:
        records += [{"input": str(s), "output": str(d), "skipped": "done before (--skip-existing); not judged again"}
                    for s, d in done_before]
    if not job.trust:
        stale = [trust_path(d) for _, d in plan if trust_path(d).exists()]
        if stale:
            console.print(f"note: {stale[0]}{f' and {len(stale) - 1} more' if len(stale) > 1 else ''}: trust map(s) "
                          "of an earlier run, left as they are (not updated without --trust)", highlight=False,
                          soft_wrap=True, markup=False)
    if job.cluster is not None:
        from . import cluster

        return cluster.run(job, plan, console, records if records is not None else [], skipped)
    dinfo = env_info()
    if dinfo.enabled:  # under torchrun: each process restores its share of the files
        plan = plan[dinfo.rank :: dinfo.world]
    device = resolve_device(job.device)
    if dinfo.enabled and device.type == "cuda" and device.index is None:
        device = torch.device("cuda", dinfo.local_rank % torch.cuda.device_count())
    resolve_precision(job.precision, device)
    model = load_model(job.weights, device)
    percentiles = job.percentiles or model.percentiles
    tm = model.trust if job.trust else None
    if job.self_ensemble:
        model = model.self_ensemble()
    reporter = _Reporter(console, len(plan), percentiles, job.debug, records)
    started = time.perf_counter()
    pixels = _pipeline(job, plan, model, tm, percentiles, device, reporter, console)
    if len(plan) > 1 or skipped:
        took = time.perf_counter() - started
        console.print(f"done: {len(plan) - reporter.failures} restored, {reporter.failures} failed"
                      + (f", {skipped} skipped (output exists)" if skipped else "")
                      + f" in {took:.1f} s ({pixels / max(took, 1e-9) / 1e6:.3g} input Mpx/s)",
                      highlight=False, soft_wrap=True, markup=False)
    if job.trust and reporter.trusted:
        suspects = reporter.suspects
        console.print(f"trust: {len(suspects)} of {reporter.trusted} restored image(s) suspect (more than "
                      f"{SUSPECT_SHARE:.0%} of pixels doubtful: structure that noise and symmetries alone move by over "
                      "half its contrast)"
                      + (": " + ", ".join(str(p) for p in suspects) if suspects else ""),
                      highlight=False, soft_wrap=True, markup=False)
    return reporter.failures, len(plan)


def _pipeline(job: RestoreJob, plan: list[tuple[Path, Path]], model: LoadedModel, tm, percentiles, device,
              reporter: _Reporter, console: Console) -> float:
    """The files through read (a thread, one ahead), restore (here) and write (a thread); returns input pixels."""
    with Progress(*PROGRESS_COLUMNS, console=console, transient=True) as progress, \
            ThreadPoolExecutor(1, "mdeblur-read") as reader, ThreadPoolExecutor(1, "mdeblur-write") as writer:
        files_task = progress.add_task("images", total=len(plan), visible=len(plan) > 1, pixels=0.0)
        tiles_task = progress.add_task("tiles", total=None, visible=False, pixels=0.0)
        done = {"px": 0.0, "last": 0, "total": 0.0}

        def on_tile(n: int, total: int, plane_pixels: int) -> None:
            done["px"] += (n - (done["last"] if n > done["last"] else 0)) * plane_pixels / total
            done["last"] = n if n < total else 0
            progress.update(tiles_task, completed=n, total=total, visible=total > 1, pixels=done["px"])

        def load(i: int) -> Future:
            src, dst = plan[i]
            return reader.submit(load_file, src, dst, job.axes, job.channels, job.max_pixels, job.trust)

        pending: deque[tuple[Path, Future]] = deque()  # written or being written, reported in input order
        ahead = load(0) if plan else None
        for i, (src, dst) in enumerate(plan):
            loading = ahead
            # read the next input while this one is restored: small files only, so that memory stays bounded
            ahead = load(i + 1) if i + 1 < len(plan) and _prefetchable(plan[i + 1][0]) else None
            progress.reset(tiles_task, visible=False, pixels=0.0)
            done.update(px=0.0, last=0)
            try:
                loaded = loading.result() if loading is not None else load(i).result()
                restored = compute_file(loaded, model, job.channels, job.normalize, percentiles, job.tile, device,
                                        job.precision, on_tile, tm)
                writing = writer.submit(write_file, restored)
            except (KeyboardInterrupt, SystemExit):
                raise
            except Exception as exc:
                writing = Future()
                writing.set_exception(exc)
            while pending:  # the previous output was written while this one was restored: at most two in memory
                reporter.report(*pending.popleft())
            pending.append(((src, dst), writing))
            done["total"] += done["px"]
            progress.update(files_task, advance=1, pixels=done["total"])
        while pending:
            reporter.report(*pending.popleft())
    return done["total"]


PREFETCH_BYTES = 64 << 20  # inputs up to this size on disk are read ahead, in a thread, while one is restored


def _prefetchable(path: Path) -> bool:
    try:
        return path.is_file() and path.stat().st_size <= PREFETCH_BYTES
    except OSError:
        return False


class RateColumn(ProgressColumn):
    """Input megapixels restored per second, since the task started."""

    def render(self, task) -> Text:
        px, elapsed = task.fields.get("pixels", 0.0), task.elapsed
        return Text(f"{px / elapsed / 1e6:.2f} Mpx/s" if px and elapsed else "", style="progress.data.speed")


PROGRESS_COLUMNS = (TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                    RateColumn(), TimeRemainingColumn())


class _Reporter:
    """The per-file lines of a batch: the result of each input, or its one-line error; counts failures."""

    def __init__(self, console: Console, n: int, percentiles: tuple[float, float], debug: bool,
                 records: list | None = None) -> None:
        self.console, self.n, self.percentiles, self.debug = console, n, percentiles, debug
        self.failures, self.said = 0, set()
        self.records = records if records is not None else []
        self.trusted, self.suspects = 0, []

    def _say(self, text: str) -> None:
        self.console.print(text, highlight=False, soft_wrap=True, markup=False)

    def report(self, paths: tuple[Path, Path], writing: Future) -> None:
        src, dst = paths
        try:
            res = writing.result()
        except MdeblurError as exc:
            self.failures += 1
            self.console.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False, soft_wrap=True)
            self.records.append({"input": str(src), "output": None, "error": str(exc)})
            return
        except Exception as exc:  # one bad file never stops a batch; --debug shows the traceback
            if self.debug:
                raise
            self.failures += 1
            what = "out of memory" if isinstance(exc, MemoryError) else f"unexpected {type(exc).__name__}"
            reason = (str(exc).splitlines() or [""])[0][:200]
            self.console.print(f"[red]error:[/red] {escape(str(src))}: {what}{': ' + escape(reason) if reason else ''} "
                               "(--debug shows the traceback)", highlight=False, soft_wrap=True)
            self.records.append({"input": str(src), "output": None, "error": f"{what}: {reason}"})
            return
        gray = bool(res.colours) and all(n == 1 for n in res.colours)
        record = {"input": str(src), "output": str(dst), "channels": ["gray"] if gray else list(dict.fromkeys(res.modes))}
        if res.trust is not None:
            self.trusted += 1
            record.update(trust_map=str(res.trust_path), **res.trust)
            if res.trust["suspect"]:
                self.suspects.append(src)
        self.records.append(record)
        gray = bool(res.colours) and all(n == 1 for n in res.colours)  # one channel: no choice was made
        for mode in dict.fromkeys(res.modes):  # what each choice means, once per run
            if mode not in self.said and not gray:
                self._say(f"channels {mode}: {CHANNEL_HELP[mode]}")
                self.said.add(mode)
        modes = "gray" if gray else ", ".join(dict.fromkeys(res.modes))
        note = f"channels: {modes}; intensities: {_describe(res.norms, self.percentiles)}"
        self._say(f"{src} -> {dst} ({note})")
        if res.lost and "lost" not in self.said:
            items = "; ".join(f"{k} {v}" for k, v in res.lost.items())
            once = " (said once per run)" if self.n > 1 else ""
            self._say(f"warning: {dst} cannot keep the calibration of {src} ({items}); write .ome.tif to keep it{once}")
            self.said.add("lost")
        if res.nonfinite:
            self._say(f"warning: {src}: {res.nonfinite} NaN/Inf sample(s) filled from their neighbours for the network "
                      "and written as NaN in the output")
        if res.trust is not None:
            self._say(trust_line(res.trust_path, res.trust))
