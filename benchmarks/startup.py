"""Start-up: `mdeblur --help`, and a 256^2 8-bit RGB restore from the command line end to end, each as a fresh
process, beside `python -c "import torch"` (the floor that any torch tool pays). Median of --runs.

    python benchmarks/startup.py              # targets: --help < 0.5 s, 256^2 restore < 3 s
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def seconds(cmd: list[str], runs: int, before=None) -> float:
    times = []
    for _ in range(runs):
        if before:
            before()
        t = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--runs", type=int, default=5, help="fresh processes per command (the median is kept)")
    args = ap.parse_args()
    import cv2
    from skimage import data

    work = Path(tempfile.mkdtemp(prefix="mdeblur-startup-"))
    src, dst = work / "a.png", work / "a_x2.png"
    cv2.imwrite(str(src), cv2.cvtColor(data.astronaut()[100:356, 100:356], cv2.COLOR_RGB2BGR))
    py = sys.executable
    t_help = seconds([py, "-m", "mdeblur_cli", "--help"], args.runs)
    t_torch = seconds([py, "-c", "import torch"], args.runs)
    t_restore = seconds([py, "-m", "mdeblur_cli", "restore", str(src), "-o", str(dst)], args.runs,
                        before=lambda: dst.unlink(missing_ok=True))
    print(f"start-up, median of {args.runs} fresh processes:")
    def verdict(ok: bool) -> str:
        return "met" if ok else "NOT met"

    print(f"  mdeblur --help                    {t_help:5.2f} s  (target < 0.5: {verdict(t_help < 0.5)})")
    print(f"  python -c 'import torch'          {t_torch:5.2f} s  (the floor for any torch tool)")
    print(f"  mdeblur restore 256^2 RGB PNG     {t_restore:5.2f} s  (target < 3: {verdict(t_restore < 3)}; "
          f"{t_restore - t_torch:.2f} s beyond importing torch)")


if __name__ == "__main__":
    main()
