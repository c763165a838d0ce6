"""Restoring a large single-plane TIFF in bounded memory: windows read from a memory-mapped input, one band of
window rows accumulated at a time, finished output rows streamed as tiles into a tiled BigTIFF.

The result equals the in-memory restore (the same windows, weights and normalisation); only the order of the
work and where the pixels live differ.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..data.degrade import upscale_bicubic
from ..restore.normalize import Normalization, choose, dtype_range
from ..restore.tiles import Blend, Grid, Window, forward_windows, network_input, spans

STREAM_MIN_PIXELS = 4096 * 4096  # larger gray or RGB TIFFs restored to TIFF stream
OUT_TILE = 256  # output TIFF tile side
GROUP_COLS = 4096  # output columns per cross-fade accumulator: a band's float rows never span the whole width


def open_memmap(path: Path):
    """The first series of a TIFF as a read-only memory map, or None if it is compressed or not contiguous."""
    import tifffile

    try:
        return tifffile.memmap(str(path), mode="r")
    except (ValueError, OSError):
        return None


def plane_shape(path: Path) -> tuple[int, int]:
    """(H, W) of a memory-mappable TIFF's plane."""
    return tuple(open_memmap(path).shape[:2])


def _read(arr, y0: int, y1: int, x0: int, x1: int, h: int, w: int) -> np.ndarray:
    """Rows y0:y1, columns x0:x1 of the image padded by reflection at the bottom and right to a multiple of 8."""
    win = np.asarray(arr[y0 : min(y1, h), x0 : min(x1, w)], dtype=np.float32)
    py, px = y1 - min(y1, h), x1 - min(x1, w)
    if py or px:
        win = np.pad(win, ((0, py), (0, px)) + ((0, 0),) * (win.ndim - 2), mode="reflect")
    return win


def stream_restore(
    arr, model: nn.Module, rgb: bool, norm: Normalization, tile: int, device: torch.device,
    dtype: torch.dtype = torch.float32, progress: Callable[[int, int], None] | None = None,
    reopen: Callable[[], np.ndarray] | None = None, skip: Callable[[Window], bool] | None = None,
    start_row: int = 0,
) -> Iterator[np.ndarray]:
    """Yield the restored image's rows in order, as (rows, W*s[, 3]) blocks in the input's dtype.

    `arr` is (H, W) gray or (H, W, 3) RGB, any array that slices (a memmap); `norm` maps it to network units.
    The tile engine gets the windows one band of window rows at a time; one Blend per GROUP_COLS output columns
    hands back each band's finished rows, converted to the output dtype group by group and joined (the float
    rows held are one group's window row and the overlap rows, not whole bands of the whole width). `reopen`
    gives a fresh map for each band, so the pages of finished bands leave this process's memory. `skip(window)`
    True: that window is upscaled by bicubic instead of the network (glass). With `start_row`, only output rows
    from there on are made and yielded (resuming).
    """
    h, w = arr.shape[:2]
    s, grid = model.scale, Grid.of(model)
    hp, wp = grid.up(h), grid.up(w)
    rows, cols = spans(hp, tile, grid), spans(wp, tile, grid)
    lo, hi = dtype_range(arr.dtype)
    wins = [Window(y0, y1, x0, x1) for y0, y1 in rows for x0, x1 in cols if y1 * s > start_row]
    rows = [r for r in rows if r[1] * s > start_row]
    groups = [(c0, min(c0 + GROUP_COLS, wp * s)) for c0 in range(0, wp * s, GROUP_COLS)]
    blends = [Blend((start_row, hp * s, c0, c1), (hp, wp), wins, s, grid, gray=not rgb) for c0, c1 in groups]
    pieces: dict[int, dict[int, np.ndarray]] = {}

    def finish(out: np.ndarray, row: int, c0: int) -> np.ndarray:
        out = norm.invert(out)
        if np.issubdtype(arr.dtype, np.integer):
            out = np.rint(np.clip(out, lo, hi))
        out = out[: max(0, min(out.shape[0], h * s - row)), : max(0, w * s - c0)].astype(arr.dtype)
        return out if rgb else out[..., 0]

    def reader(band_arr) -> Callable[[Window], np.ndarray]:
        def read(win: Window) -> np.ndarray:
            x = norm.apply(_read(band_arr, win.y0, win.y1, win.x0, win.x1, h, w))
            return x if rgb else x[..., None]
        return read

    done = 0
    for y0, _ in rows:
        band = [win for win in wins if win.y0 == y0]
        read = reader(reopen() if reopen is not None else arr)
        glass = [win for win in band if skip(win)] if skip is not None else []
        work = [win for win in band if win not in glass]
        bicubic = ((win, upscale_bicubic(torch.from_numpy(network_input(read(win)).transpose(2, 0, 1).copy()), s,
                                         clip=False).permute(1, 2, 0)) for win in glass)
        for win, y in itertools.chain(bicubic, forward_windows(model, read, work, device, dtype, batch=1)):
            for g, (c0, c1) in enumerate(groups):
                if win.x0 * s < c1 and win.x1 * s > c0:
                    for row, out in blends[g].add(win, y):
                        pieces.setdefault(row, {})[g] = finish(out, row, c0)
            while pieces and len(pieces[first := min(pieces)]) == len(groups):
                ready = pieces.pop(first)
                yield np.concatenate([ready[g] for g in range(len(groups))], axis=1)
            done += 1
            if progress is not None:
                progress(done, len(wins))


