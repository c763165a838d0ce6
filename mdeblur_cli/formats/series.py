"""A microscopy image as Series: an array, its axes (one letter per dimension, CSBDeep style: Y, X, and any of
T, Z, C, S for samples, or others) and the metadata (Meta) that must survive restoration; the extensions, the
size and dtype checks shared by every format."""

from __future__ import annotations

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

# The ImageJ header entries carried to the output (the writer recomputes the counts and the hyperstack flag).
IMAGEJ_KEEP = ("unit", "spacing", "finterval", "fps", "loop", "mode", "Labels", "LUTs", "Ranges", "min", "max",
               "tunit", "xorigin", "yorigin", "zorigin", "Info", "Properties")

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
