"""Small whole-slide files made with tifffile, for tests and benchmarks: an Aperio-SVS-like file (JPEG tiles,
a thumbnail and lower levels as separate pages, an Aperio description with MPP and AppMag), a JPEG-compressed
generic tiled TIFF, and a pyramidal OME-TIFF (SubIFDs). The tissue is mdeblur's procedural stained plant
tissue (no real H&E image is bundled here outside the reserved ones), mirrored to size; `glass` sets how much
of the slide (its right part) is blank glass."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def tissue_block(side: int = 1024, seed: int = 0) -> np.ndarray:
    """(2 side, 2 side, 3) uint8: a stained-tissue specimen (mdeblur's procedural plant tissue) mirrored 2 x 2,
    so that it tiles without seams."""
    from mdeblur_cli.data.specimens import plant_tissue

    a = (np.clip(plant_tissue(side, seed), 0, 1) * 255).round().astype(np.uint8)
    top = np.concatenate([a, a[:, ::-1]], 1)
    return np.concatenate([top, top[::-1]], 0)


def tissue(h: int, w: int, glass: float = 0.0, seed: int = 0, side: int = 512) -> np.ndarray:
    """(h, w, 3) uint8 stained tissue; the right `glass` share of the columns is glass (bright, faintly noisy)."""
    block = tissue_block(side, seed)
    reps = (-(-h // block.shape[0]), -(-w // block.shape[1]))
    img = np.tile(block, (*reps, 1))[:h, :w].copy()
    if glass > 0:
        cut = int(round(w * (1 - glass)))
        rng = np.random.default_rng(seed)
        img[:, cut:] = np.clip(238 + rng.normal(0, 1.5, (h, w - cut, 1)), 0, 255).astype(np.uint8)
    return img


def _levels(img: np.ndarray, factors) -> list[np.ndarray]:
    import cv2

    return [img if f == 1 else cv2.resize(img, (img.shape[1] // f, img.shape[0] // f), interpolation=cv2.INTER_AREA)
            for f in factors]


def svs_like(path: Path, img: np.ndarray, factors=(1, 4, 16), mpp: float = 0.499, tile: int = 256,
             quality: int = 85) -> Path:
    import tifffile

    h, w = img.shape[:2]
    desc = (f"Aperio Image Library v12.0.15\n{w}x{h} [0,0 {w}x{h}] ({tile}x{tile}) JPEG/RGB Q={quality}"
            f"|AppMag = 20|MPP = {mpp}|ScannerType = test")
    kw = dict(photometric="rgb", metadata=None, compression="jpeg", compressionargs={"level": quality})
    levels = _levels(img, factors)
    with tifffile.TiffWriter(path, bigtiff=img.nbytes > 2**31) as t:
        t.write(levels[0], tile=(tile, tile), description=desc, **kw)
        t.write(_levels(img, (max(1, max(h, w) // 256),))[0], description=desc, **kw)  # thumbnail, stripped
        for lv in levels[1:]:
            t.write(lv, tile=(tile, tile), description=desc, **kw)
    return path


def tiled_jpeg_tiff(path: Path, img: np.ndarray, tile: int = 256, quality: int = 90) -> Path:
    import tifffile

    tifffile.imwrite(path, img, tile=(tile, tile), photometric="rgb", compression="jpeg",
                     compressionargs={"level": quality}, metadata=None)
    return path


def pyramidal_ome_tiff(path: Path, img: np.ndarray, factors=(1, 2, 4), mpp: float = 0.25, tile: int = 256) -> Path:
    import tifffile

    levels = _levels(img, factors)
    with tifffile.TiffWriter(path, bigtiff=True, ome=True) as t:
        for i, lv in enumerate(levels):
            m = mpp * factors[i]
            t.write(lv, tile=(tile, tile), photometric="rgb", compression="zlib",
                    resolution=(1e4 / m, 1e4 / m), resolutionunit="CENTIMETER",
                    subifds=len(levels) - 1 if i == 0 else None, subfiletype=0 if i == 0 else 1,
                    metadata={"axes": "YXS", "PhysicalSizeX": mpp, "PhysicalSizeY": mpp} if i == 0 else None)
    return path


def damage_tile(path: Path, level_page: int = 0, tile: int = 0, how: str = "truncate") -> None:
    """Damage one tile of a page in place: 'truncate' zeroes the tail of its JPEG data (no end-of-image marker;
    decoders fill it grey without a word), 'offset' points it past the end of the file."""
    import tifffile

    with tifffile.TiffFile(path) as tif:
        page = tif.pages[level_page]
        off, n = page.dataoffsets[tile], page.databytecounts[tile]
        tag = page.tags["TileOffsets"]
        tag_off, size, big = tag.valueoffset, tif.filehandle.size, tif.is_bigtiff
    with open(path, "r+b") as f:
        if how == "truncate":
            f.seek(off + n - 16)
            f.write(b"\0" * 16)
        else:
            f.seek(tag_off + tile * (8 if big else 4))
            f.write(int(size + 1000).to_bytes(8 if big else 4, "little"))


def big_svs(path: Path, h: int, w: int, glass: float = 0.5, tile: int = 256, quality: int = 85,
            mpp: float = 0.499, factors=(1, 4, 16, 64)) -> Path:
    """An SVS-like slide of any size written tile by tile (bounded memory): stained tissue on the left, glass
    on the right `glass` share of the columns; levels as in `svs_like`."""
    import cv2
    import tifffile

    block = tissue_block(1024)
    noise = np.clip(238 + np.random.default_rng(1).normal(0, 1.5, (tile, tile, 1)), 0, 255).astype(np.uint8)

    def tiles(f: int):
        b = block if f == 1 else cv2.resize(block, (block.shape[1] // f, block.shape[0] // f), interpolation=cv2.INTER_AREA)
        lh, lw, cut = h // f, w // f, int(round(w * (1 - glass))) // f
        for y in range(0, lh, tile):
            for x in range(0, lw, tile):
                ys, xs = np.arange(y, y + tile) % b.shape[0], np.arange(x, x + tile) % b.shape[1]
                t = b[ys][:, xs].copy()
                cols = np.arange(x, x + tile) >= cut
                t[:, cols] = np.broadcast_to(noise, t.shape)[:, cols]
                yield t

    desc = (f"Aperio Image Library v12.0.15\n{w}x{h} [0,0 {w}x{h}] ({tile}x{tile}) JPEG/RGB Q={quality}"
            f"|AppMag = 20|MPP = {mpp}|ScannerType = test")
    kw = dict(photometric="rgb", metadata=None, compression="jpeg", compressionargs={"level": quality})
    with tifffile.TiffWriter(path, bigtiff=True) as t:
        t.write(tiles(1), shape=(h, w, 3), dtype=np.uint8, tile=(tile, tile), description=desc, **kw)
        thumb = max(1, max(h, w) // 512)
        t.write(cv2.resize(block, (512 * w // max(h, w), 512 * h // max(h, w))), description=desc, **kw)
        del thumb
        for f in factors[1:]:
            if max(h, w) // f >= tile:
                t.write(tiles(f), shape=(h // f, w // f, 3), dtype=np.uint8, tile=(tile, tile), description=desc, **kw)
    return path
