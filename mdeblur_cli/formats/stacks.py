"""Microscopy files as stacks: one read and one write for every format (tiff, raster, ngff), the output kind
an extension means, and what metadata an output cannot keep. Only Y and X are restored; every other axis is
iterated, and the output keeps the axes and their order."""

from __future__ import annotations

from pathlib import Path

from ..errors import MdeblurError
from .ngff import _ngff_ok, _read_zarr, _write_zarr, _zarr, is_zarr
from .raster import _raster_array, _read_bio, _read_raster, _write_raster
from .series import BIO_EXT, KEEPS, RASTER_EXT, STACK_EXT, TIFF_EXT, ZARR_EXT, Meta, Series, check_axes, is_ome_path
from .tiff import OME_AXES, _read_tiff, _write_tiff, output_kind, tiff_meta


def meta_only(path: Path) -> Meta:
    """The metadata of a TIFF or OME-Zarr input, without reading its pixels."""
    if is_zarr(path):
        return _read_zarr(path, pixels_too=False)[0].meta
    import tifffile

    with tifffile.TiffFile(str(path)) as tif:
        return tiff_meta(tif, tif.pages[0])

def read_series(path: str | Path, axes: str | None = None, max_pixels: int | None = None) -> list[Series]:
    """Every series of an image file, with axes (or `axes` given by the user) and metadata.

    Files that would decode to more than `max_pixels` samples (None: what this machine's memory can restore)
    are refused from their headers, before any decoding.
    """
    path = Path(path)
    ext = path.suffix.lower()
    if ext in ZARR_EXT and path.is_dir():
        series = _read_zarr(path, max_pixels)
    else:
        if not path.is_file():
            raise MdeblurError(f"{path}: no such file")
        if path.stat().st_size == 0:
            raise MdeblurError(f"{path}: empty file")
        if ext not in STACK_EXT - ZARR_EXT:
            raise MdeblurError(f"{path}: unsupported file type {ext or '(none)'} (use "
                               f"{', '.join(sorted(STACK_EXT - {'.zarr'}))}, .ome.tif, .ome.tiff, .ome.zarr; whole "
                               "slides .svs, .ndpi, .scn, .bif)")
        reader = _read_tiff if ext in TIFF_EXT else _read_bio if ext in BIO_EXT else _read_raster
        series = reader(path, max_pixels)
    for s in series:
        s.axes = check_axes(axes or s.axes, s.data.shape, str(path) + (" (--axes)" if axes else ""))
        if s.meta.alpha and (s.channel_axis is None or s.channels < 2):
            s.meta.alpha = False
    return series

def lost_metadata(path: Path, series: list[Series]) -> dict[str, str]:
    """The input's calibration items that the output `path` cannot keep (see KEEPS)."""
    keeps = KEEPS[output_kind(path, series)]
    return {k: v for s in series for k, v in s.meta.calibration().items() if k not in keeps}

def check_writable(path: Path, series: list[Series]) -> None:
    """Refuse, before any work, an output format that cannot hold these series (naming the real output)."""
    path = Path(path)
    ext = path.suffix.lower()
    if ext in RASTER_EXT:
        if len(series) != 1:
            raise MdeblurError(f"{path}: {len(series)} images need a TIFF output (.tif or .ome.tif)")
        _raster_array(path, series[0])
    elif is_zarr(path):
        _zarr(path)  # the extra is there, before any work
        if len(series) != 1 or not _ngff_ok(series[0]):
            what = f"{len(series)} images" if len(series) != 1 else f"axes {series[0].axes}"
            raise MdeblurError(f"{path}: OME-Zarr (NGFF 0.4) holds one image with axes among T, C, Z, Y, X, not "
                               f"{what}; write .ome.tif")
    elif is_ome_path(path):
        for s in series:
            bad = sorted(set(s.axes) - OME_AXES)
            if bad:
                raise MdeblurError(f"{path}: OME-TIFF cannot store axis {''.join(bad)} of {s.axes}; "
                                   "write .tif, or name the axes with --axes")

def write_series(path: str | Path, series: list[Series]) -> None:
    """Write series in the format the extension names: .ome.tif (OME-TIFF), .tif (ImageJ hyperstack for an
    ImageJ/OME input, else a plain TIFF with its axes), or PNG/JPEG/BMP for one 2-D gray or colour image.
    Writes to `path` directly; callers wanting atomicity write to a temporary name and rename.
    """
    path = Path(path)
    ext = path.suffix.lower()
    if ext in ZARR_EXT:
        _write_zarr(path, series)
        return
    if ext in TIFF_EXT:
        try:
            _write_tiff(path, series)
        except MdeblurError:
            raise
        except (ValueError, TypeError) as exc:  # tifffile's refusals (an axis OME cannot store, ...)
            raise MdeblurError(f"{path}: cannot write this image as {'OME-TIFF' if is_ome_path(path) else 'TIFF'}"
                               f" ({exc})".splitlines()[0]) from None
        return
    if len(series) != 1:
        raise MdeblurError(f"{path}: {len(series)} images need a TIFF output (.tif or .ome.tif)")
    _write_raster(path, series[0])
