"""Microscopy images as stacks: axes, channels, calibration and OME/ImageJ metadata, read and written.

A file is one or more `Series`: an array, its axes (one letter per dimension, CSBDeep style: Y, X, and any
of T, Z, C, S for samples, or others) and the metadata that must survive restoration. Only Y and X are
restored; every other axis is iterated, and the output keeps the axes and their order.
"""

from __future__ import annotations

import contextlib
import copy
import re
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from ..errors import MdeblurError

OME_SUFFIXES = (".ome.tif", ".ome.tiff", ".ome.zarr")
TIFF_EXT = {".tif", ".tiff"}
RASTER_EXT = {".png", ".jpg", ".jpeg", ".bmp"}
BIO_EXT = {".czi", ".nd2", ".lif"}  # vendor formats, read through bioio (the `bio` extra); written as OME-TIFF
ZARR_EXT = {".zarr"}  # OME-Zarr (NGFF 0.4) folders, through zarr (the `zarr` extra)
WRITE_EXT = TIFF_EXT | RASTER_EXT | ZARR_EXT
STACK_EXT = WRITE_EXT | BIO_EXT
SUPPORTED_DTYPES = (np.uint8, np.uint16, np.float32, np.float64)
IMAGEJ_ORDER = "TZCYXS"
IMAGEJ_DTYPES = (np.uint8, np.uint16, np.float32)
# The ImageJ header entries carried to the output (the writer recomputes the counts and the hyperstack flag).
IMAGEJ_KEEP = ("unit", "spacing", "finterval", "fps", "loop", "mode", "Labels", "LUTs", "Ranges", "min", "max",
               "tunit", "xorigin", "yorigin", "zorigin", "Info", "Properties")
# OME Pixels attributes that describe the stored planes: tifffile rewrites them for the new shape.
OME_STORAGE = ("SizeX", "SizeY", "SizeZ", "SizeC", "SizeT", "TiffData", "Type", "DimensionOrder", "BigEndian",
               "Interleaved", "SignificantBits", "MetadataOnly", "ID", "BinData")
TIFF_UNITS = {2: "inch", 3: "cm", 4: "mm", 5: "µm"}  # TIFF ResolutionUnit codes
UNIT_CM = {"µm": 1e-4, "um": 1e-4, "micron": 1e-4, "microns": 1e-4, "nm": 1e-7, "mm": 0.1, "cm": 1.0, "m": 100.0,
           "inch": 2.54, "in": 2.54}
# What each output kind keeps of an input's calibration (see Meta.calibration).
KEEPS = {"ome": {"pixel size", "Z spacing", "time interval", "channel names"},
         "zarr": {"pixel size", "Z spacing", "time interval", "channel names"},
         "imagej": {"pixel size", "Z spacing", "time interval"}, "tiff": {"pixel size"}, "raster": set()}


