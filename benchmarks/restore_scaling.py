"""Scaling out with Dask: throughput of a batch of files and of one large plane, in this process and on a
LocalCluster of 1 and 2 single-threaded workers, in one run; the scheduler's overhead per task; peak RSS per
worker. Equal threads: the in-process runs use one torch thread, as each worker does.

    python benchmarks/restore_scaling.py                  # 24 PNGs of 192^2 RGB and one 1536^2 16-bit plane
    python benchmarks/restore_scaling.py --quick          # small sizes, a tiny random model (CI smoke run)
    python benchmarks/restore_scaling.py --json scaling.json

Targets (issue 18): 2 workers >= 1.7x one worker, and 1 worker >= 0.9x in-process at equal threads.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch
from rich.console import Console

from mdeblur_cli.formats.series import Meta, Series
from mdeblur_cli.formats.stacks import write_series
from mdeblur_cli.restore.arrays import restore_array
from mdeblur_cli.scale import cluster, plane, workers
from mdeblur_cli.scale.batch import restore_files
from mdeblur_cli.scale.job import RestoreJob
from mdeblur_cli.weights import load_model


def _noop(i: int) -> int:
    return i


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def make_inputs(work: Path, count: int, side: int, plane: int) -> tuple[Path, Path, np.ndarray]:
    from skimage import data

    src = work / "batch"
    src.mkdir()
    rng = np.random.default_rng(0)
    photos = [data.astronaut(), data.coffee(), data.chelsea()]
    for i in range(count):
        img = photos[i % 3]
        y, x = rng.integers(0, img.shape[0] - side), rng.integers(0, img.shape[1] - side)
        cv2.imwrite(str(src / f"{i:04d}.png"), cv2.cvtColor(np.ascontiguousarray(img[y : y + side, x : x + side]),
                                                            cv2.COLOR_RGB2BGR))
    cam = data.camera().astype(np.float64)
    big = np.tile(cam, (plane // cam.shape[0] + 1, plane // cam.shape[1] + 1))[:plane, :plane]
    big = (big / 255 * 3000 + 100 + rng.normal(0, 15, big.shape)).clip(0, 65535).astype(np.uint16)
    path = work / "plane.ome.zarr"
    write_series(path, [Series(big, "YX", Meta(kind="ome", ome={"Pixels": {"PhysicalSizeX": 0.5,
                                                                           "PhysicalSizeY": 0.5}}))])
    return src, path, big


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--count", type=int, default=24, help="files in the batch")
    ap.add_argument("--side", type=int, default=192, help="side of each file, px")
    ap.add_argument("--plane", type=int, default=1536, help="side of the large 16-bit plane, px")
    ap.add_argument("--weights", default="mdeblurgan-x2")
    ap.add_argument("--quick", action="store_true", help="CI smoke run: tiny sizes and a tiny random model")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="mdeblur-scaling-"))
    if args.quick:
        from mdeblur_cli.models import build_model
        from mdeblur_cli.weights import save_weights

        args.count, args.side, args.plane = 6, 64, 256
        args.weights = str(work / "tiny.safetensors")
        save_weights(args.weights, build_model("unet-sr", {"width": 4, "sr_width": 8}), "unet-sr")
    src, plane_path, big = make_inputs(work, args.count, args.side, args.plane)
    batch_mpx = args.count * args.side**2 / 1e6
    plane_mpx = args.plane**2 / 1e6
    quiet = Console(quiet=True)
    rows: dict = {}

    torch.set_num_threads(1)  # equal threads: one per worker
    model = load_model(args.weights)
    restore_array(big[:64, :64], model)  # warm-up
    t = time.perf_counter()
    restore_files(RestoreJob(inputs=[str(src)], out_dir=work / "out-in", weights=args.weights, device="cpu"), quiet)
    rows["in-process, 1 thread"] = {"batch_s": time.perf_counter() - t}
    t = time.perf_counter()
    restore_array(big, model)
    rows["in-process, 1 thread"]["plane_s"] = time.perf_counter() - t

    overhead = None
    for n in (1, 2):
        name = f"LocalCluster, {n} worker{'s' if n > 1 else ''} x 1 thread"
        client = cluster.connect("local", workers=n, threads=1)
        try:
            client.gather(client.map(workers.worker_model, [args.weights] * n * 4, pure=False))  # load, warm
            job = RestoreJob(inputs=[], weights=args.weights)
            out = work / f"out-{n}"
            out.mkdir()
            plan = [(p, out / f"{p.stem}_x2.png") for p in sorted(src.iterdir())]
            t = time.perf_counter()
            recs = cluster.restore_many(client, job, plan)
            batch_s = time.perf_counter() - t
            assert not [r for r in recs if r.get("error")], recs
            dst = work / f"plane-{n}.ome.zarr"
            t = time.perf_counter()
            plane.restore_plane_distributed(client, plane_path, dst, args.weights, 320, "auto", None)
            plane_s = time.perf_counter() - t
            if n == 2:
                tasks = 400
                t = time.perf_counter()
                client.gather(client.map(_noop, range(tasks), pure=False))
                overhead = (time.perf_counter() - t) / tasks
            rss = client.run(_peak_rss_mb)
        finally:
            cluster.close(client)
        rows[name] = {"batch_s": batch_s, "plane_s": plane_s, "peak_rss_mb_per_worker": max(rss.values())}
        shutil.rmtree(dst, ignore_errors=True)

    base = rows["in-process, 1 thread"]
    one = rows["LocalCluster, 1 worker x 1 thread"]
    print(f"restore scaling, weights {args.weights}{' (quick: a tiny random model, figures mean nothing)' if args.quick else ''}: "
          f"batch of {args.count} RGB PNGs of {args.side}^2 ({batch_mpx:.2f} Mpx); one {args.plane}^2 16-bit plane "
          f"OME-Zarr -> OME-Zarr ({plane_mpx:.2f} Mpx)")
    print(f"{'':36s} {'batch Mpx/s':>11s} {'vs 1 worker':>11s} {'plane Mpx/s':>11s} {'vs 1 worker':>11s} "
          f"{'peak RSS/worker':>15s}")
    for name, r in rows.items():
        rss = f"{r['peak_rss_mb_per_worker']:.0f} MB" if "peak_rss_mb_per_worker" in r else "-"
        print(f"{name:36s} {batch_mpx / r['batch_s']:11.3f} {one['batch_s'] / r['batch_s']:10.2f}x "
              f"{plane_mpx / r['plane_s']:11.3f} {one['plane_s'] / r['plane_s']:10.2f}x {rss:>15s}")
    two = rows["LocalCluster, 2 workers x 1 thread"]
    print(f"2 workers / 1 worker: batch {one['batch_s'] / two['batch_s']:.2f}x, plane "
          f"{one['plane_s'] / two['plane_s']:.2f}x (target >= 1.7); 1 worker / in-process: batch "
          f"{base['batch_s'] / one['batch_s']:.2f}x, plane {base['plane_s'] / one['plane_s']:.2f}x (target >= 0.9)")
    print(f"scheduler overhead: {overhead * 1e3:.2f} ms per task (400 no-op tasks on 2 workers)")
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "overhead_s_per_task": overhead, "batch_mpx": batch_mpx,
                                         "plane_mpx": plane_mpx}, indent=2) + "\n")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
