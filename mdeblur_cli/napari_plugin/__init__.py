"""mdeblur in napari: `restore_layer` (public and stable; what the widget, tests and scripts call), the Restore
widget (widget.py), and a reader, a writer and sample data (io.py), declared in napari.yaml (npe2).

    restore_layer(layer, weights="mdeblurgan-x2", trust=False, normalize="auto", tile=None, device="auto",
                  progress=None) -> list[tuple[data, dict, str]]

returns napari LayerDataTuples: the restored layer, then the trust layer if asked. The restored data equal
`mdeblur_cli.restore_array` on the layer's data with the same options: a 2-D plane (gray, or RGB with
`layer.rgb`) directly, a stack (any leading axes: T, Z, C split into layers...) plane by plane. The restored
layer's scale is halved on Y and X and its translate moved by a quarter of an original pixel (through the
layer's rotation, shear and affine, which it keeps), so that it overlays the original exactly; it keeps the
original's metadata and colormap. A multiscale (whole-slide) layer is refused above MULTISCALE_LIMIT samples:
`mdeblur restore` streams slides. The trust layer is the
predicted error's standard deviation in the image's intensity units, one value per pixel (for RGB the
channels' maps are equal, since the head predicts the error of the channel mean: the first is taken), shown
with a colormap at half opacity; the verdict (suspect, doubtful share, median predicted error) is in both
layers' metadata under "mdeblur".

`progress(plane, planes, tile, tiles)` is called after each tile; raising from it (the widget's Cancel) stops
the restore, and nothing is returned.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

TRUST_COLORMAP = "inferno"
MULTISCALE_LIMIT = 64 * 2**20  # samples of a multiscale layer's level 0 restored in memory; beyond: the CLI streams


def _planes(layer) -> tuple[np.ndarray, bool, int]:
    """The layer's full-resolution data, whether it is RGB, and the number of leading (non-YX) axes."""
    data = layer.data
    if getattr(layer, "multiscale", False):
        data = data[0]
        if int(np.prod(data.shape)) > MULTISCALE_LIMIT:
            raise ValueError(f"layer {layer.name!r} is a multiscale (whole-slide) layer of {data.shape[1]} x "
                             f"{data.shape[0]} px at full resolution: restore the file with `mdeblur restore SLIDE "
                             "-o out.ome.tif` (streamed, glass skipped), or a --region of it")
    data = np.asarray(data)
    rgb = bool(getattr(layer, "rgb", False))
    lead = data.ndim - (3 if rgb else 2)
    if lead < 0:
        raise ValueError(f"layer {layer.name!r}: {data.shape} is not an image ({'Y, X, RGB' if rgb else 'Y, X'})")
    return data, rgb, lead


def _halved(layer, lead: int) -> dict:
    """Scale halved on Y and X and the origin moved to where the original's data point (.., -1/4, -1/4) lands, so
    that pixel centres line up under the layer's rotation, shear and affine too (which are kept)."""
    scale = [float(v) for v in layer.scale]
    translate = [float(v) for v in layer.translate]
    kw: dict = {}
    rotate, shear = getattr(layer, "rotate", None), getattr(layer, "shear", None)
    if rotate is not None:
        from napari.utils.transforms import Affine

        corner = [0.0] * len(scale)
        corner[-2] = corner[-1] = -0.25
        translate = [float(v) for v in Affine(scale=scale, translate=translate, rotate=rotate, shear=shear)(corner)]
        kw = {"rotate": np.asarray(rotate), "shear": np.asarray(shear),
              "affine": np.asarray(layer.affine.affine_matrix)}
    else:
        for ax in (-2, -1):
            translate[ax] -= 0.25 * scale[ax]
    for ax in (-2, -1):
        scale[ax] /= 2
    return {"scale": scale, "translate": translate, **kw}


def restore_layer(layer, weights: str = "mdeblurgan-x2", trust: bool = False, normalize: str = "auto",
                  tile: int | None = None, device: str = "auto",
                  progress: Callable[[int, int, int, int], None] | None = None) -> list[tuple]:
    """Restore a napari image layer (or anything with .data, .name, .scale, .translate, .metadata, .rgb); see
    the module."""
    from ..device import as_device
    from ..restore.arrays import restore_array
    from ..restore.tiles import DEFAULT_TILE
    from ..restore.trust import combine
    from ..weights import load_model

    data, rgb, lead = _planes(layer)
    model = load_model(weights)
    dev = as_device(device)
    index = list(np.ndindex(*data.shape[:lead])) if lead else [()]
    out = maps = None
    summaries: list[dict] = []
    for i, idx in enumerate(index):
        tick = None if progress is None else (lambda done, total, i=i: progress(i, len(index), done, total))
        res = restore_array(data[idx], model, tile=tile or DEFAULT_TILE, device=dev, normalize=normalize,
                            axes="YXS" if rgb else "YX", progress=tick, trust=trust)
        y, sd, summary = res if trust else (res, None, None)
        if out is None:
            out = np.empty(data.shape[:lead] + y.shape, y.dtype)
            maps = np.empty(data.shape[:lead] + y.shape[:2], np.float32) if trust else None
        out[idx] = y
        if trust:
            maps[idx] = sd[..., 0] if sd.ndim == 3 else sd
            summaries.append(summary)
    place = _halved(layer, lead)
    info = {"source_layer": layer.name, "weights": str(weights), "scale": model.scale, "normalize": normalize}
    if trust:
        verdict = combine(summaries, [maps])
        info["trust"] = {k: verdict[k] for k in ("median_error", "doubtful_share", "suspect", "map", "planes",
                                                 "suspect_planes")}
    meta = {**dict(getattr(layer, "metadata", {}) or {}), "mdeblur": info}
    kw = {"name": f"{layer.name}_x2", **place, "metadata": meta, "rgb": rgb}
    if not rgb:
        cmap = getattr(getattr(layer, "colormap", None), "name", None)
        if cmap:
            kw["colormap"] = cmap
        if getattr(layer, "contrast_limits", None) is not None:
            kw["contrast_limits"] = list(layer.contrast_limits)  # the output keeps the input's intensity units
    layers = [(out, kw, "image")]
    if trust:
        layers.append((maps, {"name": f"{layer.name}_x2_trust", **place,
                              "colormap": TRUST_COLORMAP, "opacity": 0.5, "blending": "additive",
                              "metadata": {"mdeblur": info, "units": "predicted error SD, the image's intensity units"}},
                       "image"))
    return layers


__all__ = ["restore_layer"]