@dataclass
class Meta:
    """What a file says beyond its pixels."""

    kind: str = "tiff"  # "ome", "imagej", "tiff" (plain TIFF) or "raster" (PNG, JPEG, BMP)
    alpha: bool = False  # the last sample is real alpha (PNG RGBA, TIFF ExtraSamples = alpha)
    rgb: bool = False  # the file declares its samples RGB (photometric RGB, PNG/JPEG colour)
    resolution: tuple[float, float] | None = None  # TIFF (XResolution, YResolution): pixels per unit
    resolution_unit: int | None = None  # TIFF ResolutionUnit: 1 none, 2 inch, 3 cm, 4 mm, 5 µm
    imagej: dict = field(default_factory=dict)  # ImageJ header entries (IMAGEJ_KEEP)
    ome: dict = field(default_factory=dict)  # the OME Image element, as tifffile.xml2dict gives it
    omero: dict = field(default_factory=dict)  # an OME-Zarr input's display metadata (channels, colours, windows)
    description: str | None = None  # written: OME Image Description, ImageJ Info, or the plain TIFF's JSON

    @property
    def microscopy(self) -> bool:
        """Whether the file carries microscopy metadata (OME or an ImageJ header)."""
        return self.kind in ("ome", "imagej")

    def pixel_size(self) -> tuple[float, float, str] | None:
        """(size_y, size_x, unit) of one pixel, from OME, the ImageJ header or the TIFF tags; None if unknown."""
        pixels = self.ome.get("Pixels", {})
        if "PhysicalSizeX" in pixels:
            sx = float(pixels["PhysicalSizeX"])
            return float(pixels.get("PhysicalSizeY", sx)), sx, str(pixels.get("PhysicalSizeXUnit", "µm"))
        if self.resolution is None or min(self.resolution) <= 0:
            return None
        unit = self.imagej.get("unit") or TIFF_UNITS.get(self.resolution_unit or 1)
        if not unit or unit in ("pixel", "pixels") or (self.resolution == (1.0, 1.0) and self.kind != "imagej"):
            return None
        unit = unit.replace("\\u00B5", "µ")
        to_um = UNIT_CM[unit] / UNIT_CM["µm"] if unit in UNIT_CM else None  # microscopy speaks µm
        if to_um is None:
            return 1.0 / self.resolution[1], 1.0 / self.resolution[0], unit
        return to_um / self.resolution[1], to_um / self.resolution[0], "µm"

    def z_spacing(self) -> tuple[float, str] | None:
        pixels = self.ome.get("Pixels", {})
        if "PhysicalSizeZ" in pixels:
            return float(pixels["PhysicalSizeZ"]), str(pixels.get("PhysicalSizeZUnit", "µm"))
        if "spacing" in self.imagej:
            return float(self.imagej["spacing"]), str(self.imagej.get("unit", "pixel"))
        return None

    def time_interval(self) -> tuple[float, str] | None:
        pixels = self.ome.get("Pixels", {})
        if "TimeIncrement" in pixels:
            return float(pixels["TimeIncrement"]), str(pixels.get("TimeIncrementUnit", "s"))
        if "finterval" in self.imagej:
            return float(self.imagej["finterval"]), str(self.imagej.get("tunit", "s"))
        return None

    def channel_names(self) -> list[str]:
        chans = self.ome.get("Pixels", {}).get("Channel", [])
        return [str(c["Name"]) for c in (chans if isinstance(chans, list) else [chans]) if c.get("Name")]

    def calibration(self) -> dict[str, str]:
        """What the file says about its geometry and channels, for the record and for what an output loses."""
        out = {}
        if (size := self.pixel_size()) is not None:
            out["pixel size"] = f"{size[1]:g} {size[2]}"
        if (z := self.z_spacing()) is not None:
            out["Z spacing"] = f"{z[0]:g} {z[1]}"
        if (t := self.time_interval()) is not None:
            out["time interval"] = f"{t[0]:g} {t[1]}"
        if names := self.channel_names():
            out["channel names"] = ", ".join(names)
        return out

    def scaled(self, scale: int) -> Meta:
        """The metadata of the image upscaled `scale` times in Y and X: pixels smaller, everything else kept."""
        out = replace(self, imagej=dict(self.imagej), ome=copy.deepcopy(self.ome))
        if self.resolution is not None:
            out.resolution = (self.resolution[0] * scale, self.resolution[1] * scale)
        for key in ("xorigin", "yorigin"):  # ImageJ origins are in pixels; keep pixel centres in place
            if key in out.imagej:
                out.imagej[key] = float(out.imagej[key]) * scale + (scale - 1) / 2
        pixels = out.ome.get("Pixels", {})
        for key in ("PhysicalSizeX", "PhysicalSizeY"):
            if key in pixels:
                pixels[key] = float(pixels[key]) / scale
        return out


