"""Restoring many files (`mdeblur restore`): the job, inputs expanded and outputs planned (naming, collisions,
skip and overwrite rules), the overlapped read/restore/write pipeline, per-file errors and the progress report."""

from __future__ import annotations

import glob
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import torch
from rich.console import Console
from rich.markup import escape
from rich.progress import Progress

from ..device import resolve_device, resolve_precision
from ..errors import MdeblurError
from ..formats.images import is_image, list_images
from ..formats.paths import check_folder_path
from ..formats.series import WRITE_EXT, split_name
from ..restore.arrays import CHANNEL_MODES
from ..restore.files import compute_file, load_file, trust_path, write_file
from ..restore.normalize import MODES, Normalization
from ..restore.tiles import MIN_TILE
from ..restore.trust import SUSPECT_SHARE
from ..restore.trust import line as trust_line
from ..train.distributed import env_info
from ..weights import LoadedModel, load_model
from .job import PROGRESS_COLUMNS, RestoreJob


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
    """cells.tif -> cells_x2.tif; cells.ome.tif -> cells_x2.ome.tif; sub/a.png -> sub/a_x2.png; a vendor slide
    (slide.svs, .ndpi, .scn, .bif), which mdeblur cannot write, -> slide_x2.ome.tif (a pyramidal OME-TIFF)."""
    from ..formats.slide import SLIDE_EXT

    stem, ext = split_name(rel)
    return rel.parent / f"{stem}{suffix}{'.ome.tif' if ext.lower() in SLIDE_EXT else ext}"


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
                      f"{SUSPECT_SHARE:.0%} of pixels doubtful: structure marked as invented, or contrast "
                      "the input cannot support)"
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

        def on_tile(n: int, total: int, plane_pixels: int, note: str = "tiles") -> None:
            done["px"] += (n - (done["last"] if n > done["last"] else 0)) * plane_pixels / total
            done["last"] = n if n < total else 0
            progress.update(tiles_task, completed=n, total=total, visible=total > 1, pixels=done["px"],
                            description=note)

        def load(i: int) -> Future:
            src, dst = plan[i]
            return reader.submit(load_file, src, dst, job.axes, job.channels, job.max_pixels, job.trust, job.slide)

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
        if res.streamed_note:
            self._say(f"{dst}: {res.streamed_note}")
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
