"""Restoring on a Dask cluster (`--cluster local|ADDRESS`): many files as one task each, or one huge gray plane
as window tasks whose outputs are blended into OME-Zarr chunks by the workers.

Dask is imported only here, and only when --cluster is given. Workers load each model once per process
(`worker_model`), write their outputs atomically as in-process runs do, and report errors per file; a worker
that dies has its tasks run again elsewhere, so the outputs are the same as an undisturbed run's.
"""

from __future__ import annotations

import os
from dataclasses import asdict
from pathlib import Path

import numpy as np

from ..errors import MdeblurError

EXTRA = "pip install 'mdeblur[distributed]'"
CONNECT_TIMEOUT_S = 10
_MODELS: dict = {}  # per worker process: (weights, self_ensemble) -> model
LOADS = {"count": 0}  # models loaded by this process (the test checks that a worker loads once)


def require_dask() -> None:
    try:
        import dask  # noqa: F401
        import distributed  # noqa: F401
    except ImportError:
        raise MdeblurError(f"--cluster needs Dask: {EXTRA}") from None


def connect(address: str, workers: int | None = None, threads: int | None = None):
    """A distributed.Client: a LocalCluster on this machine for 'local', else the scheduler at `address`."""
    require_dask()
    from distributed import Client, LocalCluster


    if address != "local" and "://" not in address and ":" not in address:
        raise MdeblurError(f"--cluster {address}: give 'local', or a scheduler address such as tcp://head:8786")
    if address == "local":
        cores = os.cpu_count() or 1
        threads = threads or 1
        workers = workers or max(1, cores // threads)
        cluster = LocalCluster(n_workers=workers, threads_per_worker=threads, processes=True, host="127.0.0.1",
                               dashboard_address=None)
        client = Client(cluster)
    else:
        if workers is not None or threads is not None:
            raise MdeblurError("--workers and --threads-per-worker apply to --cluster local; an existing cluster "
                               "has its own")
        try:
            client = Client(address, timeout=CONNECT_TIMEOUT_S)
        except (OSError, TimeoutError, ValueError) as exc:
            raise MdeblurError(f"--cluster {address}: cannot reach the Dask scheduler ({exc})".splitlines()[0]) from None
    try:
        check_workers(client, address)
    except MdeblurError:
        close(client)
        raise
    return client


def check_workers(client, address: str) -> None:
    """Every worker imports mdeblur at this client's version, or one clear error (not a hang)."""
    from .. import __version__

    try:
        versions = client.run(_worker_version)
    except Exception as exc:
        raise MdeblurError(f"--cluster {address}: the workers cannot run mdeblur ({type(exc).__name__}: "
                           f"{exc})".splitlines()[0]) from None
    if not versions:
        raise MdeblurError(f"--cluster {address}: the scheduler has no workers")
    missing = [w for w, v in versions.items() if v is None]
    if missing:
        raise MdeblurError(f"--cluster {address}: worker {missing[0]} cannot import mdeblur; install it there "
                           "(the same version) with the distributed extra")
    wrong = {w: v for w, v in versions.items() if v != __version__}
    if wrong:
        w, v = next(iter(wrong.items()))
        raise MdeblurError(f"--cluster {address}: worker {w} runs mdeblur {v}, this client {__version__}; install "
                           "the same version on every worker")


def _worker_version() -> str | None:
    try:
        from mdeblur_cli import __version__
    except ImportError:
        return None
    return __version__


def close(client) -> None:
    cluster = getattr(client, "cluster", None)
    client.close()
    if cluster is not None:
        cluster.close()


def tune_malloc() -> bool:
    """Undo what Dask's nanny does to glibc's allocator for torch: it starts workers with MALLOC_TRIM_THRESHOLD_
    set, which also turns off the dynamic mmap threshold, so every large tensor is mmap'd and page-faulted
    afresh. Measured: a serial restore loop ran 5.55 s in a worker against 4.4 s in a plain process, 3.98 s
    with this (M_MMAP_THRESHOLD 32 MiB, glibc's maximum; M_TRIM_THRESHOLD 256 MiB). Linux/glibc only."""
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    if not name or not os.uname().sysname == "Linux":
        return False
    try:
        libc = ctypes.CDLL(name)
        return bool(libc.mallopt(-3, 32 << 20)) and bool(libc.mallopt(-1, 256 << 20))  # M_MMAP_, M_TRIM_THRESHOLD
    except (OSError, AttributeError):
        return False


def worker_model(weights: str, self_ensemble: bool = False):
    """The model of `weights`, loaded once per worker process (the allocator tuned on the first load)."""
    key = (weights, self_ensemble)
    if not _MODELS:
        tune_malloc()
    if key not in _MODELS:
        from ..weights import load_model

        model = load_model(weights)
        model = model.self_ensemble() if self_ensemble else model
        _MODELS[key] = model
        LOADS["count"] += 1
    return _MODELS[key]


def loads_in_this_process() -> tuple[int, int]:
    """(pid, models loaded): for tests and the scaling benchmark."""
    return os.getpid(), LOADS["count"]


# ---------------------------------------------------------------- many files


def restore_one(src: str, dst: str, job: dict) -> dict:
    """One file on a worker: the in-process stages (read, restore, write atomically); errors come back as text."""
    import torch

    from ..restore.files import compute_file, load_file, write_file
    from .batch import RestoreJob

    j = RestoreJob(**job)
    threads = int(os.environ.get("MDEBLUR_WORKER_THREADS", "0"))
    if threads:
        torch.set_num_threads(threads)
    try:
        model = worker_model(j.weights, j.self_ensemble)
        pct = j.percentiles or model.percentiles
        loaded = load_file(src, dst, j.axes, j.channels, j.max_pixels, j.trust)
        tm = model.trust if j.trust else None
        res = write_file(compute_file(loaded, model, j.channels, j.normalize, pct, j.tile, "cpu", j.precision,
                                      None, tm))
    except MdeblurError as exc:
        return {"input": src, "output": None, "error": str(exc)}
    except Exception as exc:  # one bad file never stops a batch
        reason = (str(exc).splitlines() or [""])[0][:200]
        return {"input": src, "output": None, "error": f"{src}: unexpected {type(exc).__name__}: {reason}"}
    gray = bool(res.colours) and all(n == 1 for n in res.colours)
    out = {"input": src, "output": dst, "channels": ["gray"] if gray else list(dict.fromkeys(res.modes))}
    if res.trust is not None:
        out.update(trust_map=str(res.trust_path), **res.trust)
    return out


def restore_many(client, job, plan: list[tuple[Path, Path]], on_done=None) -> list[dict]:
    """Every (input, output) of the plan as one task; results in input order. `on_done(record)` as each ends."""
    fields = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(job).items()}
    fields["inputs"], fields["output"], fields["out_dir"] = [], None, None
    futures = [client.submit(restore_one, str(s), str(d), fields, pure=False) for s, d in plan]
    index = {f.key: i for i, f in enumerate(futures)}
    records: list = [None] * len(futures)
    for fut in _completed(client, futures):
        rec = fut.result()
        records[index[fut.key]] = rec
        if on_done is not None:
            on_done(rec)
    return records


