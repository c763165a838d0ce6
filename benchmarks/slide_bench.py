"""Whole-slide restore at scale: peak memory, throughput per tissue pixel against a plain in-memory restore, and
the time glass skipping saves, on an SVS-like JPEG slide made from mdeblur's procedural stained tissue (about
half glass; tests/tools/slides.py big_svs). Each slide run is `mdeblur restore` in its own process, timed and
its peak RSS read from getrusage of the child.

    python benchmarks/slide_bench.py --size 8192x6144 --json runs/slide_bench.json
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def run(cmd: list[str]) -> tuple[float, float]:
    """(wall seconds, peak RSS of the child in GiB) of one command."""
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True)
    wall = time.perf_counter() - t0
    return wall, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", default="8192x6144", help="WxH of the slide's level 0")
    ap.add_argument("--glass", type=float, default=0.5)
    ap.add_argument("--tile", type=int, default=320)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    import torch

    from mdeblur_cli import load_model, restore_array
    from tests.tools.slides import big_svs, tissue

    w, h = (int(v) for v in args.size.split("x"))
    work = Path(tempfile.mkdtemp(prefix="mdeblur-slide-"))
    slide = big_svs(work / "slide.svs", h, w, args.glass)
    tissue_px = h * round(w * (1 - args.glass))
    print(f"slide {w} x {h} px ({slide.stat().st_size / 1e6:.0f} MB JPEG), tissue {tissue_px / 1e6:.1f} Mpx", flush=True)

    from mdeblur_cli.restore.tiles import Grid, windows

    model = load_model("mdeblurgan-x2")
    grid = Grid.of(model.net)

    def window_work(hh: int, ww: int) -> float:
        """Network input pixels per image pixel: what the window geometry (context, blend, balanced spans)
        costs at this size and tile, before any streaming."""
        return sum((v.y1 - v.y0) * (v.x1 - v.x0) for v in windows(grid.up(hh), grid.up(ww), args.tile, grid)) / (hh * ww)

    restore_array(tissue(256, 256, side=256), model, tile=args.tile)  # warm-up
    plains = {}
    for side in (1024, 2048):
        crop = tissue(side, side, side=1024)
        t0 = time.perf_counter()
        restore_array(crop, model, tile=args.tile)
        plains[side] = side * side / (time.perf_counter() - t0)
        print(f"plain in-memory restore, {side}^2 tissue: {plains[side] / 1e6:.3f} Mpx/s "
              f"({torch.get_num_threads()} threads; window work {window_work(side, side):.2f} px per px)", flush=True)
    plain = plains[1024]
    print(f"the slide's window work: {window_work(h, w):.2f} px per px", flush=True)
    del model

    mdeblur = [sys.executable, "-m", "mdeblur_cli", "restore", str(slide), "--tile", str(args.tile), "--overwrite"]
    skip_s, rss = run([*mdeblur, "-o", str(work / "skip.ome.tif")])
    print(f"with glass skipping: {skip_s:.1f} s, peak RSS {rss:.2f} GiB", flush=True)
    noskip_s, rss2 = run([*mdeblur, "-o", str(work / "noskip.ome.tif"), "--no-skip-background"])
    print(f"without: {noskip_s:.1f} s, peak RSS (largest child so far) {rss2:.2f} GiB", flush=True)
    zarr_s, rss3 = run([*mdeblur, "-o", str(work / "skip.ome.zarr")])
    print(f"to OME-Zarr with skipping: {zarr_s:.1f} s, peak RSS (largest child so far) {rss3:.2f} GiB", flush=True)
    per_tissue = tissue_px / skip_s
    res = {"size": [w, h], "glass": args.glass, "tissue_mpx": tissue_px / 1e6, "plain_mpx_s": plain / 1e6,
           "skip_seconds": skip_s, "noskip_seconds": noskip_s, "zarr_seconds": zarr_s,
           "peak_rss_gib": max(rss, rss2, rss3), "tissue_throughput_ratio": per_tissue / plain,
           "skip_time_ratio": skip_s / noskip_s,
           "noskip_throughput_ratio": (h * w / noskip_s) / plain,
           "plain_2048_mpx_s": plains[2048] / 1e6, "tissue_throughput_ratio_2048": per_tissue / plains[2048],
           "window_work": {"1024": window_work(1024, 1024), "2048": window_work(2048, 2048), "slide": window_work(h, w)}}
    print(f"throughput per tissue pixel with skipping: {per_tissue / 1e6:.3f} Mpx/s = {res['tissue_throughput_ratio']:.2f}x "
          f"plain 1024^2 (target >= 0.9), {res['tissue_throughput_ratio_2048']:.2f}x plain 2048^2; every pixel "
          f"through the network: {res['noskip_throughput_ratio']:.2f}x plain 1024^2")
    print(f"wall time with skipping / without: {res['skip_time_ratio']:.2f} (target <= 0.6); "
          f"peak RSS {res['peak_rss_gib']:.2f} GiB (target <= 1.5)")
    if args.json:
        args.json.write_text(json.dumps(res, indent=1) + "\n")
    import shutil

    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
