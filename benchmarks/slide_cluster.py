"""A whole slide over Dask: one worker against two (LocalCluster, single-threaded workers), the same SVS-like slide
to OME-Zarr, against one in-process run at one torch thread (equal threads per worker).

    python benchmarks/slide_cluster.py --size 4096x3072 --json runs/slide_cluster.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def timed(cmd: list[str], env: dict | None = None) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, env={**os.environ, **(env or {})})
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", default="4096x3072")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    from tests.tools.slides import big_svs

    w, h = (int(v) for v in args.size.split("x"))
    work = Path(tempfile.mkdtemp(prefix="mdeblur-slidec-"))
    slide = big_svs(work / "slide.svs", h, w, 0.5)
    base = [sys.executable, "-m", "mdeblur_cli", "restore", str(slide), "--overwrite"]
    one_thread = timed([*base, "-o", str(work / "here.ome.zarr")], {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"})
    print(f"in process, 1 thread: {one_thread:.1f} s", flush=True)
    w1 = timed([*base, "-o", str(work / "w1.ome.zarr"), "--cluster", "local", "--workers", "1"])
    print(f"LocalCluster, 1 worker: {w1:.1f} s", flush=True)
    w2 = timed([*base, "-o", str(work / "w2.ome.zarr"), "--cluster", "local", "--workers", "2"])
    print(f"LocalCluster, 2 workers: {w2:.1f} s; 2 workers against 1: {w1 / w2:.2f}x (target >= 1.7); "
          f"1 worker against in-process at 1 thread: {one_thread / w1:.2f}x", flush=True)
    if args.json:
        args.json.write_text(json.dumps({"size": [w, h], "in_process_1_thread_s": one_thread, "one_worker_s": w1,
                                         "two_workers_s": w2, "speedup": w1 / w2}, indent=1) + "\n")
    import shutil

    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
