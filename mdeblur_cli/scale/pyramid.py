"""Pyramids written in bounded memory: a restored slide's rows go in top first; out come a tiled pyramidal
OME-TIFF (SubIFDs, tiles of 512, each level half the one above by 2x2 means, down to about LAST_SIDE px) or a
multiscale OME-Zarr (NGFF 0.4), chunk by chunk.

Lower levels are made as level 0 streams past (`Halver`, a cascade that holds at most one odd row per level).
For the OME-TIFF they wait in memory-mapped temporary files beside the output (a third of level 0 in all),
because a TIFF's sub-resolutions follow level 0 in the file; for the OME-Zarr they are written as they come.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from ..errors import MdeblurError

TILE = 512  # output tile and chunk side
LAST_SIDE = 1024  # halve while the next level's longer side stays at least this
# what must match for --resume to go on with an unfinished OME-Zarr (besides its shape)
RESUME_KEYS = ("source_path", "source_bytes", "source_mtime_ns", "level", "region", "weights", "tile")


def level_shapes(h: int, w: int) -> list[tuple[int, int]]:
    """(H, W) of every level: level 0, then halves (rounded up) while the longer side stays >= LAST_SIDE."""
    shapes = [(h, w)]
    while max(shapes[-1]) // 2 >= LAST_SIDE:
        ph, pw = shapes[-1]
        shapes.append(((ph + 1) // 2, (pw + 1) // 2))
    return shapes


HALVE_ROWS = 64  # even


class Halver:
    """Rows of one level in (any number per call, top first) -> rows of the next level out (2x2 means, rounded
    for integers; an odd last row or column is paired with itself)."""

    def __init__(self) -> None:
        self.carry: np.ndarray | None = None

    def add(self, rows: np.ndarray, last: bool = False) -> np.ndarray:
        if self.carry is not None:
            rows = np.concatenate([self.carry, rows])
            self.carry = None
        if rows.shape[0] % 2:
            if last:
                rows = np.concatenate([rows, rows[-1:]])
            else:
                self.carry, rows = rows[-1:], rows[:-1]
        if rows.shape[1] % 2:
            rows = np.concatenate([rows, rows[:, -1:]], axis=1)
        out = np.empty((rows.shape[0] // 2, rows.shape[1] // 2, *rows.shape[2:]), rows.dtype)
        for r in range(0, rows.shape[0], HALVE_ROWS):  # float temporaries of HALVE_ROWS rows, not of the block
            f = rows[r : r + HALVE_ROWS].astype(np.float32)
            q = (f[0::2, 0::2] + f[1::2, 0::2] + f[0::2, 1::2] + f[1::2, 1::2]) / 4
            out[r // 2 : (r + f.shape[0]) // 2] = np.rint(q) if rows.dtype.kind in "ui" else q
        return out


class Cascade:
    """Level-0 rows in; each lower level's rows handed to `sinks[k - 1](rows)` as they are made."""

    def __init__(self, n_levels: int, sinks: list[Callable[[np.ndarray], None]]) -> None:
        self.halvers = [Halver() for _ in range(n_levels - 1)]
        self.sinks = sinks

    def add(self, rows: np.ndarray, last: bool = False) -> None:
        for halver, sink in zip(self.halvers, self.sinks, strict=True):
            rows = halver.add(rows, last)
            if rows.shape[0]:
                sink(rows)


def _tiles(blocks: Iterator[np.ndarray], side: int = TILE) -> Iterator[np.ndarray]:
    from .stream import tiles

    return tiles(blocks, side)


