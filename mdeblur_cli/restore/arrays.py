"""Restoration of arrays: planes of any stack, channels (rgb or independent), intensity normalisation and its
exact inverse, NaN/Inf samples, alpha, trust maps; each plane through the tile engine (tiling.py)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..device import as_device, resolve_precision
from ..errors import MdeblurError
from ..formats.series import Series, check_axes, check_dtype
from .normalize import DEFAULT_PERCENTILES, MODES, Normalization, choose, dtype_range
from .tiles import DEFAULT_TILE, network_input, restore_float

if TYPE_CHECKING:
    from ..weights import LoadedModel

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


def map_back(out: np.ndarray, norm: Normalization, dtype: np.dtype) -> np.ndarray:
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
    """A normalised (H, W, 1 or 3) image through the network (unclipped); with `trust`, also its predicted error
    (H*s, W*s) in file units, and its summary appended to trust.summaries. The trust sources see a gray image
    as the network does, as three equal channels, and the output before its channel mean."""
    if trust is None:
        return restore_float(net, img, clip=False, **kw), None
    from . import trust as tr

    gray = img.shape[2] == 1
    img = network_input(img)
    quant = 1.0 / (norm.hi - norm.lo) if np.issubdtype(dtype, np.integer) else 0.0  # one count, network units
    sigma = tr.noise_sigma(img, quant)
    units = float(norm.hi - norm.lo)
    if getattr(trust.model, "head", None) is not None:  # the learned error head: one pass with the generator
        from .error_head import run_head, verdict

        out, log_sigma, logit = run_head(net, trust.model, img, **kw)
        sd = trust.model.to_map(log_sigma)
        trust.summaries.append(verdict(sd, logit, img, out, sigma, units))
    else:  # the sampling map: 8 more passes
        out = restore_float(net, img, clip=False, **kw)
        quiet = {k: v for k, v in kw.items() if k != "progress"}
        maps = tr.sources(net, img, out, lambda x: restore_float(net, x, clip=False, **quiet), sigma=sigma)
        sd = tr.predict(maps, trust.model)
        trust.summaries.append(tr.summary(sd, maps["spread"], img, out, sigma, units))
    return (out.mean(2, keepdims=True) if gray else out), sd * units


def _restore_color(
    plane: np.ndarray, net: nn.Module, norm: Normalization, trust: TrustRequest | None = None, **kw
) -> tuple[np.ndarray, np.ndarray | None]:
    """(H, W, 3) colour restored jointly -> (H*s, W*s, 3) float32 in the file's units (and the trust map)."""
    img = norm.apply(plane.astype(np.float32)).astype(np.float32)
    out, sd = _restore_normalised(img, net, norm, plane.dtype, trust, **kw)
    return map_back(out, norm, plane.dtype), sd


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
    out, sd = _restore_normalised(img[..., None], net, norm, plane.dtype, trust, **kw)
    return map_back(out[..., 0], norm, plane.dtype), sd


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


def cast_to(out: np.ndarray, dtype: np.dtype) -> np.ndarray:
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
    from ..weights import LoadedModel

    if not isinstance(model, LoadedModel):
        raise TypeError(f"model: give what load_model returns (a LoadedModel; LoadedModel(net, arch) wraps a network "
                        f"of your own), not {type(model).__name__}")
    data = check_dtype("restore_array", np.asarray(data))
    axes = check_axes(axes, data.shape)
    device = as_device(device)  # the public entry point: resolved here once, passed down as a torch.device
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
        out[idx] = cast_to(restore_plane(arr[idx], model.net, mode, alpha, normalize, pct, norms, trust, tile=tile,
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
    axes: str | None = None, channels: str = "auto", alpha: bool = False, trust: bool = False,
) -> np.ndarray | tuple[np.ndarray, np.ndarray, dict]:
    """Restore an array of any supported dtype; returns the same dtype and axes, Y and X times the scale.
    With `trust`, returns (restored, trust map, summary): the map is the predicted error's standard deviation
    in the output's units, with the output's shape (float32), and the summary the image's verdict (median
    predicted error, doubtful share, suspect), as `mdeblur restore --trust` writes them.

    `axes` names the dimensions (YX, YXS, CYX, ZYX, TZCYX, ...; default YX for 2-D and YXS for (H, W, C): colour
    samples, as in an image file; a C axis means fluorescence channels, restored independently under auto).
    Intensities are normalised per plane and channel (`normalize`: auto, percentile, range, none; the
    percentiles default to the model's own) and mapped back by the exact inverse into the input's scale,
    clipped only at the dtype's limits. `channels`: auto, rgb or independent; `alpha`: the last channel is alpha.
    """
    if isinstance(array, str | Path):
        raise TypeError(f"restore_array takes an array, not the path {array}: restore a file with "
                        "mdeblur_cli.restore.files.restore_file, or read it first")
    array = np.asarray(array)
    if axes is None:
        if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] > 4):
            raise ValueError(f"give axes= (such as ZYX or CYX) for an array of shape {array.shape}; "
                             "without it only (H, W) and (H, W, C) with C <= 4 are understood")
        axes = "YX" if array.ndim == 2 else "YXS"
    req = TrustRequest(model.trust) if trust else None
    out = restore_stack(array, axes, model, channels=channels, alpha=alpha, tile=tile, device=device,
                        precision=precision, progress=progress, normalize=normalize, percentiles=percentiles,
                        trust=req)
    if req is None:
        return out
    from .trust import combine

    return out, req.maps[0], combine(req.summaries, req.maps)
