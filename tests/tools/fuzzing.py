"""Seed files and byte mutations for fuzzing the image reader and the weights loader (tests and benchmarks).

The only outcome allowed for any input is a clean result or an MdeblurError: never another exception.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from mdeblur_cli.errors import MdeblurError


def seed_files() -> dict[str, bytes]:
    """Small valid files of each format the reader takes, as bytes."""
    import cv2
    import tifffile

    rng = np.random.default_rng(0)
    img8 = rng.integers(0, 255, (12, 10, 3), dtype=np.uint8)
    img16 = rng.integers(0, 4000, (2, 9, 11), dtype=np.uint16)
    seeds = {}
    for ext, arr in ((".png", img8), (".png", img16[0]), (".jpg", img8), (".bmp", img8)):
        ok, buf = cv2.imencode(ext, arr)
        seeds[f"seed{len(seeds)}{ext}"] = buf.tobytes()
    for name, kwargs in (("plain.tif", {}), ("ij.tif", {"imagej": True, "metadata": {"axes": "ZYX", "spacing": 2}}),
                         ("x.ome.tif", {"ome": True, "metadata": {"axes": "CYX", "PhysicalSizeX": 0.5}})):
        buf = io.BytesIO()
        tifffile.imwrite(buf, img16, photometric="minisblack", **kwargs)
        seeds[name] = buf.getvalue()
    return seeds


def mutate(data: bytes, rng: np.random.Generator) -> bytes:
    """One random mutation: flip bytes, overwrite a run, insert or delete bytes, or truncate."""
    b = bytearray(data)
    if len(b) < 2:  # nothing left to mutate: some junk
        return rng.integers(0, 256, int(rng.integers(0, 64)), dtype=np.uint8).tobytes()
    kind = rng.integers(0, 5)
    if kind == 0:  # flip a few bytes
        for _ in range(int(rng.integers(1, 8))):
            b[int(rng.integers(0, len(b)))] = int(rng.integers(0, 256))
    elif kind == 1:  # an interesting value over a run (sizes, offsets)
        i = int(rng.integers(0, max(1, len(b) - 4)))
        b[i : i + 4] = bytes(rng.choice([b"\xff\xff\xff\xff", b"\x00\x00\x00\x00", b"\x7f\xff\xff\xff",
                                         b"\x00\x01\x00\x00"]))
    elif kind == 2:  # insert junk
        i = int(rng.integers(0, len(b)))
        b[i:i] = rng.integers(0, 256, int(rng.integers(1, 64)), dtype=np.uint8).tobytes()
    elif kind == 3:  # delete a run
        i = int(rng.integers(0, len(b)))
        del b[i : i + int(rng.integers(1, 64))]
    else:  # truncate
        b = b[: int(rng.integers(0, len(b)))]
    return bytes(b)


def read_once(path: Path, max_pixels: int = 1 << 22) -> str:
    """Read a file as `restore` does; 'ok' or 'refused'. Any other exception propagates (a bug)."""
    from mdeblur_cli.formats.stacks import read_series

    try:
        read_series(path, max_pixels=max_pixels)
        return "ok"
    except MdeblurError:
        return "refused"


def load_once(path: Path) -> str:
    """Load weights as `restore --weights` does; 'ok' or 'refused'. Any other exception propagates (a bug)."""
    from mdeblur_cli.weights import load_model

    try:
        load_model(path)
        return "ok"
    except MdeblurError:
        return "refused"
