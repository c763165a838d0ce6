"""TIFF, OME-TIFF and ImageJ TIFF: reading series with their calibration, and writing them back with it."""

from __future__ import annotations

import copy
from dataclasses import replace
from pathlib import Path

import numpy as np

from ..errors import MdeblurError
from .ngff import is_zarr
from .series import IMAGEJ_KEEP, RASTER_EXT, UNIT_CM, Meta, Series, check_dtype, check_size, is_ome_path

IMAGEJ_ORDER = "TZCYXS"

IMAGEJ_DTYPES = (np.uint8, np.uint16, np.float32)

# OME Pixels attributes that describe the stored planes: tifffile rewrites them for the new shape.
OME_STORAGE = ("SizeX", "SizeY", "SizeZ", "SizeC", "SizeT", "TiffData", "Type", "DimensionOrder", "BigEndian",
               "Interleaved", "SignificantBits", "MetadataOnly", "ID", "BinData")

def tiff_meta(tif, page) -> Meta:
    """Metadata common to all series of a TIFF file."""
    import tifffile

    meta = Meta(kind="ome" if tif.is_ome else "imagej" if tif.is_imagej else "tiff")
    tags = page.tags
    if "XResolution" in tags and "YResolution" in tags:
        (xn, xd), (yn, yd) = tags["XResolution"].value, tags["YResolution"].value
        if xd and yd:
            meta.resolution = (xn / xd, yn / yd)
            meta.resolution_unit = int(tags["ResolutionUnit"].value) if "ResolutionUnit" in tags else 2
    meta.rgb = page.photometric == tifffile.PHOTOMETRIC.RGB
    meta.alpha = any(int(e) in (1, 2) for e in (page.extrasamples or ()))  # associated or unassociated alpha
    if tif.is_imagej:
        meta.imagej = {k: v for k, v in (tif.imagej_metadata or {}).items() if k in IMAGEJ_KEEP}
    return meta

def _ome_images(tif) -> list[dict]:
    import tifffile

    images = tifffile.xml2dict(tif.ome_metadata).get("OME", {}).get("Image", [])
    return images if isinstance(images, list) else [images]

def _read_tiff(path: Path, max_pixels: int | None = None) -> list[Series]:
    import logging

    import tifffile

    logging.getLogger("tifffile").setLevel(logging.CRITICAL)  # what it logs on odd files: we report our own error
    out = []
    try:
        with tifffile.TiffFile(path) as tif:
            if not tif.series:
                raise MdeblurError(f"{path}: TIFF holds no image")
            for series in tif.series:
                check_size(path, series.shape, series.axes, max_pixels)
            base = tiff_meta(tif, tif.pages[0])
            images = _ome_images(tif) if tif.is_ome else []
            for i, series in enumerate(tif.series):
                data = check_dtype(path, series.asarray())
                meta = replace(base, ome=images[i] if i < len(images) else {})
                out.append(Series(data, series.axes.upper(), meta))
    except MdeblurError:
        raise
    except Exception as exc:  # tifffile raises many types for broken files
        raise MdeblurError(f"{path}: not a readable TIFF ({type(exc).__name__}: {exc})".splitlines()[0]) from None
    return out

def _imagej_ok(s: Series) -> bool:
    order = [IMAGEJ_ORDER.index(a) for a in s.axes if a in IMAGEJ_ORDER]
    return (len(order) == len(s.axes) and order == sorted(order) and any(s.data.dtype == d for d in IMAGEJ_DTYPES)
            and s.axes[-1] != "C")

def _ome_metadata(s: Series) -> dict:
    """OME Image/Pixels metadata for tifffile's writer: the input's, without the storage layout."""
    image = copy.deepcopy(s.meta.ome)
    pixels = image.pop("Pixels", {})
    for key in OME_STORAGE:
        pixels.pop(key, None)
    image.pop("ID", None)
    for ch in pixels.get("Channel", []) if isinstance(pixels.get("Channel"), list) else [pixels.get("Channel", {})]:
        for key in ("ID", "SamplesPerPixel"):
            ch.pop(key, None)
    size, z, t = s.meta.pixel_size(), s.meta.z_spacing(), s.meta.time_interval()
    ome_unit = {"inch": "in", "micron": "µm", "microns": "µm", "um": "µm"}.get
    if "PhysicalSizeX" not in pixels and size is not None:  # a calibrated non-OME input
        unit = ome_unit(size[2], size[2])
        pixels.update(PhysicalSizeY=size[0], PhysicalSizeX=size[1], PhysicalSizeYUnit=unit, PhysicalSizeXUnit=unit)
    if "PhysicalSizeZ" not in pixels and z is not None and z[1] in UNIT_CM:
        pixels.update(PhysicalSizeZ=z[0], PhysicalSizeZUnit=ome_unit(z[1], z[1]))
    if "TimeIncrement" not in pixels and t is not None:
        pixels.update(TimeIncrement=t[0], TimeIncrementUnit=t[1])
    return {**image, "Pixels": pixels} if pixels else image