class DiskLevel:
    """A lower level waiting on disk (a raw file): rows appended in order by plain writes, read back in bands by
    plain reads."""

    def __init__(self, path: Path, shape: tuple[int, ...], dtype: np.dtype) -> None:
        self.path, self.shape, self.dtype, self.row = path, shape, np.dtype(dtype), 0
        self.row_bytes = int(np.prod(shape[1:])) * self.dtype.itemsize
        path.write_bytes(b"")

    def __call__(self, rows: np.ndarray) -> None:
        with open(self.path, "ab") as f:
            f.write(np.ascontiguousarray(rows, self.dtype).tobytes())
        self.row += rows.shape[0]

    def bands(self, height: int = TILE) -> Iterator[np.ndarray]:
        with open(self.path, "rb") as f:
            for r in range(0, self.shape[0], height):
                n = min(height, self.shape[0] - r)
                band = np.fromfile(f, self.dtype, count=n * self.row_bytes // self.dtype.itemsize)
                yield band.reshape((n, *self.shape[1:]))


def tiff_kwargs(mpp: tuple[float, float] | None, compression: str, quality: int) -> dict:
    """Tile, compression and resolution tags (in cm, as tiffslide reads them) of every level's page."""
    kw: dict = {"tile": (TILE, TILE), "photometric": "rgb"}
    if compression == "jpeg":
        kw.update(compression="jpeg", compressionargs={"level": quality})
    elif compression != "none":
        kw.update(compression=compression)
    if mpp is not None:
        kw.update(resolution=(1e4 / mpp[1], 1e4 / mpp[0]), resolutionunit="CENTIMETER")
    return kw


def write_ome_tiff(dst: Path, rows: Iterator[np.ndarray], shape: tuple[int, int, int], mpp: tuple[float, float] | None,
                   compression: str = "zlib", quality: int = 90, description: str | None = None,
                   name: str = "image") -> int:
    """Level-0 rows (top first, uint8 (r, W, 3)) -> a pyramidal tiled OME-TIFF at `dst`; returns the levels."""
    import tifffile

    h, w, c = shape
    shapes = level_shapes(h, w)
    tmp = [dst.with_name(f".{dst.name}.level{k}.raw") for k in range(1, len(shapes))]
    try:
        levels = [DiskLevel(p, (*s, c), np.uint8) for p, s in zip(tmp, shapes[1:], strict=True)]
        cascade = Cascade(len(shapes), levels)

        def tapped() -> Iterator[np.ndarray]:
            done = 0
            for block in rows:
                done += block.shape[0]
                cascade.add(block, last=done >= h)
                yield block

        meta = {"axes": "YXS", "Name": name}
        if mpp is not None:
            meta.update(PhysicalSizeX=mpp[1], PhysicalSizeY=mpp[0], PhysicalSizeXUnit="µm", PhysicalSizeYUnit="µm")
        if description:
            meta["Description"] = description
        with tifffile.TiffWriter(dst, bigtiff=True, ome=True) as tif:
            tif.write(_tiles(tapped()), shape=shape, dtype=np.uint8, subifds=len(shapes) - 1, metadata=meta,
                      **tiff_kwargs(mpp, compression, quality))
            for k, level in enumerate(levels, start=1):
                f = 2**k
                lm = None if mpp is None else (mpp[0] * f, mpp[1] * f)
                tif.write(_tiles(level.bands()), shape=level.shape, dtype=np.uint8, subfiletype=1, metadata=None,
                          **tiff_kwargs(lm, compression, quality))
    finally:
        for p in tmp:
            p.unlink(missing_ok=True)
    return len(shapes)


class ZarrPyramid:
    """A multiscale OME-Zarr (NGFF 0.4, zarr format 2, axes c, y, x; RGB display metadata) written chunk row by
    chunk row. `rows_done` (in the group's attributes) records how far level 0 got, for --resume; the lower
    levels are made from level 0 once it is complete."""

    def __init__(self, path: Path, shape: tuple[int, int, int], mpp: tuple[float, float] | None, name: str,
                 extra: dict | None = None, resume: bool = False) -> None:
        import zarr

        self.path, self.shape, self.mpp = path, shape, mpp
        h, w, c = shape
        self.shapes = level_shapes(h, w)
        if resume and (path / ".zattrs").exists():
            self.group = zarr.open_group(str(path), mode="r+", zarr_format=2)
            state = dict(self.group.attrs).get("mdeblur", {})
            same = {k: state.get(k) for k in RESUME_KEYS} == {k: (extra or {}).get(k) for k in RESUME_KEYS}
            if state.get("shape") != list(shape) or state.get("levels") != len(self.shapes) or not same:
                raise MdeblurError(f"{path}: --resume: this unfinished output was made from {state.get('source')} "
                                   f"(level {state.get('level')}, region {state.get('region')}, "
                                   f"{state.get('source_bytes')} bytes, weights {state.get('weights')}), not from "
                                   "this input with these options; remove it, or restore without --resume and with "
                                   "--overwrite to start again")
            self.rows_done = int(state.get("rows_done", 0))
            return
        self.group = zarr.open_group(str(path), mode="w", zarr_format=2)
        for k, (lh, lw) in enumerate(self.shapes):
            self.group.create_array(str(k), shape=(c, lh, lw), dtype=np.uint8, chunks=(c, TILE, TILE),
                                    fill_value=0)
        unit = {"unit": "micrometer"} if mpp else {}
        self.group.attrs["multiscales"] = [{
            "version": "0.4", "name": name,
            "axes": [{"name": "c", "type": "channel"}, {"name": "y", "type": "space", **unit},
                     {"name": "x", "type": "space", **unit}],
            "datasets": [{"path": str(k), "coordinateTransformations": [{"type": "scale", "scale": [
                1.0, (mpp[0] if mpp else 1.0) * 2**k, (mpp[1] if mpp else 1.0) * 2**k]}]}
                for k in range(len(self.shapes))]}]
        self.group.attrs["omero"] = {"rdefs": {"model": "color"}, "channels": [
            {"label": n, "color": col, "active": True, "window": {"min": 0, "max": 255, "start": 0, "end": 255}}
            for n, col in zip(("red", "green", "blue"), ("FF0000", "00FF00", "0000FF"), strict=False)][:c]}
        self.group.attrs["mdeblur"] = {"shape": list(shape), "levels": len(self.shapes), "rows_done": 0,
                                       "complete": False, **(extra or {})}
        self.rows_done = 0

    def _state(self, **kw) -> None:
        self.group.attrs["mdeblur"] = {**dict(self.group.attrs)["mdeblur"], **kw}

    def write_rows(self, rows: Iterator[np.ndarray], start: int = 0) -> None:
        """Level-0 rows from row `start` on (top first); written in bands of whole chunk rows."""
        a = self.group["0"]
        h = self.shape[0]
        pending, r0 = [], start
        for block in rows:
            pending.append(block)
            have = sum(b.shape[0] for b in pending)
            if have >= TILE or r0 + have >= h:
                band = np.concatenate(pending)
                n = (band.shape[0] // TILE) * TILE if r0 + band.shape[0] < h else band.shape[0]
                a[:, r0 : r0 + n, :] = np.moveaxis(band[:n], 2, 0)
                r0 += n
                pending = [band[n:]] if n < band.shape[0] else []
                self._state(rows_done=r0)

    def finish(self, extra: dict | None = None, run=None) -> None:
        """The lower levels, each from the one above in bands of 2 x TILE rows (`halve_band`); then mark the store
        complete. `run(calls)` may run one level's bands in parallel (a Dask client), each call (fn, *args)."""
        for k in range(1, len(self.shapes)):
            calls = [(halve_band, str(self.path), k, r) for r in range(0, self.shapes[k - 1][0], 2 * TILE)]
            if run is None:
                for fn, *args in calls:
                    fn(*args)
            else:
                run(calls)
        self._state(complete=True, **(extra or {}))


def halve_band(path: str, k: int, r: int) -> int:
    """Level k's rows from level k - 1's rows r : r + 2 TILE (r even; an odd last row pairs with itself): one
    band, independent of the others, so that a cluster can make a level in parallel."""
    import zarr

    group = zarr.open_group(path, mode="r+", zarr_format=2)
    src, dst = group[str(k - 1)], group[str(k)]
    rows = np.moveaxis(np.asarray(src[:, r : r + 2 * TILE, :]), 0, 2)
    half = Halver().add(rows, last=True)
    dst[:, r // 2 : r // 2 + half.shape[0], :] = np.moveaxis(half, 2, 0)
    return half.shape[0]


def estimate_bytes(h: int, w: int, compression: str) -> int:
    """A conservative size on disk of the output pyramid (level 0 is 3/4 of it): lossless codecs on histology
    are assumed to save nothing, JPEG to reach 1/8."""
    raw = h * w * 3 * 4 / 3
    return int(math.ceil(raw / (8 if compression == "jpeg" else 1)))
