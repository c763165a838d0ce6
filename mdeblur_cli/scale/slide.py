"""Restoring a whole slide in bounded memory: windows read from the chosen level's lazily decoded tiles, through
the tile engine band by band (scale/stream.py), into a pyramidal OME-TIFF or a multiscale OME-Zarr
(scale/pyramid.py). Glass is found on a low pyramid level (Otsu on saturation, as histology tools do) and its
windows are upscaled by bicubic instead of the network; a tissue pixel is only ever covered by windows that hold
tissue, so the tissue is the same with and without skipping.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..errors import MdeblurError
from ..formats.slide import Slide, SlideOptions, check_tiles, open_slide, window
from ..restore.normalize import choose
from ..restore.tiles import Grid, Window, windows
from . import pyramid
from .stream import ahead, stream_restore

MASK_SIDE = 2048  # the glass mask is made on the coarsest level whose longer side (over the region) is at least this
MIN_SATURATION = 20  # 8-bit saturation below which a pixel is glass whatever Otsu says (a slide of glass only)


@dataclass
class SlidePlan:
    """One slide job, checked before any compute."""

    slide: Slide
    level: int
    box: tuple[int, int, int, int]  # (y0, y1, x0, x1) of the level
    mpp: tuple[float, float] | None  # of the chosen level


def plan(src: Path, dst: Path, opts: SlideOptions, scale: int) -> SlidePlan:
    """Open the slide, check the level, region and tiles, and the room on disk for the output."""
    slide = open_slide(src)
    try:
        box = window(slide, opts.level, opts.region)
        check_tiles(slide, opts.level)
        slide.array(opts.level)  # 8-bit RGB, one plane
        h, w = (box[1] - box[0]) * scale, (box[3] - box[2]) * scale
        need = pyramid.estimate_bytes(h, w, opts.compression)
        if str(dst).lower().endswith((".tif", ".tiff")):
            need += h * w  # the lower levels wait on disk beside the output (a third of level 0, 3 bytes a px)
        free = shutil.disk_usage(dst.parent if dst.parent.exists() else Path.cwd()).free
        if need > free:
            raise MdeblurError(f"{src} -> {dst}: the output needs about {_size(need)} ({w} x {h} px pyramid, "
                               f"{opts.compression}) and {dst.parent} has {_size(free)} free")
    except MdeblurError:
        slide.close()
        raise
    return SlidePlan(slide, opts.level, box, slide.level_mpp(opts.level))


def _size(n: float) -> str:
    return f"{n / 1e9:.1f} GB" if n >= 1e9 else f"{n / 1e6:.1f} MB"


class Region:
    """A box of a level as an array that slices (what stream_restore reads windows from); RGBA drops alpha."""

    def __init__(self, array, box: tuple[int, int, int, int], path: str = "", level: int = 0) -> None:
        self.array, self.box, self.path, self.level = array, box, path, level
        self.shape = (box[1] - box[0], box[3] - box[2], 3)
        self.dtype = np.dtype(np.uint8)

    def __getitem__(self, key) -> np.ndarray:
        ys, xs = key[0], key[1]
        y0, _, x0, _ = self.box
        r0, r1, c0, c1 = y0 + ys.start, y0 + ys.stop, x0 + xs.start, x0 + xs.stop
        try:
            return np.asarray(self.array[r0:r1, c0:c1])[..., :3]
        except Exception as exc:  # a damaged tile the checks could not see: name where, and go no further
            raise MdeblurError(f"{self.path}: the tiles under rows {r0}-{r1}, columns {c0}-{c1} of level "
                               f"{self.level} could not be decoded ({type(exc).__name__}: "
                               f"{(str(exc).splitlines() or [''])[0]}); the file is damaged") from None


def tissue_mask(p: SlidePlan) -> tuple[np.ndarray, float]:
    """(tissue mask of the region on a coarse level, restore-level px per mask px): Otsu on HSV saturation."""
    import cv2

    y0, y1, x0, x1 = p.box
    base = p.slide.downsamples[p.level]
    coarse = p.level
    for k in range(p.level, len(p.slide.levels)):
        f = p.slide.downsamples[k] / base
        if max(y1 - y0, x1 - x0) / f >= MASK_SIDE:
            coarse = k
    f = p.slide.downsamples[coarse] / base
    a = p.slide.array(coarse)
    cy0, cy1 = int(y0 / f), max(int(y0 / f) + 1, int(np.ceil(y1 / f)))
    cx0, cx1 = int(x0 / f), max(int(x0 / f) + 1, int(np.ceil(x1 / f)))
    step = max(1, int(max(cy1 - cy0, cx1 - cx0) // (2 * MASK_SIDE)))  # a single-level slide: sample it sparsely
    img = np.ascontiguousarray(np.asarray(a[cy0:cy1:step, cx0:cx1:step])[..., :3])
    sat = cv2.GaussianBlur(cv2.cvtColor(img, cv2.COLOR_RGB2HSV)[..., 1], (5, 5), 0)
    t, _ = cv2.threshold(sat, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    return sat > max(t, MIN_SATURATION), f * step


def glass_windows(mask: np.ndarray, per: float, margin: int):
    """The predicate 'this window (region px) holds no tissue within `margin` px'."""
    def skip(win: Window) -> bool:
        r0, r1 = int((win.y0 - margin) // per), int(np.ceil((win.y1 + margin) / per))
        c0, c1 = int((win.x0 - margin) // per), int(np.ceil((win.x1 + margin) / per))
        return not mask[max(r0, 0) : max(r1, 0), max(c0, 0) : max(c1, 0)].any()
    return skip


def weights_id(net: nn.Module) -> str:
    """A fingerprint of the network's weights (what --resume must find unchanged)."""
    import hashlib

    digest = hashlib.sha256()
    for t in net.state_dict().values():
        digest.update(t.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def glass_flags(p: SlidePlan, wins: list[Window], grid: Grid) -> list[bool]:
    """Per window (region px): True where it holds only glass."""
    mask, per = tissue_mask(p)
    is_glass = glass_windows(mask, per, margin=int(np.ceil(per)) + 8)  # a window already holds its context
    return [is_glass(win) for win in wins]


def describe(p: SlidePlan, wins: list[Window], glass: list[bool]) -> dict:
    """What the output's metadata says of its making: the source, level and region, and which windows were
    glass (a bit per window, in the order of `window_boxes`, packed and base64-encoded)."""
    y0, y1, x0, x1 = p.box
    return {"made_by": "mdeblur restore", "source": Path(p.slide.path).name, "level": p.level,
            "region": [x0, y0, x1 - x0, y1 - y0], "vendor": p.slide.vendor, "objective_power": p.slide.objective,
            "source_mpp": list(p.mpp) if p.mpp else None, "source_description": p.slide.description,
            "glass": {"rule": "Otsu on HSV saturation of a low level; windows without tissue upscaled by bicubic",
                      "window_boxes": "x0,y0,x1,y1 of each window (input px of the region), raster order",
                      "windows": len(wins), "skipped_count": int(sum(glass)),
                      "skipped": base64.b64encode(np.packbits(np.array(glass, bool)).tobytes()).decode(),
                      "boxes": base64.b64encode(np.array([[w.x0, w.y0, w.x1, w.y1] for w in wins], "<u4").tobytes()).decode()}}


def restore_slide(p: SlidePlan, dst: Path, net: nn.Module, opts: SlideOptions, tile: int, device: torch.device,
                  dtype: torch.dtype, progress=None) -> dict:
    """Restore the plan's region into `dst` (.ome.tif/.tif: pyramidal OME-TIFF, written atomically by the
    caller; .ome.zarr: multiscale OME-Zarr, built under NAME.partial and renamed when complete). Returns what
    was done (tiles, glass skipped, levels, the output row a --resume went on from)."""
    net = net.to(device, memory_format=torch.channels_last)
    region = Region(p.slide.array(p.level), p.box, str(p.slide.path), p.level)
    norm = choose(np.zeros((1, 1, 3), np.uint8), "range")  # 8-bit RGB: the full range, as restore does
    s, grid = net.scale, Grid.of(net)
    h, w = region.shape[:2]
    wins = list(windows(grid.up(h), grid.up(w), tile, grid))
    flags = glass_flags(p, wins, grid) if opts.skip_background else [False] * len(wins)
    where = dict(zip(wins, flags, strict=True))
    skip = (lambda win: where[win]) if any(flags) else None  # noqa: E731
    glass = np.array(flags, bool)
    out_mpp = None if p.mpp is None else (p.mpp[0] / s, p.mpp[1] / s)
    name = Path(p.slide.path).name
    source = describe(p, wins, flags)

    def prog(done: int, n: int) -> None:
        if progress is not None:
            progress(done, n, int(glass.sum()))

    if str(dst).lower().endswith(".zarr"):
        partial = dst.with_name(dst.name + ".partial")
        if partial.exists() and not opts.resume and not opts.overwrite:
            raise MdeblurError(f"{partial}: an unfinished output of an interrupted run is there; add --resume to go "
                               "on from it, or --overwrite to start again")
        st = Path(p.slide.path).stat()
        source.update(source_path=str(Path(p.slide.path).resolve()), source_bytes=st.st_size,
                      source_mtime_ns=st.st_mtime_ns, weights=weights_id(net), tile=tile)
        store = pyramid.ZarrPyramid(partial, (h * s, w * s, 3), out_mpp, name, extra=source,
                                    resume=opts.resume and partial.exists())
        store.write_rows(ahead(stream_restore(region, net, True, norm, tile, device, dtype, prog, skip=skip,
                                              start_row=store.rows_done)), store.rows_done)
        store.finish()
        if dst.exists():
            shutil.rmtree(dst)
        os.replace(partial, dst)
        levels, resumed = len(store.shapes), store.rows_done
    else:
        resumed = 0
        rows = ahead(stream_restore(region, net, True, norm, tile, device, dtype, prog, skip=skip))
        levels = pyramid.write_ome_tiff(dst, rows, (h * s, w * s, 3), out_mpp, opts.compression, opts.quality,
                                        description=json.dumps(source), name=name)
    return {"tiles": int(glass.size), "glass_tiles": int(glass.sum()), "levels": levels, "resumed_from_row": resumed}