NO_WORKERS_S = 30  # a cluster with no workers for this long is given up on (a crash of every worker)


def _completed(client, futures):
    """The futures as they finish, with their results; one clear error, not a hang, when the scheduler or every
    worker is lost."""
    import time

    from distributed import wait

    address = getattr(getattr(client, "scheduler", None), "address", "?")
    lost = (f"lost the Dask scheduler at {address}; finished outputs are kept: rerun with --skip-existing to "
            "restore the rest")
    pending, alone_since = set(futures), None
    while pending:
        try:
            done, pending = wait(pending, timeout=2, return_when="FIRST_COMPLETED")
        except TimeoutError:
            done = set()
        except OSError:
            raise MdeblurError(lost) from None
        for fut in done:
            if fut.status in ("cancelled", "lost"):
                raise MdeblurError(lost)
            yield fut
        try:
            workers = len(client.scheduler_info().get("workers", {}))
        except OSError:
            raise MdeblurError(lost) from None
        if workers or not pending:
            alone_since = None
        else:
            alone_since = alone_since or time.monotonic()
            if time.monotonic() - alone_since > NO_WORKERS_S:
                raise MdeblurError(f"the cluster has had no workers for {NO_WORKERS_S} s ({len(pending)} task(s) "
                                   "left); finished outputs are kept: start workers and rerun with --skip-existing")


# ---------------------------------------------------------------- one huge plane


def open_plane(path: Path):
    """A lazily read 2-D gray plane (zarr array) from OME-Zarr or TIFF, or None when the file is something else."""
    import zarr

    from ..formats.stacks import is_zarr

    try:
        if is_zarr(path):
            group = zarr.open_group(str(path), mode="r")
            attrs = dict(group.attrs)
            attrs = attrs.get("ome", attrs)
            ms = attrs["multiscales"][0]
            arr = group[ms["datasets"][0]["path"]]
            names = "".join((a["name"] if isinstance(a, dict) else a)[0].upper() for a in ms["axes"])
        elif path.suffix.lower() in (".tif", ".tiff"):
            import tifffile

            with tifffile.TiffFile(str(path)) as tif:
                if len(tif.series) != 1:
                    return None
                names = tif.series[0].axes
            arr = zarr.open(tifffile.imread(str(path), aszarr=True), mode="r")
        else:
            return None
    except Exception:
        return None
    squeezed = [n for n, s in zip(names, arr.shape, strict=False) if s != 1]
    if len(arr.shape) != len(names) or squeezed != ["Y", "X"] or arr.dtype not in (np.uint8, np.uint16):
        return None
    return arr


