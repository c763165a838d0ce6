"""The suspect verdict as a user meets it: `mdeblur restore --trust --fail-on-suspect` on planted cases and on
clean ones, with the exit codes (3: suspect, 0: not).

Cases:
- the flat 16-bit Poisson field (mean 300 counts, SD about 17) through the float-trained weights of commit
  7407653, which turn it into blobs under `--normalize range`; the weights file gets the shipped weights' error
  head (the judge), since those old weights carry none. Under the default percentile normalisation the same
  weights keep the field flat: that must not be flagged.
- the same field through the shipped weights (both normalisations): not flagged.
- the examples (`examples/*_blurry_lr.png`) through the shipped weights: not flagged.

    git show 7407653:weights/mdeblurgan-x2.safetensors > runs/weights-7407653.safetensors
    python benchmarks/trust_planted.py --old runs/weights-7407653.safetensors
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def run(src: Path, weights: str, normalize: str, work: Path) -> dict:
    report = work / f"{src.stem}_{Path(weights).stem}_{normalize}.json"
    out = work / f"{src.stem}_{Path(weights).stem}_{normalize}_x2.tif"
    cmd = ["mdeblur", "restore", str(src), "-o", str(out), "--weights", weights, "--normalize", normalize,
           "--trust", "--fail-on-suspect", "--report", str(report)]
    rc = subprocess.run(cmd, capture_output=True, text=True).returncode
    t = json.loads(report.read_text())["records"][0]
    return {"input": src.name, "weights": Path(weights).name, "normalize": normalize, "exit": rc,
            "doubtful_share": t.get("doubtful_share"), "map": t.get("map"),
            "median_error": t.get("median_error")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--old", type=Path, required=True, help="the weights of commit 7407653")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    import tifffile

    from mdeblur_cli.weights import load_model, store_error_head

    work = Path(tempfile.mkdtemp(prefix="mdeblur-planted-"))
    field = np.random.default_rng(0).poisson(300, (128, 128)).astype(np.uint16)
    flat = work / "flat_poisson16.tif"
    tifffile.imwrite(flat, field)
    judged = work / "old-7407653-judged.safetensors"
    shutil.copy(args.old, judged)
    store_error_head(judged, load_model("mdeblurgan-x2").trust)
    rows = [run(flat, str(judged), "range", work), run(flat, str(judged), "auto", work),
            run(flat, "mdeblurgan-x2", "range", work), run(flat, "mdeblurgan-x2", "auto", work)]
    rows += [run(f, "mdeblurgan-x2", "auto", work) for f in sorted((ROOT / "examples").glob("*_blurry_lr.png"))]
    print("| input | weights | --normalize | map | doubtful | exit |\n|---|---|---|---|---|---|")
    for r in rows:
        share = "-" if r["doubtful_share"] is None else f"{r['doubtful_share']:.2%}"
        print(f"| {r['input']} | {r['weights']} | {r['normalize']} | {r['map']} | {share} | {r['exit']} |")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1) + "\n")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
