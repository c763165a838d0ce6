"""Restoration of arrays and files: channel handling, seamless overlapping tiles, CUDA OOM fallback."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .device import resolve_device, resolve_precision
from .io import to_float
from .normalize import DEFAULT_PERCENTILES, Normalization, choose, dtype_range

MULTIPLE = 8  # tile origins on the network's downsampling grid
MIN_TILE = 64


@dataclass(frozen=True)
class Window:
    """One tile: input rows y0:y1 and columns x0:x1 (low-res px) and its blend weights."""

    y0: int
    y1: int
    x0: int
    x1: int


CONTEXT = 48  # low-res px of context read around each tile and discarded (the network's reach)
BLEND = 16  # low-res px over which neighbouring tiles cross-fade


def tile_margins(tile: int) -> tuple[int, int]:
    """Context discarded at a tile's inner edges, and the width of the linear blend after it."""
    return CONTEXT, BLEND


def _starts(size: int, tile: int, step: int) -> list[int]:
    if size <= tile:
        return [0]
    starts = list(range(0, size - tile, step))
    return starts + [size - tile]


def windows(h: int, w: int, tile: int) -> Iterator[Window]:
    """Overlapping windows covering an (h, w) image whose sides are multiples of MULTIPLE.

    Each window is the tile plus its context on both sides plus the blend, and windows step by `tile`,
    so every output pixel is covered by weights that sum to one.
    """
    pad, blend = tile_margins(tile)
    size = tile + 2 * pad + blend
    for y0 in _starts(h, size, tile):
        for x0 in _starts(w, size, tile):
            yield Window(y0, min(h, y0 + size), x0, min(w, x0 + size))


def edge_weights(n: int, start_inner: bool, end_inner: bool, pad: int, blend: int) -> np.ndarray:
    """1-D weights: 0 over the discarded context, a linear ramp, then 1; no ramp at image borders."""
    wgt = np.ones(n, np.float32)
    ramp = (np.arange(blend, dtype=np.float32) + 0.5) / blend
    if start_inner:
        wgt[:pad] = 0
        wgt[pad : pad + blend] = ramp
    if end_inner:
        wgt[n - pad :] = 0
        wgt[n - pad - blend : n - pad] = ramp[::-1]
    return wgt