def ahead(blocks: Iterator[np.ndarray], depth: int = 1) -> Iterator[np.ndarray]:
    """`blocks`, made in a thread up to `depth` blocks ahead of the consumer: the network's next windows overlap
    the encoding and writing of the rows before them (torch, zlib and JPEG release the GIL). At most depth + 2
    blocks live at once (a band of rows each). The producer's error is raised here; a consumer that stops early
    (an error, Ctrl-C) stops the producer at its next block and waits for it."""
    import queue
    import threading

    q: queue.Queue = queue.Queue(maxsize=depth)
    stop, end = threading.Event(), object()

    def put(item) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for block in blocks:
                if not put(block):
                    return
            put(end)
        except BaseException as exc:  # handed to the consumer, which raises it
            put(exc)

    worker = threading.Thread(target=produce, name="mdeblur-rows", daemon=True)
    worker.start()
    try:
        while (item := q.get()) is not end:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:  # joined, not left running: a daemon thread inside torch at exit aborts the process (Ctrl-C)
        stop.set()
        worker.join()


def _full(t: np.ndarray, side: int) -> np.ndarray:
    """A tile zero-padded to side x side (TIFF tiles are all one size; readers crop to the image)."""
    pad = ((0, side - t.shape[0]), (0, side - t.shape[1])) + ((0, 0),) * (t.ndim - 2)
    return np.pad(t, pad) if pad[0][1] or pad[1][1] else t


def tiles(blocks: Iterator[np.ndarray], side: int = OUT_TILE) -> Iterator[np.ndarray]:
    """Row blocks of any height to (side, side[, C]) tiles in row-major order (edge tiles zero-padded). Each tile
    is joined from the blocks' slices, so no whole-width band is ever copied."""
    pending: list[np.ndarray] = []
    have = 0

    def tile_row(n: int) -> Iterator[np.ndarray]:
        nonlocal pending, have
        parts, left = [], n
        for blk in pending:
            parts.append(blk[:left])
            left -= parts[-1].shape[0]
            if not left:
                break
        width = pending[0].shape[1]
        for x in range(0, width, side):
            yield _full(np.concatenate([p[:, x : x + side] for p in parts]), side)
        rest = pending[len(parts) - 1][parts[-1].shape[0]:]
        pending = ([rest] if rest.shape[0] else []) + pending[len(parts):]
        have -= n

    for block in blocks:
        pending.append(block)
        have += block.shape[0]
        while have >= side:
            yield from tile_row(side)
    if have:
        yield from tile_row(have)


def eligible(shape: tuple[int, ...], axes: str, dtype: np.dtype, rgb: bool) -> bool:
    """A single gray (YX) or 3-sample RGB (YXS) plane of 8/16-bit large enough to be worth streaming."""
    plane = axes == "YX" or (axes == "YXS" and shape[2] == 3 and rgb)
    return plane and np.dtype(dtype) in (np.uint8, np.uint16) and shape[0] * shape[1] >= STREAM_MIN_PIXELS


def probe(src: Path, dst: Path, axes: str | None, channels: str):
    """(rgb, meta) when `src` -> `dst` can stream: a plain TIFF holding one memory-mappable gray or RGB plane of
    8/16 bits, large enough, written to a plain TIFF; None otherwise (the in-memory path then runs)."""
    import tifffile

    from ..formats.series import TIFF_EXT, is_ome_path
    from ..formats.tiff import tiff_meta
    from ..restore.arrays import choose_channels

    if Path(src).suffix.lower() not in TIFF_EXT or Path(dst).suffix.lower() not in TIFF_EXT or is_ome_path(dst):
        return None
    try:
        with tifffile.TiffFile(src) as tif:
            if len(tif.series) != 1 or tif.is_ome or tif.is_imagej:
                return None
            s = tif.series[0]
            shape, ax, dtype = tuple(s.shape), (axes or s.axes).upper(), s.dtype
            meta = tiff_meta(tif, tif.pages[0])
    except Exception:  # anything odd: the in-memory path reads it and reports what is wrong
        return None
    if len(ax) != len(shape) or ax not in ("YX", "YXS"):
        return None
    rgb = ax == "YXS"
    if rgb and (shape[2] != 3 or choose_channels(channels, 3, dtype, meta.rgb) != "rgb"):
        return None
    if not eligible(shape, ax, dtype, rgb) or open_memmap(Path(src)) is None:
        return None
    return rgb, meta


def write_streamed(src: Path, dst: Path, model: nn.Module, rgb: bool, normalize: str,
                   percentiles: tuple[float, float], tile: int, device: torch.device, dtype: torch.dtype,
                   meta, progress=None) -> Normalization | None:
    """Restore a memory-mappable TIFF into a tiled BigTIFF `dst`; None if the input cannot be memory-mapped."""
    import tifffile

    from ..formats.series import Series
    from ..formats.tiff import tiff_kwargs

    arr = open_memmap(src)
    if arr is None:
        return None
    model = model.to(device, memory_format=torch.channels_last)
    norm = choose(arr, normalize, percentiles)  # percentiles from a strided sample of the map, not a copy
    s = model.scale
    shape = (arr.shape[0] * s, arr.shape[1] * s, *arr.shape[2:])
    kw = tiff_kwargs(Series(np.empty((1, 1, 3) if rgb else (1, 1), arr.dtype), "YXS" if rgb else "YX", meta.scaled(s)))
    kw.pop("planarconfig", None)
    with tifffile.TiffWriter(dst, bigtiff=True) as tif:
        tif.write(tiles(ahead(stream_restore(arr, model, rgb, norm, tile, device, dtype, progress,
                                             reopen=lambda: open_memmap(src)))), shape=shape,
                  dtype=arr.dtype, tile=(OUT_TILE, OUT_TILE), **kw)
    return norm