@dataclass
class Series:
    """One image of a file: data with one axis letter per dimension, and its metadata."""

    data: np.ndarray
    axes: str
    meta: Meta = field(default_factory=Meta)

    @property
    def channel_axis(self) -> str | None:
        """The axis that holds colours or fluorescence channels: S (samples) if present, else C."""
        return "S" if "S" in self.axes else "C" if "C" in self.axes else None

    @property
    def channels(self) -> int:
        ax = self.channel_axis
        return 1 if ax is None else self.data.shape[self.axes.index(ax)]


def check_axes(axes: str, shape: tuple[int, ...], where: str = "") -> str:
    """Upper-case axes with one letter per dimension, Y and X once each; raises MdeblurError."""
    axes = axes.upper()
    prefix = f"{where}: " if where else ""
    if not re.fullmatch(r"[A-Z]+", axes) or len(set(axes)) != len(axes):
        raise MdeblurError(f"{prefix}axes {axes!r}: use distinct letters such as YX, CYX, YXC, ZYX, TZCYX")
    if "Y" not in axes or "X" not in axes:
        raise MdeblurError(f"{prefix}axes {axes!r} must contain Y and X")
    if len(axes) != len(shape):
        raise MdeblurError(f"{prefix}axes {axes!r} name {len(axes)} dimensions, the image has {len(shape)} "
                           f"(shape {tuple(shape)})")
    if min(shape[axes.index("Y")], shape[axes.index("X")]) < 2:
        raise MdeblurError(f"{prefix}image too small ({shape[axes.index('X')]}x{shape[axes.index('Y')]} px)")
    return axes


BYTES_PER_PIXEL = 200  # what restoring costs in memory per input pixel (float buffers at x2, output, the network):
# measured ~200 B by benchmarks/restore_memory.py (2048^2 gray: 1080 MB peak from a 232 MB start)


def machine_memory() -> int:
    """Physical memory in bytes (Linux, macOS); 16 GiB where it cannot be read."""
    import os

    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 16 << 30


def default_max_pixels() -> int:
    """The decoded-size limit: what this machine's memory can restore at BYTES_PER_PIXEL."""
    return machine_memory() // BYTES_PER_PIXEL


PLAUSIBLE_PIXELS = 1e12  # a million megapixels: beyond any slide scanner's plane stack


def check_size(path: Path, shape: tuple[int, ...], axes: str, max_pixels: int | None) -> None:
    """Refuse, before decoding, an image of more than `max_pixels` pixels (channels not counted; every plane
    of a stack counted; None: what this machine's memory can restore)."""
    limit = default_max_pixels() if max_pixels is None else max_pixels
    n = float(np.prod([float(d) for d, a in zip(shape, axes, strict=True) if a.upper() not in "SC"]))
    if n > limit:
        why = (f"the default for this machine's {machine_memory() / 2**30:.0f} GiB at about {BYTES_PER_PIXEL} bytes "
               "per pixel" if max_pixels is None else "--max-pixels")
        dims = f"{axes} {'x'.join(str(int(d)) for d in shape)}"
        if n > PLAUSIBLE_PIXELS:  # no microscope image is this large: a corrupt header, not a memory question
            raise MdeblurError(f"{path}: not a readable image (its header claims {dims}, {n / 1e6:.0f} M pixels: "
                               "corrupt or not what its name says)")
        raise MdeblurError(f"{path}: {n / 1e6:.0f} M pixels ({dims}) exceed "
                           f"the limit of {limit / 1e6:.0f} M ({why}); raise --max-pixels if the memory is there")