def huge_plane_job(src: Path, dst: Path) -> bool:
    """Whether --cluster restores this input as one plane spread over the workers: a gray 8/16-bit plane in
    OME-Zarr or TIFF, restored to OME-Zarr."""
    from ..formats.stacks import is_zarr

    return is_zarr(dst) and open_plane(src) is not None


def _read_window(src: str, y0: int, y1: int, x0: int, x1: int, h: int, w: int) -> np.ndarray:
    from .stream import _read

    arr = open_plane(Path(src))
    if arr is None:
        raise MdeblurError(f"{src}: this worker cannot read it (workers must see the client's file paths)")
    return _read(_Squeezed(arr), y0, y1, x0, x1, h, w)


class _Squeezed:
    """Index a (1, ..., 1, H, W) zarr array as (H, W)."""

    def __init__(self, arr) -> None:
        self.arr, self.lead = arr, (0,) * (len(arr.shape) - 2)
        self.shape, self.dtype = tuple(arr.shape[-2:]), arr.dtype
        self.size = self.shape[0] * self.shape[1]

    def __getitem__(self, key):
        return np.asarray(self.arr[(*self.lead, *key)])

    def __array__(self, dtype=None, copy=None):  # the whole plane: only for small ones (normalize's sample)
        return np.asarray(self[:, :], dtype=dtype)


def restore_window(src: str, win: tuple[int, int, int, int], shape: tuple[int, int], norm: tuple[str, float, float],
                   weights: str) -> np.ndarray:
    """One restore window on a worker: its network output, (h*s, w*s, 3) float32, in network units."""
    import torch

    from ..restore.normalize import Normalization
    from ..restore.tiles import Window, forward_windows

    net = worker_model(weights).net.to(memory_format=torch.channels_last)

    def read(w: Window) -> np.ndarray:
        return Normalization(*norm).apply(_read_window(src, w.y0, w.y1, w.x0, w.x1, *shape)).astype(np.float32)[..., None]

    ((_, y),) = forward_windows(net, read, [Window(*win)], torch.device("cpu"))
    return y.numpy()


def write_chunk(dst: str, region: tuple[int, int, int, int], padded: tuple[int, int], scale: int, grid: tuple[int, int],
                parts: list, norm: tuple[str, float, float], dtype: str, *outputs) -> int:
    """Blend the windows that cover one output chunk with the tile engine's Blend, as the in-process restore
    does, and write it. `grid` is the network's (multiple, context)."""
    import torch
    import zarr

    from ..restore.arrays import _cast, _map_back
    from ..restore.normalize import Normalization
    from ..restore.tiles import Blend, Grid, Window

    r0, r1, c0, c1 = region
    wins = [Window(*p) for p in parts]
    blend = Blend(region, padded, wins, scale, Grid(*grid), gray=True)
    out = np.empty((r1 - r0, c1 - c0), np.float32)
    for win, y in zip(wins, outputs, strict=True):  # in the windows' raster order, as in-process
        for row, rows in blend.add(win, torch.from_numpy(y)):
            out[row - r0 : row - r0 + rows.shape[0]] = rows[..., 0]
    out = _cast(_map_back(out, Normalization(*norm), np.dtype(dtype)), np.dtype(dtype))
    arr = zarr.open_array(str(Path(dst) / "0"), mode="r+")
    lead = (0,) * (len(arr.shape) - 2)
    arr[(*lead, slice(r0, r1), slice(c0, c1))] = out
    return out.size


