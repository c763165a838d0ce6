"""Peak memory of `mdeblur restore` against image size: 8-bit gray TIFFs restored by a tiny model, one fresh
process per size, so each peak RSS is that size's own. A bounded restore would give a flat curve.

    python benchmarks/restore_memory.py                     # 1024, 2048, 4096 and 16384 px sides
    python benchmarks/restore_memory.py --sides 512,1024    # quick
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

import numpy as np


def child(side: int, work: Path) -> None:
    """Make the input, restore it as the CLI does, print this process's peak RSS (JSON)."""
    import tifffile
    from rich.console import Console

    from mdeblur_cli.models import build_model
    from mdeblur_cli.scale.batch import restore_files
    from mdeblur_cli.scale.job import RestoreJob
    from mdeblur_cli.weights import save_weights

    weights = work / "tiny.safetensors"
    if not weights.exists():
        save_weights(weights, build_model("unet-sr", {"width": 4, "sr_width": 8}), "unet-sr")
    src = work / f"in_{side}.tif"
    rng = np.random.default_rng(0)
    with tifffile.TiffWriter(src, bigtiff=True) as tif:  # written in bands: the input never sits in memory here
        tif.write((rng.integers(0, 255, (min(1024, side - y), side), dtype=np.uint8) for y in range(0, side, 1024)),
                  shape=(side, side), dtype=np.uint8, rowsperstrip=1024)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t = time.perf_counter()
    job = RestoreJob(inputs=[str(src)], output=work / f"out_{side}.tif", weights=str(weights), device="cpu",
                     overwrite=True)
    failed, _ = restore_files(job, Console(stderr=True, quiet=True))
    print(json.dumps({"side": side, "ok": failed == 0, "seconds": time.perf_counter() - t, "baseline_mb": base,
                      "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sides", default="1024,2048,4096,16384")
    ap.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--work", type=Path, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child, args.work)
        return
    work = Path(tempfile.mkdtemp(prefix="mdeblur-mem-"))
    print("peak RSS of one restore process, 8-bit gray TIFF in, x2 TIFF out, tiny U-Net + SR model")
    for side in (int(s) for s in args.sides.split(",")):
        res = subprocess.run([sys.executable, __file__, "--child", str(side), "--work", str(work)],
                             capture_output=True, text=True)
        for f in work.glob("*_*.tif"):
            f.unlink()
        if res.returncode != 0 or not res.stdout.strip():
            why = (res.stderr.strip().splitlines() or ["?"])[-1]
            print(f"{side:6d}^2: failed ({why[:150]})")
            continue
        r = json.loads(res.stdout.strip().splitlines()[-1])
        state = "" if r["ok"] else " (refused: over this machine's default --max-pixels)"
        print(f"{side:6d}^2: peak RSS {r['peak_mb']:7.0f} MB (start {r['baseline_mb']:.0f} MB), "
              f"{r['seconds']:.1f} s{state}")


if __name__ == "__main__":
    main()