def raster_shape(path: Path) -> tuple[int, int] | None:
    """(height, width) from a PNG, JPEG or BMP header, read before any decoding; None if not found."""
    with open(path, "rb") as f:
        head = f.read(1 << 16)
    if head[:8] == b"\x89PNG\r\n\x1a\n" and len(head) >= 24:
        return int.from_bytes(head[20:24], "big"), int.from_bytes(head[16:20], "big")
    if head[:2] == b"BM" and len(head) >= 26:
        return abs(int.from_bytes(head[22:26], "little", signed=True)), int.from_bytes(head[18:22], "little", signed=True)
    if head[:2] == b"\xff\xd8":  # JPEG: walk the markers to the start of frame
        i = 2
        while i + 9 < len(head):
            if head[i] != 0xFF:
                return None
            marker, length = head[i + 1], int.from_bytes(head[i + 2 : i + 4], "big")
            if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
                return int.from_bytes(head[i + 5 : i + 7], "big"), int.from_bytes(head[i + 7 : i + 9], "big")
            i += 2 + length
    return None


def check_dtype(where: str | Path, data: np.ndarray) -> np.ndarray:
    """The data if mdeblur can restore its pixel type, else MdeblurError naming `where`."""
    if data.dtype == bool:
        raise MdeblurError(f"{where}: a 1-bit (bool) image is a mask, not intensities; convert it to 8-bit first")
    if not any(data.dtype == d for d in SUPPORTED_DTYPES):
        raise MdeblurError(f"{where}: unsupported pixel type {data.dtype} "
                           "(mdeblur restores uint8, uint16, float32 and float64 images)")
    if data.size == 0:
        raise MdeblurError(f"{where}: zero-sized image")
    return data


def _tiff_meta(tif, page) -> Meta:
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
            base = _tiff_meta(tif, tif.pages[0])
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


@contextlib.contextmanager
def quiet_stderr():
    """Silence what C libraries print straight to stderr (libpng's warnings inside OpenCV): broken files are
    reported as MdeblurError, and harmless warnings (an odd colour profile) are not the user's business."""
    import os
    import sys

    try:
        fd = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):  # no real stderr (captured): nothing to silence
        yield
        return
    sys.stderr.flush()
    saved = os.dup(fd)
    with open(os.devnull, "w") as null:
        os.dup2(null.fileno(), fd)
        try:
            yield
        finally:
            os.dup2(saved, fd)
            os.close(saved)


def _cv2():
    """OpenCV, with its log lines silenced: broken files are reported as MdeblurError instead."""
    import cv2

    logging = getattr(getattr(cv2, "utils", None), "logging", None)
    if logging is not None:
        logging.setLogLevel(logging.LOG_LEVEL_SILENT)
    elif hasattr(cv2, "setLogLevel"):
        cv2.setLogLevel(0)
    return cv2


