"""Copy a run's best weights into weights/ under a shipped name and rewrite weights/manifest.json.

    python benchmarks/ship_weights.py runs/mdeblurgan-x2/best.safetensors mdeblurgan-x2
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from mdeblur_cli.weights import SHIPPED_DIR, load_model, write_manifest


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("weights", type=Path)
    ap.add_argument("name")
    args = ap.parse_args()
    load_model(args.weights)  # refuse files that do not rebuild
    shutil.copyfile(args.weights, SHIPPED_DIR / f"{args.name}.safetensors")
    for name, entry in write_manifest().items():
        print(f"{name}: {entry['bytes']:,} bytes, sha256 {entry['sha256'][:16]}..., "
              f"val PSNR {entry['provenance'].get('val_psnr', float('nan')):.3f} dB")


if __name__ == "__main__":
    main()
