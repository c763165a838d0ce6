"""Fuzz the image reader (and, with --weights, the weights loader) for N minutes with random byte mutations.

The only outcome allowed is a result or the package's MdeblurError. Any other exception is a bug: its input
is kept under --keep (default fuzz_failures/) with the traceback, and the run exits 1.

    python benchmarks/fuzz_reader.py --minutes 5
    python benchmarks/fuzz_reader.py --minutes 2 --weights
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import traceback
from collections import Counter
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the checkout: tests/tools

from tests.tools.fuzzing import load_once, mutate, read_once, seed_files


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=1.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--weights", action="store_true", help="fuzz a tiny weights file instead of images")
    ap.add_argument("--keep", type=Path, default=Path("fuzz_failures"))
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    work = Path(tempfile.mkdtemp(prefix="mdeblur-fuzz-"))
    if args.weights:
        from mdeblur_cli.models import build_model
        from mdeblur_cli.weights import save_weights

        save_weights(work / "w.safetensors", build_model("unet-sr", {"width": 4, "sr_width": 8}), "unet-sr")
        seeds, check = {"w.safetensors": (work / "w.safetensors").read_bytes()}, load_once
    else:
        seeds, check = seed_files(), read_once
    names = sorted(seeds)
    outcomes: Counter = Counter()
    failures = 0
    end = time.monotonic() + 60 * args.minutes
    while time.monotonic() < end:
        name = names[int(rng.integers(0, len(names)))]
        data = seeds[name]
        for _ in range(int(rng.integers(1, 4))):
            data = mutate(data, rng)
        path = work / name
        path.write_bytes(data)
        try:
            outcomes[check(path)] += 1
        except Exception:  # a bug: keep the input
            failures += 1
            args.keep.mkdir(parents=True, exist_ok=True)
            kept = args.keep / f"{failures:04d}_{name}"
            kept.write_bytes(data)
            kept.with_suffix(kept.suffix + ".txt").write_text(traceback.format_exc())
            outcomes["bug"] += 1
    total = sum(outcomes.values())
    print(f"{total} mutated {'weights files' if args.weights else 'images'} in {args.minutes:g} min: "
          + ", ".join(f"{k} {v}" for k, v in sorted(outcomes.items())))
    if failures:
        print(f"{failures} inputs raised something other than MdeblurError; kept in {args.keep}/")
        raise SystemExit(1)


if __name__ == "__main__":
    main()