def _imagej_metadata(s: Series) -> dict:
    """The ImageJ header: the input's, or for an OME input its unit, Z spacing and frame interval."""
    if s.meta.kind == "imagej":
        return dict(s.meta.imagej)
    pixels, size, out = s.meta.ome.get("Pixels", {}), s.meta.pixel_size(), {}
    if size is not None:
        out["unit"] = {"µm": "micron"}.get(size[2], size[2])
    if "PhysicalSizeZ" in pixels:
        out["spacing"] = float(pixels["PhysicalSizeZ"])
    if "TimeIncrement" in pixels:
        out["finterval"] = float(pixels["TimeIncrement"])
    if "C" in s.axes:
        out["mode"] = "composite"
    return out

def tiff_kwargs(s: Series) -> dict:
    kw: dict = {}
    size = s.meta.pixel_size()
    if (s.meta.resolution is None or (s.meta.resolution_unit or 1) == 1) and size and size[2] in UNIT_CM:
        cm = UNIT_CM[size[2]]  # calibration from OME or an ImageJ header, as standard TIFF tags in cm
        kw["resolution"], kw["resolutionunit"] = (1 / (size[1] * cm), 1 / (size[0] * cm)), 3
    elif s.meta.resolution is not None:
        kw["resolution"] = s.meta.resolution
        kw["resolutionunit"] = s.meta.resolution_unit or 1
    ax = s.channel_axis
    contig, planar = s.axes.endswith(f"YX{ax}"), s.axes.endswith(f"{ax}YX")
    if ax is not None and (contig or planar) and s.channels in (3, 4) and (s.meta.rgb or s.meta.alpha):
        kw["photometric"] = "rgb"
        kw["planarconfig"] = "contig" if contig else "separate"
        if s.channels == 4:
            kw["extrasamples"] = ["unassalpha" if s.meta.alpha else "unspecified"]
    else:
        kw["photometric"] = "minisblack"
        if ax == s.axes[-1] and s.channels > 1:
            kw["planarconfig"] = "contig"
    return kw

def _write_tiff(path: Path, series: list[Series]) -> None:
    import tifffile

    ome, imagej = output_kind(path, series) == "ome", output_kind(path, series) == "imagej"
    big = sum(s.data.nbytes for s in series) > 2**32 - 2**25
    with tifffile.TiffWriter(path, bigtiff=big, ome=ome, imagej=imagej) as tif:
        for s in series:
            kw = tiff_kwargs(s)
            if ome:
                metadata = {"axes": s.axes, **_ome_metadata(s)}
                if s.meta.description:
                    metadata["Description"] = s.meta.description
                if kw.get("resolutionunit") == 1:
                    kw.pop("resolution"), kw.pop("resolutionunit")
            elif imagej:
                metadata = {"axes": s.axes, **_imagej_metadata(s)}
                if s.meta.description:
                    metadata["Info"] = s.meta.description
                size = s.meta.pixel_size()
                if size is not None:  # ImageJ: pixels per unit, the unit in its header
                    kw["resolution"], kw["resolutionunit"] = (1 / size[1], 1 / size[0]), 1
                kw.pop("planarconfig", None)
                kw["photometric"] = "rgb" if s.axes.endswith("S") else "minisblack"
            else:
                metadata = {"axes": s.axes}
                if s.meta.description:
                    metadata["description"] = s.meta.description
            tif.write(s.data, metadata=metadata, **kw)

OME_AXES = set("SXYZCTAPRHEQ")  # what OME-TIFF (tifffile) can store

def output_kind(path: Path, series: list[Series]) -> str:
    """ome, imagej (an ImageJ hyperstack, for an OME or ImageJ input whose axes ImageJ holds), tiff or raster."""
    path = Path(path)
    if path.suffix.lower() in RASTER_EXT:
        return "raster"
    if is_zarr(path):
        return "zarr"
    if is_ome_path(path):
        return "ome"
    return "imagej" if len(series) == 1 and series[0].meta.microscopy and _imagej_ok(series[0]) else "tiff"
