"""OME-Zarr (NGFF): read and written with its axes, scale and channel metadata (the zarr extra)."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np

from ..errors import MdeblurError
from .series import ZARR_EXT, Meta, Series, check_dtype, check_size

NGFF_UNITS = {"µm": "micrometer", "um": "micrometer", "micron": "micrometer", "microns": "micrometer",
              "nm": "nanometer", "mm": "millimeter", "cm": "centimeter", "m": "meter", "in": "inch", "inch": "inch",
              "s": "second", "ms": "millisecond", "min": "minute", "h": "hour"}

NGFF_TYPES = {"T": "time", "C": "channel", "Z": "space", "Y": "space", "X": "space"}

def _zarr(path: Path):
    try:
        import zarr
    except ImportError:
        raise MdeblurError(f"{path}: OME-Zarr needs the zarr extra: pip install 'mdeblur[zarr]'") from None
    return zarr

def _read_zarr(path: Path, max_pixels: int | None = None, pixels_too: bool = True) -> list[Series]:
    """An OME-Zarr image (NGFF 0.4 or 0.5): level 0 of its first multiscale, axes, scale and channel labels.
    Without `pixels_too`, the series holds an empty array of the image's dtype (metadata only)."""
    zarr = _zarr(path)
    try:
        group = zarr.open_group(str(path), mode="r")
        attrs = dict(group.attrs)
        attrs = attrs.get("ome", attrs)  # NGFF 0.5 nests its metadata under "ome"
        if not attrs.get("multiscales"):
            raise MdeblurError(f"{path}: not an OME-Zarr image (no multiscales metadata)")
        ms = attrs["multiscales"][0]
        names = [a["name"] if isinstance(a, dict) else a for a in ms["axes"]]
        ds = ms["datasets"][0]
        array = group[ds["path"]]
        check_size(path, tuple(array.shape), "".join(n[0] for n in names), max_pixels)
        data = np.asarray(array[...]) if pixels_too else np.empty((0,) * len(array.shape), array.dtype)
    except MdeblurError:
        raise
    except Exception as exc:  # zarr raises many types for broken stores
        raise MdeblurError(f"{path}: not a readable OME-Zarr ({type(exc).__name__}: {exc})".splitlines()[0]) from None
    axes = "".join(n.upper() for n in names)
    scale = next((t["scale"] for t in ds.get("coordinateTransformations", []) if t.get("type") == "scale"), None)
    units = {a["name"].upper(): a.get("unit") for a in ms["axes"] if isinstance(a, dict)}
    back = {v: k for k, v in NGFF_UNITS.items() if k not in ("um", "micron", "microns", "in")}
    pixels: dict = {}
    for letter in "XYZ":
        if scale and letter in axes:
            pixels[f"PhysicalSize{letter}"] = float(scale[axes.index(letter)])
            pixels[f"PhysicalSize{letter}Unit"] = back.get(units.get(letter), "µm")
    if scale and "T" in axes:
        pixels.update(TimeIncrement=float(scale[axes.index("T")]), TimeIncrementUnit=back.get(units.get("T"), "s"))
    omero = attrs.get("omero", {})
    chans = omero.get("channels", [])
    if "C" in axes and chans:
        pixels["Channel"] = [{**({"Name": str(c["label"])} if c.get("label") else {}),
                              **({"Color": _ome_color(c["color"])} if c.get("color") else {})} for c in chans]
    meta = Meta(kind="ome", ome={"Name": str(ms.get("name", path.name)), "Pixels": pixels}, omero=omero)
    return [Series(check_dtype(path, data) if pixels_too else data, axes, meta)]

def _ome_color(hex_rgb: str) -> int:
    """OME-Zarr's 'RRGGBB' to OME-XML's signed 32-bit RGBA."""
    rgba = (int(hex_rgb, 16) << 8) | 0xFF
    return rgba - (1 << 32) if rgba >= 1 << 31 else rgba

def _hex_color(ome: int) -> str:
    """OME-XML's signed 32-bit RGBA to OME-Zarr's 'RRGGBB'."""
    return f"{(int(ome) & 0xFFFFFFFF) >> 8:06X}"

def _ngff_ok(s: Series) -> bool:
    """NGFF 0.4 holds T, C, Z, Y, X (in that order; mdeblur reorders) and nothing else."""
    return set(s.axes) <= set("TCZYX")

def _write_zarr(path: Path, series: list[Series]) -> None:
    """One series as OME-Zarr (NGFF 0.4, zarr format 2, one resolution level), chunked by plane."""
    s = series[0]
    axes_out = "".join(a for a in "TCZYX" if a in s.axes)  # NGFF's order
    s = Series(np.transpose(s.data, [s.axes.index(a) for a in axes_out]), axes_out, s.meta)
    chunks = tuple(min(n, 1024) if a in "YX" else 1 for a, n in zip(s.axes, s.data.shape, strict=True))
    array = zarr_create(path, s, s.data.shape, chunks)
    array[...] = s.data

def zarr_create(path: Path, s: Series, shape: tuple[int, ...], chunks: tuple[int, ...]):
    """An empty OME-Zarr image (NGFF 0.4, zarr format 2, one level) for a series of this shape (axes in NGFF's
    order; `s.data` only gives the dtype), with its scale, units and channel metadata; returns the array."""
    zarr = _zarr(path)
    group = zarr.open_group(str(path), mode="w", zarr_format=2)
    array = group.create_array("0", shape=tuple(shape), dtype=s.data.dtype, chunks=tuple(chunks))
    _zarr_attrs(group, s)
    return array

def _zarr_attrs(group, s: Series) -> None:
    size, z, t = s.meta.pixel_size(), s.meta.z_spacing(), s.meta.time_interval()
    known = {"Y": (size[0], size[2]) if size else None, "X": (size[1], size[2]) if size else None, "Z": z, "T": t}
    axes, scale = [], []
    for a in s.axes:
        entry = {"name": a.lower(), "type": NGFF_TYPES[a]}
        if known.get(a) and known[a][1] in NGFF_UNITS:
            entry["unit"] = NGFF_UNITS[known[a][1]]
        axes.append(entry)
        scale.append(float(known[a][0]) if known.get(a) else 1.0)
    group.attrs["multiscales"] = [{"version": "0.4", "name": str(s.meta.ome.get("Name", "image")), "axes": axes,
                                   "datasets": [{"path": "0", "coordinateTransformations": [
                                       {"type": "scale", "scale": scale}]}]}]
    omero = copy.deepcopy(s.meta.omero)
    chans = s.meta.ome.get("Pixels", {}).get("Channel", [])
    chans = chans if isinstance(chans, list) else [chans]
    if not omero and any(c.get("Name") or "Color" in c for c in chans):
        omero = {"channels": [{**({"label": str(c["Name"])} if c.get("Name") else {}),
                               **({"color": _hex_color(c["Color"])} if "Color" in c else {}), "active": True}
                              for c in chans]}
    if omero:
        group.attrs["omero"] = omero

def is_zarr(path: Path) -> bool:
    return Path(path).suffix.lower() in ZARR_EXT
