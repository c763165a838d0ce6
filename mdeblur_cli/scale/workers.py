"""What every Dask worker process keeps: its models, loaded once, and the allocator tuned for torch; and the
client's wait for tasks, which gives one clear error instead of a hang when the scheduler or the workers are lost."""

from __future__ import annotations

import os

from ..errors import MdeblurError

_MODELS: dict = {}  # per worker process: (weights, self_ensemble) -> model

LOADS = {"count": 0}  # models loaded by this process (the test checks that a worker loads once)

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

NO_WORKERS_S = 30  # a cluster with no workers for this long is given up on (a crash of every worker)

def completed(client, futures):
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
