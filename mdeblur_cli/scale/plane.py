"""One huge plane over a Dask cluster: window tasks through the tile engine's forward, chunk tasks that blend
them with its Blend and write OME-Zarr; no process holds the whole image. A gray 8/16-bit plane (OME-Zarr or
TIFF) or a whole slide's RGB level (read by each task from the file's path, as the client names it); a slide's
glass windows are upscaled by bicubic, and its output is a multiscale OME-Zarr (scale/pyramid.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import MdeblurError
from .workers import completed, worker_model


def open_plane(path: Path):
    """A lazily read 2-D gray plane (zarr array) from OME-Zarr or TIFF, or None when the file is something else."""
    import zarr

    from ..formats.ngff import is_zarr

    try:
        if is_zarr(path):
            group = zarr.open_group(str(path), mode="r")
            attrs = dict(group.attrs)
            attrs = attrs.get("ome", attrs)
            ms = attrs["multiscales"][0]
            arr = group[ms["datasets"][0]["path"]]
            names = "".join((a["name"] if isinstance(a, dict) else a)[0].upper() for a in ms["axes"])
        elif path.suffix.lower() in (".tif", ".tiff"):
            import tifffile

            with tifffile.TiffFile(str(path)) as tif:
                if len(tif.series) != 1:
                    return None
                names = tif.series[0].axes
            arr = zarr.open(tifffile.imread(str(path), aszarr=True), mode="r")
        else:
            return None
    except Exception:
        return None
    squeezed = [n for n, s in zip(names, arr.shape, strict=False) if s != 1]
    if len(arr.shape) != len(names) or squeezed != ["Y", "X"] or arr.dtype not in (np.uint8, np.uint16):
        return None
    return arr

def huge_plane_job(src: Path, dst: Path) -> bool:
    """Whether --cluster restores this input as one plane spread over the workers: a gray 8/16-bit plane in
    OME-Zarr or TIFF, or a whole slide, restored to OME-Zarr."""
    from ..formats.ngff import is_zarr
    from ..formats.slide import is_slide

    return is_zarr(dst) and (is_slide(src) or open_plane(src) is not None)

def _read_window(src: str, y0: int, y1: int, x0: int, x1: int, h: int, w: int, slide=None) -> np.ndarray:
    """A window of the plane (gray) or, with `slide` = (level, (y0, y1, x0, x1)), of the slide's level (RGB)."""
    from .stream import _read

    if slide is not None:
        from ..formats.slide import open_slide
        from .slide import Region

        sl = open_slide(src)
        try:
            return _read(Region(sl.array(slide[0]), slide[1]), y0, y1, x0, x1, h, w)
        finally:
            sl.close()
    arr = open_plane(Path(src))
    if arr is None:
        raise MdeblurError(f"{src}: this worker cannot read it (workers must see the client's file paths)")
    return _read(_Squeezed(arr), y0, y1, x0, x1, h, w)

class _Squeezed:
    """Index a (1, ..., 1, H, W) zarr array as (H, W)."""

    def __init__(self, arr) -> None:
        self.arr, self.lead = arr, (0,) * (len(arr.shape) - 2)
        self.shape, self.dtype = tuple(arr.shape[-2:]), arr.dtype
        self.size = self.shape[0] * self.shape[1]

    def __getitem__(self, key):
        return np.asarray(self.arr[(*self.lead, *key)])

    def __array__(self, dtype=None, copy=None):  # the whole plane: only for small ones (normalize's sample)
        return np.asarray(self[:, :], dtype=dtype)

def restore_window(src: str, win: tuple[int, int, int, int], shape: tuple[int, int], norm: tuple[str, float, float],
                   weights: str, slide=None, glass: bool = False) -> np.ndarray:
    """One restore window on a worker: its network output (bicubic for `glass`), (h*s, w*s, 3) float32, in
    network units."""
    import torch

    from ..data.degrade import upscale_bicubic
    from ..restore.normalize import Normalization
    from ..restore.tiles import Window, forward_windows, network_input

    net = worker_model(weights).net.to(memory_format=torch.channels_last)

    def read(w: Window) -> np.ndarray:
        x = Normalization(*norm).apply(_read_window(src, w.y0, w.y1, w.x0, w.x1, *shape, slide)).astype(np.float32)
        return x if slide is not None else x[..., None]

    if glass:
        x = torch.from_numpy(network_input(read(Window(*win))).transpose(2, 0, 1).copy())
        return upscale_bicubic(x, net.scale, clip=False).permute(1, 2, 0).numpy()
    ((_, y),) = forward_windows(net, read, [Window(*win)], torch.device("cpu"))
    return y.numpy()