def _read_raster(path: Path, max_pixels: int | None = None) -> list[Series]:
    shape = raster_shape(path)
    if shape is not None:
        check_size(path, shape, "YX", max_pixels)
    cv2 = _cv2()
    with quiet_stderr():
        arr = cv2.imdecode(np.fromfile(path, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    if arr is None:
        raise MdeblurError(f"{path}: not a readable {path.suffix[1:].upper()} image (truncated or corrupt)")
    arr = check_dtype(path, arr)
    if arr.ndim == 2:
        return [Series(arr, "YX", Meta(kind="raster"))]
    if arr.shape[2] == 1:
        return [Series(arr[..., 0], "YX", Meta(kind="raster"))]
    alpha = arr.shape[2] == 4
    arr = cv2.cvtColor(arr, cv2.COLOR_BGRA2RGBA if alpha else cv2.COLOR_BGR2RGB)
    if alpha and _png_color_type(path) == 4:  # gray + alpha: OpenCV expands it to RGBA; keep it gray
        return [Series(np.ascontiguousarray(arr[..., [0, 3]]), "YXS", Meta(kind="raster", alpha=True))]
    return [Series(arr, "YXS", Meta(kind="raster", rgb=True, alpha=alpha))]


def _png_color_type(path: Path) -> int | None:
    """The PNG IHDR colour type (0 gray, 2 RGB, 3 palette, 4 gray+alpha, 6 RGBA); None if not a PNG."""
    with open(path, "rb") as f:
        head = f.read(26)
    return head[25] if len(head) == 26 and head[:8] == b"\x89PNG\r\n\x1a\n" else None


def _read_bio(path: Path, max_pixels: int | None = None) -> list[Series]:
    """CZI, ND2, LIF through bioio: every scene, singleton axes dropped, pixel sizes and channel names kept."""
    try:
        from bioio import BioImage
    except ImportError:
        raise MdeblurError(f"{path}: reading {path.suffix} files needs the bio extra: "
                           "pip install 'mdeblur[bio]' (bioio with its CZI, ND2 and LIF readers)") from None
    out = []
    try:
        img = BioImage(path)
        for scene in img.scenes:
            img.set_scene(scene)
            check_size(path, tuple(img.shape), img.dims.order, max_pixels)
            data, order = np.asarray(img.data), img.dims.order
            keep = [i for i, a in enumerate(order) if a in "YX" or data.shape[i] > 1]
            data = data.reshape([data.shape[i] for i in keep])
            axes = "".join(order[i] for i in keep)
            sizes, pixels = img.physical_pixel_sizes, {}
            for key, value in (("X", sizes.X), ("Y", sizes.Y), ("Z", sizes.Z)):
                if value:
                    pixels.update({f"PhysicalSize{key}": float(value), f"PhysicalSize{key}Unit": "µm"})
            if "C" in axes:
                pixels["Channel"] = [{"Name": str(n)} for n in img.channel_names]
            out.append(Series(check_dtype(path, data), axes, Meta(kind="ome", rgb="S" in axes,
                                                                   ome={"Name": str(scene), "Pixels": pixels})))
    except MdeblurError:
        raise
    except Exception as exc:  # the readers raise many types for broken files
        raise MdeblurError(f"{path}: not a readable {path.suffix[1:].upper()} file ({type(exc).__name__}: {exc})"
                           .splitlines()[0]) from None
    return out


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


def meta_only(path: Path) -> Meta:
    """The metadata of a TIFF or OME-Zarr input, without reading its pixels."""
    if is_zarr(path):
        return _read_zarr(path, pixels_too=False)[0].meta
    import tifffile

    with tifffile.TiffFile(str(path)) as tif:
        return _tiff_meta(tif, tif.pages[0])


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
            raise MdeblurError(f"{path}: unsupported file type {ext or '(none)'} "
                               f"(use {', '.join(sorted(STACK_EXT))})")
        reader = _read_tiff if ext in TIFF_EXT else _read_bio if ext in BIO_EXT else _read_raster
        series = reader(path, max_pixels)
    for s in series:
        s.axes = check_axes(axes or s.axes, s.data.shape, str(path) + (" (--axes)" if axes else ""))
        if s.meta.alpha and (s.channel_axis is None or s.channels < 2):
            s.meta.alpha = False
    return series


def split_name(path: Path) -> tuple[str, str]:
    """(stem, extension), with .ome.tif(f) as one extension: cells.ome.tif -> (cells, .ome.tif).

    Formats mdeblur cannot write (CZI, ND2, LIF) get .ome.tif: plate.czi -> (plate, .ome.tif).
    """
    name = path.name
    if path.suffix.lower() in BIO_EXT:
        return path.stem, ".ome.tif"
    for ext in OME_SUFFIXES:
        if name.lower().endswith(ext):
            return name[: -len(ext)], name[-len(ext) :]
    return path.stem, path.suffix


def is_ome_path(path: Path) -> bool:
    return path.name.lower().endswith(OME_SUFFIXES)


def _planes_last(s: Series) -> tuple[np.ndarray, str]:
    """The data with the channel axis last (if any): (..., Y, X[, C]), and those axes."""
    ax = s.channel_axis
    keep = [a for a in s.axes if a != ax] + ([ax] if ax else [])
    return np.transpose(s.data, [s.axes.index(a) for a in keep]), "".join(keep)


def _raster_array(path: Path, s: Series, check_values: bool = True) -> np.ndarray:
    """The one (H, W) or (H, W, C) plane a PNG/JPEG/BMP can hold, or MdeblurError.

    With `check_values`, float data must lie in [0, 1] (checked on the input, before any work; the restored
    image may overshoot a little, and is clipped when written).
    """
    data, axes = _planes_last(s)
    lead = data.shape[: axes.index("Y")]
    if int(np.prod(lead)) != 1:
        raise MdeblurError(f"{path}: {int(np.prod(lead))} planes (axes {s.axes}, shape {s.data.shape}) need a TIFF "
                           "output (.tif or .ome.tif)")
    data = data.reshape(data.shape[len(lead) :])
    if data.ndim == 3 and data.shape[2] == 1:
        data = data[..., 0]
    ext = path.suffix.lower()
    if data.ndim == 3 and data.shape[2] == 2 and s.meta.alpha and ext == ".png":  # gray + alpha as RGBA
        data = data[..., [0, 0, 0, 1]]
    allowed = (3, 4) if ext == ".png" and s.meta.alpha else (3,)
    if data.ndim == 3 and data.shape[2] not in allowed:
        what = "channels (no alpha tag)" if data.shape[2] == 4 else "channels"
        raise MdeblurError(f"{path}: {data.shape[2]} {what} need a TIFF output (.tif or .ome.tif)")
    if data.dtype == np.uint16 and ext != ".png":
        raise MdeblurError(f"{path}: {ext[1:].upper()} holds 8 bits; write this 16-bit image as .png or .tif")
    if data.dtype.kind == "f" and ext != ".png":
        raise MdeblurError(f"{path}: {ext[1:].upper()} holds 8 bits; write this float image as .tif (or .png if "
                           "its values lie in [0, 1])")
    if data.dtype.kind == "f" and check_values and not np.isfinite(data).all():
        raise MdeblurError(f"{path}: NaN/Inf samples cannot be stored in a PNG (they stay NaN in the output); "
                           "write .tif")
    if data.dtype.kind == "f" and check_values and (data.min() < 0 or data.max() > 1):
        raise MdeblurError(f"{path}: a float image with values outside [0, 1] would lose its intensities in a PNG; "
                           "write .tif")
    return data


def to_float(page: np.ndarray) -> np.ndarray:
    """Integer pixels to float32 in [0, 1]; float pixels are taken as they are."""
    if page.dtype == np.uint8:
        return page.astype(np.float32) / 255.0
    if page.dtype == np.uint16:
        return page.astype(np.float32) / 65535.0
    return page.astype(np.float32)


def from_float(page: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Float32 in [0, 1] back to `dtype`, rounding and clipping integers."""
    dtype = np.dtype(dtype)
    if dtype == np.uint8:
        return np.clip(np.rint(page * 255.0), 0, 255).astype(np.uint8)
    if dtype == np.uint16:
        return np.clip(np.rint(page * 65535.0), 0, 65535).astype(np.uint16)
    return page.astype(dtype)


def _write_raster(path: Path, s: Series) -> None:
    cv2 = _cv2()
    arr = _raster_array(path, s, check_values=False)
    ext = path.suffix.lower()
    if arr.dtype.kind == "f":  # a float image in [0, 1] (checked above) as 16-bit PNG; overshoot clipped
        arr = from_float(np.nan_to_num(arr, nan=0.0).clip(0, 1), np.uint16)
    if arr.ndim == 3:
        arr = cv2.cvtColor(arr, cv2.COLOR_RGBA2BGRA if arr.shape[2] == 4 else cv2.COLOR_RGB2BGR)
    ok, buf = cv2.imencode(ext, arr)
    if not ok:
        raise MdeblurError(f"{path}: could not encode as {ext}")
    path.write_bytes(buf.tobytes())


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


def _tiff_kwargs(s: Series) -> dict:
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
            kw = _tiff_kwargs(s)
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