def restore_plane_distributed(client, src: Path, dst: Path, weights: str, tile: int, normalize: str,
                              percentiles: tuple[float, float] | None, on_chunk=None) -> dict:
    """Restore one huge gray plane into OME-Zarr `dst` on the cluster; no process holds the whole image.

    The windows, weights and normalisation are the in-process restore's, so the result equals it (to float
    rounding). Output chunks (CHUNK output px) are each written by one task."""
    from ..formats.stacks import Series, meta_only, zarr_create
    from ..restore.normalize import choose
    from ..restore.tiles import Grid, windows
    from ..weights import load_model

    model = load_model(weights)
    arr = _Squeezed(open_plane(src))
    h, w = arr.shape
    s, grid = model.scale, Grid.of(model.net)
    pct = percentiles or model.percentiles
    norm = choose(arr, normalize, pct)  # a strided sample, the same one the in-process restore takes
    hp, wp, tile = grid.up(h), grid.up(w), grid.tile(tile)
    wins = list(windows(hp, wp, tile, grid))
    meta = meta_only(src).scaled(s)
    chunk = CHUNK
    out_shape = (h * s, w * s)
    zarr_create(dst, Series(np.empty((1, 1), arr.dtype), "YX", meta), out_shape, (chunk, chunk))
    nrm = (norm.mode, float(norm.lo), float(norm.hi))
    window_futures = [client.submit(restore_window, str(src), (wi.y0, wi.y1, wi.x0, wi.x1), (h, w), nrm, weights,
                                    pure=False) for wi in wins]
    chunk_futures = []
    for r0 in range(0, out_shape[0], chunk):
        for c0 in range(0, out_shape[1], chunk):
            r1, c1 = min(r0 + chunk, out_shape[0]), min(c0 + chunk, out_shape[1])
            idx = [i for i, wi in enumerate(wins) if wi.y0 * s < r1 and wi.y1 * s > r0 and wi.x0 * s < c1
                   and wi.x1 * s > c0]
            parts = [(wins[i].y0, wins[i].y1, wins[i].x0, wins[i].x1) for i in idx]
            chunk_futures.append(client.submit(write_chunk, str(dst), (r0, r1, c0, c1), (hp, wp), s,
                                               (grid.multiple, grid.context), parts, nrm, str(arr.dtype),
                                               *[window_futures[i] for i in idx], pure=False))
    for fut in _completed(client, chunk_futures):
        fut.result()
        if on_chunk is not None:
            on_chunk(len(chunk_futures))
    return {"windows": len(wins), "chunks": len(chunk_futures), "norm": norm, "model": model}


CHUNK = 1024  # output px per OME-Zarr chunk side (each written by one task)


def run(job, plan: list[tuple[Path, Path]], console, records: list, skipped: int = 0) -> tuple[int, int]:
    """`mdeblur restore --cluster`: the planned files over the cluster; returns (failed, inputs). Paths go to the
    workers absolute: a worker's working folder is not the client's."""
    import time

    from rich.progress import Progress

    from ..formats.images import atomic_write
    from .batch import PROGRESS_COLUMNS

    plan = [(Path(s).resolve(), Path(d).resolve()) for s, d in plan]
    client = connect(job.cluster, job.workers, job.threads_per_worker)
    started = time.perf_counter()
    failures = 0
    try:
        if len(plan) == 1 and not job.trust and huge_plane_job(*plan[0]):
            src, dst = plan[0]
            info: dict = {}
            with Progress(*PROGRESS_COLUMNS, console=console, transient=True) as progress:
                task = progress.add_task("chunks", total=None)

                def step(total: int) -> None:
                    progress.update(task, total=total, advance=1)

                atomic_write(dst, lambda tmp: info.update(restore_plane_distributed(
                    client, src, tmp, job.weights, job.tile, job.normalize, job.percentiles, step)))
            n = info["norm"]
            console.print(f"{src} -> {dst} (one plane over the cluster: {info['windows']} windows, {info['chunks']} "
                          f"chunks; intensities: {n.mode} [{n.lo:.6g}, {n.hi:.6g}] -> [0, 1], inverted after)",
                          highlight=False, soft_wrap=True, markup=False)
            records.append({"input": str(src), "output": str(dst), "channels": ["gray"], "distributed": "one plane"})
        else:
            with Progress(*PROGRESS_COLUMNS, console=console, transient=True) as progress:
                task = progress.add_task("images", total=len(plan))

                def done(rec: dict) -> None:
                    progress.advance(task)
                    say = dict(highlight=False, soft_wrap=True, markup=False)
                    if rec.get("error"):
                        console.print(f"error: {rec['error']}", **say)
                        return
                    console.print(f"{rec['input']} -> {rec['output']} (channels: {', '.join(rec['channels'])})", **say)
                    if "trust_map" in rec:
                        from ..restore.trust import line

                        console.print(line(rec["trust_map"], rec), **say)

                recs = restore_many(client, job, plan, on_done=done)
            failures = sum(1 for r in recs if r.get("error"))
            records += recs
        workers = len(client.scheduler_info().get("workers", {}))
    finally:
        close(client)
    took = time.perf_counter() - started
    console.print(f"done on {job.cluster} ({workers} worker{'s' if workers != 1 else ''}): {len(plan) - failures} "
                  f"restored, {failures} failed" + (f", {skipped} skipped (output exists)" if skipped else "")
                  + f" in {took:.1f} s", highlight=False, soft_wrap=True, markup=False)
    suspects = [r["input"] for r in records if r.get("suspect")]
    if job.trust:
        console.print(f"trust: {len(suspects)} of {sum('trust_map' in r for r in records)} restored image(s) suspect"
                      + (": " + ", ".join(suspects) if suspects else ""), highlight=False, soft_wrap=True,
                      markup=False)
    return failures, len(plan)