def _forward(model: nn.Module, x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    ctx = torch.autocast("cuda", dtype=dtype) if dtype != torch.float32 else contextlib.nullcontext()
    with torch.no_grad(), ctx:
        return model(x)[0].float()


def restore_tensor(
    model: nn.Module,
    read: Callable[[Window], np.ndarray],
    shape: tuple[int, int, int],
    out: np.ndarray,
    tile: int,
    device: torch.device,
    dtype: torch.dtype = torch.float32,
    progress: Callable[[int, int], None] | None = None,
) -> None:
    """Restore an image given as a window reader into `out` (H*s, W*s, C), which may be a memmap.

    `shape` is the (H, W, C) of the input, its sides already multiples of MULTIPLE.
    """
    h, w, c = shape
    s = model.scale
    pad, blend = tile_margins(tile)
    if max(h, w) <= tile + 2 * pad + blend:
        x = torch.from_numpy(read(Window(0, h, 0, w)).transpose(2, 0, 1).copy())[None].to(device)
        out[...] = _forward(model, x, dtype)[0].permute(1, 2, 0).cpu().numpy()
        return
    acc = np.zeros(out.shape, np.float32)
    total = np.zeros(out.shape[:2], np.float32)
    wins = list(windows(h, w, tile))
    for i, win in enumerate(wins):
        x = torch.from_numpy(read(win).transpose(2, 0, 1).copy())[None].to(device)
        y = _forward(model, x, dtype)[0].permute(1, 2, 0).cpu().numpy()
        wy = edge_weights(y.shape[0], win.y0 > 0, win.y1 < h, pad * s, blend * s)
        wx = edge_weights(y.shape[1], win.x0 > 0, win.x1 < w, pad * s, blend * s)
        wgt = wy[:, None] * wx[None, :]
        acc[win.y0 * s : win.y1 * s, win.x0 * s : win.x1 * s] += y * wgt[..., None]
        total[win.y0 * s : win.y1 * s, win.x0 * s : win.x1 * s] += wgt
        if progress is not None:
            progress(i + 1, len(wins))
    out[...] = acc / total[..., None]


def _pad_reflect(img: np.ndarray) -> np.ndarray:
    """Pad (H, W, C) at the bottom/right to multiples of MULTIPLE, as the network would."""
    h, w = img.shape[:2]
    t = torch.from_numpy(img.transpose(2, 0, 1).copy())[None]
    ph, pw = (-h) % MULTIPLE, (-w) % MULTIPLE
    if ph or pw:
        t = F.pad(t, (0, pw, 0, ph), mode="reflect" if min(h, w) > max(ph, pw) else "replicate")
    return t[0].numpy().transpose(1, 2, 0)


def restore_float(
    model: nn.Module, img: np.ndarray, tile: int = 256, device: torch.device | str = "cpu",
    precision: str = "fp32", progress: Callable[[int, int], None] | None = None, clip: bool = True,
) -> np.ndarray:
    """Restore a float32 (H, W, C) image, normalised to about [0, 1], with the model's channel count.

    Returns (H*s, W*s, C), clipped to [0, 1] unless `clip` is False (percentile-normalised data may pass it).
    """
    device = resolve_device(device) if isinstance(device, str) else device
    dtype = resolve_precision(precision, device)
    model = model.to(device)
    h, w = img.shape[:2]
    s = model.scale
    padded = _pad_reflect(img.astype(np.float32))
    tile = max(MIN_TILE, tile // MULTIPLE * MULTIPLE)
    while True:
        out = np.zeros((padded.shape[0] * s, padded.shape[1] * s, padded.shape[2]), np.float32)
        try:
            restore_tensor(model, lambda wi: padded[wi.y0 : wi.y1, wi.x0 : wi.x1], padded.shape, out, tile,
                           device, dtype, progress)
            break
        except torch.cuda.OutOfMemoryError:
            if tile <= MIN_TILE:
                raise
            torch.cuda.empty_cache()
            tile = max(MIN_TILE, tile // 2 // MULTIPLE * MULTIPLE)
    out = out[: h * s, : w * s]
    return np.clip(out, 0, 1) if clip else out


def model_percentiles(model: nn.Module) -> tuple[float, float]:
    """The percentiles the model was trained with (its weights' metadata), else the default."""
    prov = getattr(model, "provenance", {}) or {}
    for rec in (prov.get("normalization"), prov.get("degradation")):
        if rec and "percentiles" in rec:
            return tuple(rec["percentiles"])
    return DEFAULT_PERCENTILES


def page_normalization(page: np.ndarray, mode: str, percentiles: tuple[float, float]) -> Normalization:
    """The normalisation of one page, from its colour channels (alpha left out)."""
    return choose(page[..., :3] if page.ndim == 3 else page, mode, percentiles)


def restore_array(
    array: np.ndarray, model: nn.Module, tile: int = 256, device: torch.device | str = "cpu",
    precision: str = "fp32", progress: Callable[[int, int], None] | None = None,
    normalize: str | Normalization = "auto", percentiles: tuple[float, float] | None = None,
) -> np.ndarray:
    """Restore an (H, W) or (H, W, C) array (C = 1, 3 or 4) of any dtype; returns the same dtype and channels.

    Intensities are normalised (`normalize`: auto, percentile, range, none, or a ready `Normalization`; the
    percentiles default to the model's own) and mapped back by the exact inverse into the input's scale,
    clipped only at the dtype's limits. Gray is restored as RGB and averaged back; alpha is upscaled bicubically.
    """
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (1, 3, 4)):
        raise ValueError(f"expected (H, W) or (H, W, C) with C in 1, 3, 4; got {array.shape}")
    dtype = array.dtype
    color = array[..., :3] if array.ndim == 3 and array.shape[2] == 4 else array
    norm = normalize if isinstance(normalize, Normalization) else page_normalization(
        array, normalize, percentiles or model_percentiles(model))
    img = norm.apply(color.astype(np.float32)).astype(np.float32)
    gray = img.ndim == 2 or img.shape[2] == 1
    rgb = np.repeat(img.reshape(*img.shape[:2], 1), 3, axis=2) if gray else img
    out = restore_float(model, rgb, tile=tile, device=device, precision=precision, progress=progress, clip=False)
    if gray:
        out = out.mean(2)
    out = norm.invert(out)
    lo, hi = dtype_range(dtype)
    if np.issubdtype(dtype, np.integer):
        out = np.clip(out, lo, hi)
    elif norm.mode == "range" and (norm.lo, norm.hi) == (lo, hi):
        out = np.clip(out, lo, hi)  # a float image in [0, 1] restored by its range stays in [0, 1]
    if array.ndim == 3 and array.shape[2] == 4:
        s = model.scale
        alpha = F.interpolate(torch.from_numpy(to_float(array[..., 3]).copy())[None, None], scale_factor=s,
                              mode="bicubic", align_corners=False)[0, 0].clamp(0, 1).numpy()
        out = np.concatenate([out, alpha[..., None] * hi], 2)  # alpha in the file's units, like the colour
    if array.ndim == 3 and array.shape[2] == 1:
        out = out[..., None]
    if np.issubdtype(dtype, np.integer):
        return np.rint(out).astype(dtype)
    return out.astype(dtype)
