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

from ..errors import MdeblurError
from .plane import huge_plane_job, restore_plane_distributed
from .workers import completed, worker_model

EXTRA = "pip install 'mdeblur[distributed]'"

CONNECT_TIMEOUT_S = 10

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

def restore_one(src: str, dst: str, job: dict) -> dict:
    """One file on a worker: the in-process stages (read, restore, write atomically); errors come back as text."""
    import torch

    from ..device import CPU
    from ..formats.slide import SlideOptions
    from ..restore.files import compute_file, load_file, write_file
    from .job import RestoreJob

    j = RestoreJob(**{**job, "slide": SlideOptions(**job["slide"]) if isinstance(job.get("slide"), dict) else job.get("slide")})
    threads = int(os.environ.get("MDEBLUR_WORKER_THREADS", "0"))
    if threads:
        torch.set_num_threads(threads)
    try:
        model = worker_model(j.weights, j.self_ensemble)
        pct = j.percentiles or model.percentiles
        loaded = load_file(src, dst, j.axes, j.channels, j.max_pixels, j.trust, j.slide)
        tm = model.trust if j.trust else None
        res = write_file(compute_file(loaded, model, j.channels, j.normalize, pct, j.tile, CPU, j.precision,
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
    for fut in completed(client, futures):
        rec = fut.result()
        records[index[fut.key]] = rec
        if on_done is not None:
            on_done(rec)
    return records

def run(job, plan: list[tuple[Path, Path]], console, records: list, skipped: int = 0) -> tuple[int, int]:
    """`mdeblur restore --cluster`: the planned files over the cluster; returns (failed, inputs). Paths go to the
    workers absolute: a worker's working folder is not the client's."""
    import time

    from rich.progress import Progress

    from ..formats.images import atomic_write
    from .job import PROGRESS_COLUMNS

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

                from ..formats.slide import is_slide

                slide = job.slide if is_slide(src) else None
                atomic_write(dst, lambda tmp: info.update(restore_plane_distributed(
                    client, src, tmp, job.weights, job.tile, job.normalize, job.percentiles, step, slide)))
            n = info["norm"]
            w, c = info["windows"], info["chunks"]
            glass = f", {info['glass']} of them glass (bicubic)" if info["rgb"] else ""
            console.print(f"{src} -> {dst} (one plane over the cluster: {w} window{'s' * (w != 1)}{glass}, {c} "
                          f"chunk{'s' * (c != 1)}; intensities: {n.mode} [{n.lo:.6g}, {n.hi:.6g}] -> [0, 1], inverted after)",
                          highlight=False, soft_wrap=True, markup=False)
            records.append({"input": str(src), "output": str(dst), "channels": ["rgb" if info["rgb"] else "gray"],
                            "distributed": "one plane"})
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
