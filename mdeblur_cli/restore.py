"""Restoration of arrays: planes of any stack, channels (rgb or independent), seamless tiles, CUDA OOM fallback."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .device import resolve_device, resolve_precision
from .errors import MdeblurError
from .normalize import DEFAULT_PERCENTILES, MODES, Normalization, choose, dtype_range
from .padding import edge_pad
from .stacks import Series, check_axes, check_dtype

if TYPE_CHECKING:
    from .weights import LoadedModel

MIN_TILE = 64
DEFAULT_TILE = 320  # balanced windows of 256-512 px run within 4% of each other on CPU, a whole 1024^2 pass 13% slower


@dataclass(frozen=True)
class Window:
    """One tile: input rows y0:y1 and columns x0:x1 (low-res px) and its blend weights."""

    y0: int
    y1: int
    x0: int
    x1: int


CONTEXT = 48  # low-res px of context read around each tile and discarded, for networks that do not say theirs
BLEND = 16  # low-res px over which neighbouring tiles cross-fade


@dataclass(frozen=True)
class Grid:
    """How a network is tiled, from its own declaration (see models/__init__.py): input sides and window
    origins on multiples of `multiple` (its downsampling grid), and `context` low-res px read around each tile
    and discarded (its reach)."""

    multiple: int = 8
    context: int = CONTEXT

    @classmethod
    def of(cls, net: nn.Module) -> Grid:
        """The network's declaration (every generator in models.ARCHS makes one); 8 and CONTEXT otherwise."""
        return cls(getattr(net, "multiple", 8), getattr(net, "context", None) or CONTEXT)

    def up(self, n: int) -> int:
        """n rounded up to the grid."""
        return -(-n // self.multiple) * self.multiple

    def tile(self, tile: int) -> int:
        """A tile side on the grid, at least MIN_TILE."""
        return max(MIN_TILE, tile // self.multiple * self.multiple)


def _spans(size: int, tile: int, grid: Grid) -> list[tuple[int, int]]:
    """(start, end) of the windows along one side: as few as tiles of at most `tile` allow, all the same
    length, so that no window is mostly overlap (a fixed step would leave a last window that repeats most of
    its neighbour)."""
    margin, m = 2 * grid.context + BLEND, grid.multiple
    if size <= tile + margin:
        return [(0, size)]
    n = -(-(size - margin) // tile)  # windows needed
    step = grid.up(-(-(size - margin) // n))  # origins on the network's grid
    starts = [min(i * step, size - step - margin) // m * m for i in range(n)]
    return [(y0, min(size, y0 + step + margin)) for y0 in starts]


def windows(h: int, w: int, tile: int, grid: Grid = Grid()) -> Iterator[Window]:
    """Overlapping windows covering an (h, w) image whose sides are on the grid.

    Each window is a tile of at most `tile` plus the grid's context on both sides plus the blend; consecutive
    windows overlap by exactly the two contexts and the blend, so every output pixel is covered by weights that
    sum to one.
    """
    for y0, y1 in _spans(h, tile, grid):
        for x0, x1 in _spans(w, tile, grid):
            yield Window(y0, y1, x0, x1)


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


CUDA_BATCH = 8  # windows of one shape per forward pass on CUDA; CPU runs one (4 per pass measured 0.65x)


def batches(wins: list[Window], size: int) -> Iterator[list[Window]]:
    """Consecutive windows of the same shape, at most `size` at a time (a batch must be one shape)."""
    group: list[Window] = []
    for win in wins:
        if group and (len(group) == size or (win.y1 - win.y0, win.x1 - win.x0) != (group[0].y1 - group[0].y0,
                                                                                    group[0].x1 - group[0].x0)):
            yield group
            group = []
        group.append(win)
    if group:
        yield group


def to_device(x: np.ndarray, device: torch.device) -> torch.Tensor:
    """A host array to the device: through pinned memory and an asynchronous copy on CUDA."""
    t = torch.from_numpy(np.ascontiguousarray(x))
    if device.type == "cuda":
        return t.pin_memory().to(device, non_blocking=True)
    return t.to(device)


def _forward(model: nn.Module, x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    ctx = torch.autocast("cuda", dtype=dtype) if dtype != torch.float32 else contextlib.nullcontext()
    with torch.inference_mode(), ctx:  # channels_last: +10-30% on CPU (oneDNN) and on CUDA (tensor cores)
        return model(x.contiguous(memory_format=torch.channels_last))[0].float()


def restore_tensor(
    model: nn.Module,
    read: Callable[[Window], np.ndarray],
    shape: tuple[int, int, int],
    out: np.ndarray,
    tile: int,
    device: torch.device,
    dtype: torch.dtype = torch.float32,
    progress: Callable[[int, int], None] | None = None,
    batch: int | None = None,
) -> None:
    """Restore an image given as a window reader into `out` (H*s, W*s, C), which may be a memmap.

    `shape` is the (H, W, C) of the input, its sides already on the network's grid. `batch`: windows per pass
    (None: CUDA_BATCH on CUDA, 1 on CPU).
    """
    h, w, c = shape
    s, grid = model.scale, Grid.of(model)
    pad, blend = grid.context, BLEND
    if max(h, w) <= tile + 2 * pad + blend:
        x = to_device(read(Window(0, h, 0, w)).transpose(2, 0, 1)[None], device)
        out[...] = _forward(model, x, dtype)[0].permute(1, 2, 0).cpu().numpy()
        if progress is not None:
            progress(1, 1)
        return
    # torch for the accumulation: in place and on every intra-op thread (numpy's temporaries cost 8% at 1024^2)
    acc = torch.zeros(out.shape, dtype=torch.float32)
    total = torch.zeros(out.shape[:2], dtype=torch.float32)
    wins = list(windows(h, w, tile, grid))
    done = 0
    batch = batch or (CUDA_BATCH if device.type == "cuda" else 1)
    for group in batches(wins, batch):
        ys = _forward(model, to_device(np.stack([read(win).transpose(2, 0, 1) for win in group]), device), dtype)
        ys = ys.permute(0, 2, 3, 1).cpu()
        for win, y in zip(group, ys, strict=True):
            wy = edge_weights(y.shape[0], win.y0 > 0, win.y1 < h, pad * s, blend * s)
            wx = edge_weights(y.shape[1], win.x0 > 0, win.x1 < w, pad * s, blend * s)
            wgt = torch.from_numpy(wy[:, None] * wx[None, :])
            acc[win.y0 * s : win.y1 * s, win.x0 * s : win.x1 * s].addcmul_(y, wgt[..., None])
            total[win.y0 * s : win.y1 * s, win.x0 * s : win.x1 * s] += wgt
        done += len(group)
        if progress is not None:
            progress(done, len(wins))
    out[...] = acc.div_(total[..., None]).numpy()


def _pad_reflect(img: np.ndarray, grid: Grid) -> np.ndarray:
    """Pad (H, W, C) at the bottom/right onto the grid, as the network would."""
    h, w = img.shape[:2]
    t = torch.from_numpy(img.transpose(2, 0, 1).copy())[None]
    ph, pw = grid.up(h) - h, grid.up(w) - w
    t = edge_pad(t, 0, pw, 0, ph)
    return t[0].numpy().transpose(1, 2, 0)


def restore_float(
    model: nn.Module, img: np.ndarray, tile: int = DEFAULT_TILE, device: torch.device | str = "cpu",
    precision: str = "fp32", progress: Callable[[int, int], None] | None = None, clip: bool = True,
) -> np.ndarray:
    """Restore a float32 (H, W, C) image, normalised to about [0, 1], with the model's channel count.

    Returns (H*s, W*s, C), clipped to [0, 1] unless `clip` is False (percentile-normalised data may pass it).
    """
    device = resolve_device(device) if isinstance(device, str) else device
    dtype = resolve_precision(precision, device)
    model = model.to(device, memory_format=torch.channels_last)
    h, w = img.shape[:2]
    s, grid = model.scale, Grid.of(model)
    padded = _pad_reflect(img.astype(np.float32), grid)
    tile = grid.tile(tile)
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
            tile = grid.tile(tile // 2)
    out = out[: h * s, : w * s]
    return np.clip(out, 0, 1) if clip else out


CHANNEL_MODES = ("auto", "rgb", "independent")


def choose_channels(channels: str, n_colour: int, dtype: np.dtype, declared_rgb: bool = True) -> str:
    """rgb (colour mixed by the network) or independent (each channel alone, through the gray path).

    auto: rgb for 8-bit images with 3 colour channels that are declared RGB (PNG/JPEG colour, TIFF photometric
    RGB; an array without metadata counts as declared): brightfield, histology, photographs. Independent for
    everything else: fluorescence channels (a C axis, or samples stored as gray), so none leaks into another.
    """
    if channels not in CHANNEL_MODES:
        raise MdeblurError(f"--channels {channels}: use one of {', '.join(CHANNEL_MODES)}")
    if channels == "rgb" and n_colour != 3:
        raise MdeblurError(f"--channels rgb needs 3 colour channels; this image has {n_colour} "
                           "(pass alpha=True / a TIFF alpha tag if the 4th is alpha)" if n_colour == 4 else
                           f"--channels rgb needs 3 colour channels; this image has {n_colour}")
    if channels == "auto":
        return "rgb" if n_colour == 3 and np.dtype(dtype) == np.uint8 and declared_rgb else "independent"
    return channels


def _map_back(out: np.ndarray, norm: Normalization, dtype: np.dtype) -> np.ndarray:
    """Network units to the input's intensities, clipped only at the dtype's limits (float32)."""
    out = norm.invert(out)
    lo, hi = dtype_range(dtype)
    if np.issubdtype(dtype, np.integer) or (norm.mode == "range" and (norm.lo, norm.hi) == (lo, hi)):
        out = np.clip(out, lo, hi)  # a float image in [0, 1] restored by its range stays in [0, 1]
    return out


@dataclass
class TrustRequest:
    """--trust: the coefficients to use, and where each plane's map (file units) and summary go."""

    model: object  # trust.TrustModel
    maps: list = field(default_factory=list)
    summaries: list = field(default_factory=list)


def _restore_normalised(img: np.ndarray, net: nn.Module, norm: Normalization, dtype: np.dtype,
                        trust: TrustRequest | None, **kw) -> tuple[np.ndarray, np.ndarray | None]:
    """A normalised (H, W, 3) image through the network (unclipped); with `trust`, also its predicted error
    (H*s, W*s) in file units, and its summary appended to trust.summaries."""
    out = restore_float(net, img, clip=False, **kw)
    if trust is None:
        return out, None
    from . import trust as tr

    quiet = {k: v for k, v in kw.items() if k != "progress"}
    quant = 1.0 / (norm.hi - norm.lo) if np.issubdtype(dtype, np.integer) else 0.0  # one count, network units
    sigma = tr.noise_sigma(img, quant)
    maps = tr.sources(net, img, out, lambda x: restore_float(net, x, clip=False, **quiet), sigma=sigma)
    sd = tr.predict(maps, trust.model)
    units = float(norm.hi - norm.lo)
    trust.summaries.append(tr.summary(sd, maps["spread"], out, sigma, units))
    return out, sd * units


def _restore_color(
    plane: np.ndarray, net: nn.Module, norm: Normalization, trust: TrustRequest | None = None, **kw
) -> tuple[np.ndarray, np.ndarray | None]:
    """(H, W, 3) colour restored jointly -> (H*s, W*s, 3) float32 in the file's units (and the trust map)."""
    img = norm.apply(plane.astype(np.float32)).astype(np.float32)
    out, sd = _restore_normalised(img, net, norm, plane.dtype, trust, **kw)
    return _map_back(out, norm, plane.dtype), sd


def _restore_gray(
    plane: np.ndarray, net: nn.Module, norm: Normalization, trust: TrustRequest | None = None, **kw
) -> tuple[np.ndarray, np.ndarray | None]:
    """(H, W) restored alone -> (H*s, W*s) float32 in the file's units (and the trust map). A constant plane
    stays that constant: any restoration of a flat field is flat, and an empty channel must stay empty."""
    s = net.scale
    if plane.min() == plane.max():
        shape = (plane.shape[0] * s, plane.shape[1] * s)
        if trust is not None:
            trust.summaries.append({"median_error": 0.0, "doubtful_share": 0.0, "suspect": False})
        return np.full(shape, plane.flat[0], np.float32), (np.zeros(shape, np.float32) if trust else None)
    img = norm.apply(plane.astype(np.float32)).astype(np.float32)
    out, sd = _restore_normalised(np.repeat(img[..., None], 3, axis=2), net, norm, plane.dtype, trust, **kw)
    return _map_back(out.mean(2), norm, plane.dtype), sd


def _upscale_alpha(alpha: np.ndarray, scale: int) -> np.ndarray:
    """Alpha is not restored: interpolated in the file's units."""
    lo, hi = dtype_range(alpha.dtype)
    t = torch.from_numpy(alpha.astype(np.float32))[None, None]  # bilinear: no ringing at mask edges
    up = F.interpolate(t, scale_factor=scale, mode="bilinear", align_corners=False)[0, 0].numpy()
    return np.clip(up, lo, hi)


FLOAT_LIMIT = 1e30  # float samples beyond this magnitude are treated like NaN/Inf: not intensities


def nonfinite_mask(x: np.ndarray) -> np.ndarray:
    """Where a float array holds no intensity: NaN, Inf, or a magnitude beyond FLOAT_LIMIT."""
    with np.errstate(invalid="ignore"):
        return ~np.isfinite(x) | (np.abs(x) > FLOAT_LIMIT)


def fill_nonfinite(plane: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """(H, W, C) float plane with NaN, Inf and |x| > FLOAT_LIMIT replaced by their nearest valid neighbour in
    the same channel (0 where a channel has none), and the mask of those samples; (plane, None) if all valid."""
    if plane.dtype.kind != "f":
        return plane, None
    bad = nonfinite_mask(plane)
    if not bad.any():
        return plane, None
    from scipy.ndimage import distance_transform_edt

    filled = plane.copy()
    for c in range(plane.shape[2]):
        if bad[..., c].all():
            filled[..., c] = 0
        elif bad[..., c].any():
            iy, ix = distance_transform_edt(bad[..., c], return_distances=False, return_indices=True)
            filled[..., c] = plane[..., c][iy, ix]
    return filled, bad


def restore_plane(
    plane: np.ndarray, net: nn.Module, channels: str, alpha: bool = False,
    normalize: str = "auto", percentiles: tuple[float, float] = DEFAULT_PERCENTILES,
    norms: list[Normalization] | None = None, trust: TrustRequest | None = None, **kw,
) -> np.ndarray:
    """One (H, W, C) plane -> (H*s, W*s, C) float32 in the file's units.

    `channels` is rgb (C = 3, or 4 with alpha) or independent; each colour channel (independent) or the
    colour triple (rgb) gets its own normalisation over the whole plane, appended to `norms`. NaN/Inf samples
    (floats) are filled from their neighbours for the network and come back as NaN over the pixels they cover.
    With `trust`, the plane's predicted-error map (same shape, float32, file units) goes to trust.maps.
    """
    plane, bad = fill_nonfinite(plane)
    colour = plane[..., :-1] if alpha else plane
    if channels == "rgb":
        norm = choose(colour, normalize, percentiles)
        out, sd = _restore_color(colour, net, norm, trust, **kw)
        parts, sds, found = [out], [None if sd is None else np.repeat(sd[..., None], 3, axis=2)], [norm]
    else:
        found = [choose(colour[..., c], normalize, percentiles) for c in range(colour.shape[2])]
        pairs = [_restore_gray(colour[..., c], net, n, trust, **kw) for c, n in enumerate(found)]
        parts = [o[..., None] for o, _ in pairs]
        sds = [None if sd is None else sd[..., None] for _, sd in pairs]
    if alpha:
        parts.append(_upscale_alpha(plane[..., -1], net.scale)[..., None])
        sds.append(None if trust is None else np.zeros_like(parts[-1]))
    if norms is not None:
        norms += found
    out = np.concatenate(parts, axis=2)
    if bad is not None:  # where the input held no intensity, neither does the output
        s = net.scale
        if channels == "rgb":
            bad[..., :3] = bad[..., :3].any(2, keepdims=True)
        out[np.repeat(np.repeat(bad, s, 0), s, 1)] = np.nan
    if trust is not None:
        sd = np.concatenate(sds, axis=2).astype(np.float32)
        if bad is not None:
            sd[np.repeat(np.repeat(bad, net.scale, 0), net.scale, 1)] = np.nan
        trust.maps.append(sd)
    return out


def _cast(out: np.ndarray, dtype: np.dtype) -> np.ndarray:
    return np.rint(out).astype(dtype) if np.issubdtype(dtype, np.integer) else out.astype(dtype)


def restore_stack(
    data: np.ndarray, axes: str, model: LoadedModel, channels: str = "auto", alpha: bool = False,
    declared_rgb: bool = True, tile: int = DEFAULT_TILE, device: torch.device | str = "cpu", precision: str = "fp32",
    progress: Callable[[int, int], None] | None = None, normalize: str = "auto",
    percentiles: tuple[float, float] | None = None, norms: list[Normalization] | None = None,
    trust: TrustRequest | None = None,
) -> np.ndarray:
    """Restore every Y,X plane of an array with named axes; the output has the same axes, Y and X times s.

    The channel axis (S, else C) is handled by `channels` (auto, rgb, independent; see `choose_channels`);
    every other axis (T, Z, ...) is iterated. `alpha` marks the last channel as alpha (upscaled, not restored).
    With `trust`, the predicted-error map of the whole array (float32, the output's shape and axes, file units)
    is appended to trust.maps (replacing the per-plane maps), and one summary per plane to trust.summaries.
    """
    from .weights import LoadedModel

    if not isinstance(model, LoadedModel):
        raise TypeError(f"model: give what load_model returns (a LoadedModel; LoadedModel(net, arch) wraps a network "
                        f"of your own), not {type(model).__name__}")
    data = check_dtype("restore_array", np.asarray(data))
    axes = check_axes(axes, data.shape)
    device = resolve_device(device) if isinstance(device, str) else device
    resolve_precision(precision, device)  # refuse before any plane (a constant one needs no network)
    series = Series(data, axes)
    cax = series.channel_axis
    n_colour = series.channels - int(alpha)
    mode = choose_channels(channels, n_colour, data.dtype, declared_rgb and cax != "C")
    if normalize not in MODES:
        raise MdeblurError(f"--normalize {normalize}: use one of {', '.join(MODES)}")
    pct = percentiles or model.percentiles
    order = [a for a in axes if a not in ("Y", "X", cax)] + ["Y", "X"] + ([cax] if cax else [])
    arr = np.transpose(data, [axes.index(a) for a in order])
    arr = arr if cax else arr[..., None]
    lead, (h, w, c) = arr.shape[:-3], arr.shape[-3:]
    s = model.scale
    out = np.empty((*lead, h * s, w * s, c), data.dtype)
    sd = np.empty((*lead, h * s, w * s, c), np.float32) if trust is not None else None
    for idx in np.ndindex(*lead):
        out[idx] = _cast(restore_plane(arr[idx], model.net, mode, alpha, normalize, pct, norms, trust, tile=tile,
                                       device=device, precision=precision, progress=progress), data.dtype)
        if trust is not None:
            sd[idx] = trust.maps.pop()
    back = [order.index(a) for a in axes]
    if trust is not None:
        trust.maps.append(np.transpose(sd if cax else sd[..., 0], back))
    out = out if cax else out[..., 0]
    return np.transpose(out, back)


def restore_array(
    array: np.ndarray, model: LoadedModel, tile: int = DEFAULT_TILE, device: torch.device | str = "cpu",
    precision: str = "fp32", progress: Callable[[int, int], None] | None = None,
    normalize: str = "auto", percentiles: tuple[float, float] | None = None,
    axes: str | None = None, channels: str = "auto", alpha: bool = False,
) -> np.ndarray:
    """Restore an array of any supported dtype; returns the same dtype and axes, Y and X times the scale.

    `axes` names the dimensions (YX, YXS, CYX, ZYX, TZCYX, ...; default YX for 2-D and YXS for (H, W, C): colour
    samples, as in an image file; a C axis means fluorescence channels, restored independently under auto).
    Intensities are normalised per plane and channel (`normalize`: auto, percentile, range, none; the
    percentiles default to the model's own) and mapped back by the exact inverse into the input's scale,
    clipped only at the dtype's limits. `channels`: auto, rgb or independent; `alpha`: the last channel is alpha.
    """
    if isinstance(array, str | Path):
        raise TypeError(f"restore_array takes an array, not the path {array}: restore a file with "
                        "mdeblur_cli.files.restore_file, or read it first")
    array = np.asarray(array)
    if axes is None:
        if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] > 4):
            raise ValueError(f"give axes= (such as ZYX or CYX) for an array of shape {array.shape}; "
                             "without it only (H, W) and (H, W, C) with C <= 4 are understood")
        axes = "YX" if array.ndim == 2 else "YXS"
    return restore_stack(array, axes, model, channels=channels, alpha=alpha, tile=tile, device=device,
                         precision=precision, progress=progress, normalize=normalize, percentiles=percentiles)
