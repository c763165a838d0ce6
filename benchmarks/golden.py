"""Golden outputs for refactors: restore a fixed set of inputs through every tile path (in-memory, streamed TIFF,
Dask plane) with the shipped weights and print, or check, the sha256 of each output's pixels.

    python benchmarks/golden.py --write benchmarks/golden.json   # before a refactor
    python benchmarks/golden.py --check benchmarks/golden.json   # after each step: exit 1 on any change

Hashes cover the decoded pixels (not the file bytes, which hold dates and library versions). They are exact on
one machine and torch build; another CPU may round differently, so this is a refactoring tool, not a CI test.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import tifffile

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _hash(a: np.ndarray) -> str:
    a = np.ascontiguousarray(a)
    return hashlib.sha256(f"{a.dtype}{a.shape}".encode() + a.tobytes()).hexdigest()


def _smooth(h: int, w: int, seed: int) -> np.ndarray:
    """Seeded smooth structure in [0, 1]: low-pass noise, as a specimen."""
    import torch
    import torch.nn.functional as F

    g = torch.Generator().manual_seed(seed)
    x = torch.rand(1, 1, h // 8 + 2, w // 8 + 2, generator=g)
    x = F.interpolate(x, size=(h, w), mode="bicubic", align_corners=False)[0, 0].numpy()
    return np.clip((x - x.min()) / (x.max() - x.min()), 0, 1)


def run(tmp: Path) -> dict[str, str]:
    from mdeblur_cli.formats.images import read_image
    from mdeblur_cli.restore.arrays import restore_array
    from mdeblur_cli.restore.files import restore_file
    from mdeblur_cli.scale import stream
    from mdeblur_cli.weights import load_model

    model = load_model("mdeblurgan-x2")
    out: dict[str, str] = {}
    for f in sorted((ROOT / "examples").glob("*_blurry_lr.png")):  # 8-bit RGB, in memory, one window and tiled
        img = read_image(f).pages[0]
        out[f"{f.name} tile 320"] = _hash(restore_array(img, model))
        out[f"{f.name} tile 64"] = _hash(restore_array(img, model, tile=64))
    stack = np.rint(200 + np.stack([_smooth(150, 170, s) for s in range(3)]) * 3000).astype(np.uint16)
    out["16-bit ZYX stack tile 64"] = _hash(restore_array(stack, model, axes="ZYX", tile=64))
    for name, img in (("gray16", np.rint(100 + _smooth(301, 517, 7) * 3000).astype(np.uint16)),
                      ("rgb8", np.rint(np.stack([_smooth(250, 190, s) for s in (8, 9, 10)], 2) * 255)
                       .astype(np.uint8))):
        src, dst = tmp / f"{name}.tif", tmp / f"{name}_x2.tif"
        tifffile.imwrite(src, img, photometric="rgb" if img.ndim == 3 else "minisblack")
        old = stream.STREAM_MIN_PIXELS
        stream.STREAM_MIN_PIXELS = 1
        try:
            res = restore_file(src, dst, model, tile=64)
        finally:
            stream.STREAM_MIN_PIXELS = old
        assert res.streamed, name
        out[f"streamed TIFF {name} tile 64"] = _hash(tifffile.imread(dst))
    out["dask plane 16-bit tile 96"] = _dask(tmp)
    return out


def _dask(tmp: Path) -> str:
    import zarr
    from distributed import Client, LocalCluster

    from mdeblur_cli.formats.series import Meta, Series
    from mdeblur_cli.formats.stacks import write_series
    from mdeblur_cli.scale import plane

    img = np.rint(50 + _smooth(300, 420, 11) * 4000).astype(np.uint16)
    src, dst = tmp / "p.ome.zarr", tmp / "o.ome.zarr"
    write_series(src, [Series(img, "YX", Meta(kind="ome", ome={"Pixels": {"PhysicalSizeX": 0.5}}))])
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as lc, \
            Client(lc) as client:
        old = plane.CHUNK
        plane.CHUNK = 256
        try:
            plane.restore_plane_distributed(client, src, dst, "mdeblurgan-x2", 96, "auto", None)
        finally:
            plane.CHUNK = old
    return _hash(np.asarray(zarr.open_group(str(dst), mode="r")["0"][...]))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    group = ap.add_mutually_exclusive_group(required=True)
    group.add_argument("--write", type=Path)
    group.add_argument("--check", type=Path)
    args = ap.parse_args()
    import torch

    torch.set_num_threads(1)  # thread count can change float summation order
    with tempfile.TemporaryDirectory() as tmp:
        got = run(Path(tmp))
    if args.write:
        args.write.write_text(json.dumps(got, indent=1) + "\n")
        print(f"{len(got)} golden outputs written to {args.write}")
        return 0
    want = json.loads(args.check.read_text())
    bad = [k for k in want if got.get(k) != want[k]]
    for k in want:
        print(f"{'same   ' if k not in bad else 'CHANGED'} {k}")
    print(f"{len(want) - len(bad)} of {len(want)} golden outputs unchanged")
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