def write_chunk(dst: str, region: tuple[int, int, int, int], padded: tuple[int, int], scale: int, grid: tuple[int, int],
                parts: list, norm: tuple[str, float, float], dtype: str, rgb: bool, *outputs) -> int:
    """Blend the windows that cover one output chunk with the tile engine's Blend, as the in-process restore
    does, and write it. `grid` is the network's (multiple, context)."""
    import torch
    import zarr

    from ..restore.arrays import cast_to, map_back
    from ..restore.normalize import Normalization
    from ..restore.tiles import Blend, Grid, Window

    r0, r1, c0, c1 = region
    wins = [Window(*p) for p in parts]
    blend = Blend(region, padded, wins, scale, Grid(*grid), gray=not rgb)
    out = np.empty((r1 - r0, c1 - c0, 3 if rgb else 1), np.float32)
    for win, y in zip(wins, outputs, strict=True):  # in the windows' raster order, as in-process
        for row, rows in blend.add(win, torch.from_numpy(y)):
            out[row - r0 : row - r0 + rows.shape[0]] = rows
    out = cast_to(map_back(out if rgb else out[..., 0], Normalization(*norm), np.dtype(dtype)), np.dtype(dtype))
    arr = zarr.open_array(str(Path(dst) / "0"), mode="r+")
    if rgb:  # a slide's pyramid: (c, y, x)
        arr[:, r0:r1, c0:c1] = np.moveaxis(out, 2, 0)
    else:
        lead = (0,) * (len(arr.shape) - 2)
        arr[(*lead, slice(r0, r1), slice(c0, c1))] = out
    return out.size

def restore_plane_distributed(client, src: Path, dst: Path, weights: str, tile: int, normalize: str,
                              percentiles: tuple[float, float] | None, on_chunk=None, slide_opts=None) -> dict:
    """Restore one huge gray plane into OME-Zarr `dst` on the cluster; no process holds the whole image.

    The windows, weights and normalisation are the in-process restore's, so the result equals it (to float
    rounding). Output chunks (CHUNK output px) are each written by one task."""
    from ..formats.ngff import zarr_create
    from ..formats.series import Series
    from ..formats.stacks import meta_only
    from ..restore.normalize import choose
    from ..restore.tiles import Grid, windows
    from ..weights import load_model

    model = load_model(weights)
    s, grid = model.scale, Grid.of(model.net)
    chunk = CHUNK
    store = sl = None
    if slide_opts is not None:  # a whole slide: its level's RGB, glass windows by bicubic, a multiscale pyramid
        from .pyramid import ZarrPyramid
        from .slide import describe, glass_flags, plan

        p = plan(src, dst, slide_opts, s)
        h, w = p.box[1] - p.box[0], p.box[3] - p.box[2]
        hp, wp, tile = grid.up(h), grid.up(w), grid.tile(tile)
        wins = list(windows(hp, wp, tile, grid))
        glass = glass_flags(p, wins, grid) if slide_opts.skip_background else [False] * len(wins)
        norm, dtype, sl = choose(np.zeros((1, 1, 3), np.uint8), "range"), np.dtype(np.uint8), (p.level, p.box)
        mpp = None if p.mpp is None else (p.mpp[0] / s, p.mpp[1] / s)
        store = ZarrPyramid(dst, (h * s, w * s, 3), mpp, src.name, extra=describe(p, wins, glass))
        p.slide.close()
    else:
        arr = _Squeezed(open_plane(src))
        h, w = arr.shape
        norm = choose(arr, normalize, percentiles or model.percentiles)  # the in-process restore's strided sample
        hp, wp, tile = grid.up(h), grid.up(w), grid.tile(tile)
        wins, dtype = list(windows(hp, wp, tile, grid)), arr.dtype
        glass = [False] * len(wins)
        zarr_create(dst, Series(np.empty((1, 1), arr.dtype), "YX", meta_only(src).scaled(s)), (h * s, w * s),
                    (chunk, chunk))
    out_shape = (h * s, w * s)
    nrm = (norm.mode, float(norm.lo), float(norm.hi))
    window_futures = [client.submit(restore_window, str(src), (wi.y0, wi.y1, wi.x0, wi.x1), (h, w), nrm, weights,
                                    sl, g, pure=False) for wi, g in zip(wins, glass, strict=True)]
    chunk_futures = []
    for r0 in range(0, out_shape[0], chunk):
        for c0 in range(0, out_shape[1], chunk):
            r1, c1 = min(r0 + chunk, out_shape[0]), min(c0 + chunk, out_shape[1])
            idx = [i for i, wi in enumerate(wins) if wi.y0 * s < r1 and wi.y1 * s > r0 and wi.x0 * s < c1
                   and wi.x1 * s > c0]
            parts = [(wins[i].y0, wins[i].y1, wins[i].x0, wins[i].x1) for i in idx]
            chunk_futures.append(client.submit(write_chunk, str(dst), (r0, r1, c0, c1), (hp, wp), s,
                                               (grid.multiple, grid.context), parts, nrm, str(dtype),
                                               sl is not None, *[window_futures[i] for i in idx], pure=False))
    for fut in completed(client, chunk_futures):
        fut.result()
        if on_chunk is not None:
            on_chunk(len(chunk_futures))
    if store is not None:  # the lower levels: each level's bands in parallel on the workers
        def run(calls):
            for fut in completed(client, [client.submit(fn, *args, pure=False) for fn, *args in calls]):
                fut.result()
        store.finish(run=run)
    return {"windows": len(wins), "chunks": len(chunk_futures), "norm": norm, "model": model,
            "glass": int(sum(glass)), "rgb": sl is not None}

CHUNK = 1024  # output px per OME-Zarr chunk side (each written by one task)
