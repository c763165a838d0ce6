"""A batch of small files: does reading and writing hide behind the restore? In one process, one run:

- compute only: every input read beforehand, then only `compute_file` (the network and its normalisation) timed;
- one after another: `restore_file` per input (read, restore, write in series), as before the pipeline;
- the batch: `restore_files`, which reads the next input and writes the last output in threads meanwhile.

Prints each as images/s and megapixels/s, and the batch against compute only (target >= 0.9), with RSS after
the 20th and the last image of the batch (flat: no leak).

    python benchmarks/batch_throughput.py                    # 200 PNGs of 256x256 RGB, shipped weights
    python benchmarks/batch_throughput.py --quick            # 24 PNGs of 48x48, a tiny random model (CI smoke run)
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch
from rich.console import Console
from soak import Meter

from mdeblur_cli.restore.files import compute_file, load_file, restore_file
from mdeblur_cli.scale.batch import restore_files
from mdeblur_cli.scale.job import RestoreJob
from mdeblur_cli.weights import load_model


def make_inputs(folder: Path, count: int, size: int) -> list[Path]:
    """Crops of non-reserved scikit-image photographs, saved as 8-bit PNG (as a user has them)."""
    from skimage import data

    sources = [data.astronaut(), data.coffee(), data.chelsea(), data.rocket()]
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True)
    paths = []
    for i in range(count):
        img = sources[i % len(sources)]
        y, x = rng.integers(0, img.shape[0] - size), rng.integers(0, img.shape[1] - size)
        paths.append(folder / f"{i:05d}.png")
        cv2.imwrite(str(paths[-1]), cv2.cvtColor(np.ascontiguousarray(img[y : y + size, x : x + size]),
                                                 cv2.COLOR_RGB2BGR))
    return paths


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--count", type=int, default=200, help="images in the batch (default 200; the batch's fixed "
                    "start, loading the model, weighs on small counts)")
    ap.add_argument("--size", type=int, default=256, help="image side in pixels (default 256)")
    ap.add_argument("--weights", default="mdeblurgan-x2", help="model to restore with")
    ap.add_argument("--quick", action="store_true", help="CI smoke run: 24 images of 48 px through a tiny random "
                    "model; checks that it runs, its figures mean nothing")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="mdeblur-batch-"))
    if args.quick:
        from mdeblur_cli.models import build_model
        from mdeblur_cli.weights import save_weights

        args.count, args.size = 24, 48
        args.weights = str(work / "tiny.safetensors")
        save_weights(args.weights, build_model("unet-sr", {"width": 4, "sr_width": 8}), "unet-sr")
    paths = make_inputs(work / "in", args.count, args.size)
    model = load_model(args.weights)
    pct = model.percentiles
    restore_file(paths[0], work / "warm.png", model)  # warm-up: first-call costs out of every timing

    loaded = [load_file(p, work / "none.png") for p in paths]
    t = time.perf_counter()
    for job in loaded:
        compute_file(job, model, percentiles=pct)
    t_compute = time.perf_counter() - t
    del loaded

    (work / "serial").mkdir()
    t = time.perf_counter()
    for p in paths:
        restore_file(p, work / "serial" / p.name, model, percentiles=pct)
    t_serial = time.perf_counter() - t

    meter = Meter()

    class Ticking(Console):  # restore_files prints one line per file: tick there
        def print(self, *objects, **kwargs):
            if " -> " in " ".join(str(o) for o in objects):
                meter.tick()

    job = RestoreJob(inputs=[str(work / "in")], out_dir=work / "batch", weights=args.weights, device="cpu")
    t = time.perf_counter()
    failed, total = restore_files(job, Ticking(quiet=True))
    t_batch = time.perf_counter() - t
    same = all(np.array_equal(cv2.imread(str(work / "serial" / p.name)),
                              cv2.imread(str(work / "batch" / f"{p.stem}_x2.png"))) for p in paths)

    mpx = args.count * args.size**2 / 1e6
    print(f"batch throughput: {args.count} 8-bit RGB PNGs of {args.size}x{args.size}, weights {args.weights}, "
          f"{torch.get_num_threads()} threads ({failed} of {total} failed; batch outputs equal the one-by-one "
          f"outputs: {same})")
    for name, sec in (("compute only", t_compute), ("one after another", t_serial), ("batch (overlapped)", t_batch)):
        print(f"  {name:20s} {sec:7.2f} s  {args.count / sec:6.2f} images/s  {mpx / sec:6.3f} Mpx/s  "
              f"{t_compute / sec:5.2f}x compute-only throughput")
    i20 = min(19, len(meter.rss) - 1)
    print(f"  RSS in the batch: {meter.rss[i20]:.0f} MB after image {i20 + 1}, {meter.rss[-1]:.0f} MB after the last "
          f"({meter.rss[-1] - meter.rss[i20]:+.1f} MB)")
    if args.quick:
        print("quick mode: a smoke run with a tiny random model; the ratios above say nothing about real batches")
    else:
        print(f"target: batch >= 0.90x compute-only throughput: {'met' if t_compute / t_batch >= 0.9 else 'NOT met'}")


if __name__ == "__main__":
    main()
