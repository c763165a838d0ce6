"""Soak: restore many small images in one batch, as `mdeblur restore folder/ --out-dir` does, and watch memory
and speed. Passes when RSS grows by less than 50 MB from the 50th image to the last and the last 100 images
go within 10% of the speed of the first 100.

    python benchmarks/soak.py                      # 500 images of 64x64, shipped weights
    python benchmarks/soak.py --quick              # 60 images of 32x32, a tiny random model (CI smoke run)
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from rich.console import Console

from mdeblur_cli.scale.batch import restore_files
from mdeblur_cli.scale.job import RestoreJob


def rss_mb() -> float:
    """Resident memory of this process now (Linux /proc), in MB."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 1e6


class Meter:
    """Called after every file (through the console's output): time and RSS per image."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self.rss: list[float] = []
        self.last = time.perf_counter()

    def tick(self) -> None:
        now = time.perf_counter()
        self.times.append(now - self.last)
        self.rss.append(rss_mb())
        self.last = now


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=500)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--weights", default="mdeblurgan-x2")
    ap.add_argument("--quick", action="store_true", help="60 images of 32 px through a tiny random model")
    args = ap.parse_args()
    torch.set_num_threads(1)
    work = Path(tempfile.mkdtemp(prefix="mdeblur-soak-"))
    if args.quick:
        from mdeblur_cli.models import build_model
        from mdeblur_cli.weights import save_weights

        args.count, args.size = 60, 32
        args.weights = str(work / "tiny.safetensors")
        save_weights(args.weights, build_model("unet-sr", {"width": 4, "sr_width": 8}), "unet-sr")
    src = work / "in"
    src.mkdir()
    rng = np.random.default_rng(0)
    import cv2

    for i in range(args.count):
        cv2.imwrite(str(src / f"{i:05d}.png"), rng.integers(0, 255, (args.size, args.size, 3), dtype=np.uint8))
    meter = Meter()

    class Ticking(Console):  # restore_files prints one line per file: tick there
        def print(self, *objects, **kwargs):
            text = " ".join(str(o) for o in objects)
            if " -> " in text:
                meter.tick()

    job = RestoreJob(inputs=[str(src)], out_dir=work / "out", weights=args.weights, device="cpu")
    failed, total = restore_files(job, Ticking(quiet=True))
    n = len(meter.times)
    head, tail = min(100, n // 3), min(100, n // 3)
    first, last = statistics.mean(meter.times[:head]), statistics.mean(meter.times[-tail:])
    growth = meter.rss[-1] - meter.rss[min(49, n - 1)]
    print(f"soak: {n} of {total} images of {args.size}x{args.size} restored ({failed} failed), weights {args.weights}")
    print(f"RSS {meter.rss[0]:.0f} MB after the first image, {meter.rss[min(49, n - 1)]:.0f} MB after the 50th, "
          f"{meter.rss[-1]:.0f} MB after the last: growth {growth:+.1f} MB (target < 50)")
    print(f"time per image: first {head} {first * 1e3:.1f} ms, last {tail} {last * 1e3:.1f} ms: "
          f"ratio {last / first:.3f} (target: at most 1.10, no slowdown)")
    ok = failed == 0 and growth < 50 and last <= 1.1 * first
    print("PASS" if ok else "FAIL")
    if not ok and not args.quick:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
