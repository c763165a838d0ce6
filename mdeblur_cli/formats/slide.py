"""Whole-slide images: Aperio SVS, Hamamatsu NDPI, Leica SCN, Ventana BIF, pyramidal OME-TIFF and generic tiled
TIFF, at any pyramid level and region, through tiffslide (on tifffile and imagecodecs: JPEG, JPEG 2000, LZW,
Deflate, Zstd). tiffslide reads what OpenSlide reads, in pure Python, and hands each level out as a lazily
decoded zarr array, so a window of a 10-gigapixel slide decodes only the tiles it covers.

Decoders forgive too much: a truncated JPEG tile decodes silently as grey, and a tile whose offset points past
the end of the file reads as zeros. `check_tiles` looks at every tile of the level that will be read (offset,
length, and for JPEG the end-of-image marker) before any work starts.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import MdeblurError

SLIDE_EXT = (".svs", ".ndpi", ".scn", ".bif")  # always slides; TIFFs are slides when tiled and compressed or pyramidal
JPEG = 7  # TIFF Compression tag: JPEG


def _tiffslide():
    try:
        import tiffslide
    except ImportError:
        raise MdeblurError('reading whole slides needs tiffslide: pip install "mdeblur[slides]"') from None
    return tiffslide


def is_slide(path: str | Path) -> bool:
    """Whether `path` is read as a whole slide: a slide extension, or a TIFF whose first image is tiled 8-bit
    RGB and either compressed or pyramidal (what scanners write; a plain TIFF keeps the ordinary readers)."""
    p = Path(path)
    name = p.name.lower()
    if name.endswith(SLIDE_EXT):
        return True
    if not name.endswith((".tif", ".tiff")) or not p.is_file():
        return False
    import tifffile

    try:
        with tifffile.TiffFile(p) as tif:
            page, series = tif.pages.first, tif.series[0]
            if tif.is_imagej or not page.is_tiled or page.dtype != np.uint8 or page.samplesperpixel not in (3, 4):
                return False
            return page.compression != 1 or len(series.levels) > 1
    except Exception:  # unreadable: the ordinary reader reports why
        return False


@dataclass
class SlideOptions:
    """What `mdeblur restore` was asked for a whole slide."""

    level: int = 0
    region: tuple[int, int, int, int] | None = None  # x, y, w, h in the level's pixels
    compression: str = "zlib"  # of the output pyramid: zlib (Deflate), zstd, jpeg or none
    quality: int = 90  # JPEG quality
    skip_background: bool = True  # glass tiles by bicubic
    resume: bool = False  # an OME-Zarr output: go on from NAME.partial
    overwrite: bool = False  # an OME-Zarr output: an unfinished NAME.partial is started again


COMPRESSIONS = ("zlib", "zstd", "jpeg", "none")


@dataclass
class Slide:
    """One opened slide: its levels and what the scanner recorded."""

    path: Path
    handle: object  # tiffslide.TiffSlide
    levels: list[tuple[int, int]]  # (height, width) per level
    downsamples: list[float]
    mpp: tuple[float, float] | None  # µm per pixel at level 0 (y, x)
    vendor: str
    objective: float | None
    compression: str
    tile: tuple[int, int] | None
    description: str | None = None  # the scanner's own image description (Aperio's, for example)

    def array(self, level: int):
        """Level `level` as a lazily decoded (H, W, 3) uint8 array (zarr)."""
        a = self.handle.zarr_group[str(level)]
        if a.ndim != 3 or a.shape[2] not in (3, 4) or a.dtype != np.uint8:
            raise MdeblurError(f"{self.path}: level {level} is {a.shape} {a.dtype}; mdeblur restores 8-bit RGB slides "
                               "(one focal plane)")
        return a

    def level_mpp(self, level: int) -> tuple[float, float] | None:
        if self.mpp is None:
            return None
        d = self.downsamples[level]
        return self.mpp[0] * d, self.mpp[1] * d

    def close(self) -> None:
        self.handle.close()


def open_slide(path: str | Path) -> Slide:
    """Open a slide; a file that is not one (or is damaged) is one MdeblurError naming it."""
    path = Path(path)
    tiffslide = _tiffslide()
    if not path.is_file():
        raise MdeblurError(f"{path}: no such file")
    try:
        h = tiffslide.TiffSlide(str(path))
        props = h.properties
        levels = [(int(hh), int(ww)) for ww, hh in h.level_dimensions]
        downs = [float(d) for d in h.level_downsamples]
        page = h.ts_tifffile.series[props.get("tiffslide.series-index") or 0].pages[0]
    except MdeblurError:
        raise
    except Exception as exc:
        raise MdeblurError(f"{path}: not a readable slide ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})") from None
    mx, my = props.get("tiffslide.mpp-x"), props.get("tiffslide.mpp-y")
    mpp = (float(my or mx), float(mx)) if mx else None
    power = props.get("tiffslide.objective-power")
    tile = (int(page.tilelength), int(page.tilewidth)) if getattr(page, "is_tiled", False) else None
    comp = getattr(page.compression, "name", str(page.compression))
    return Slide(path, h, levels, downs, mpp, str(props.get("tiffslide.vendor") or "generic tiff"),
                 float(power) if power else None, comp, tile, props.get("tiffslide.comment"))


def level_page(slide: Slide, level: int):
    """The TIFF page (first Z plane) holding level `level`."""
    series = slide.handle.ts_tifffile.series[slide.handle.properties.get("tiffslide.series-index") or 0]
    return series.levels[level].keyframe if level < len(series.levels) else None


def check_tiles(slide: Slide, level: int) -> None:
    """Every stored tile (or strip) of the level lies inside the file, is not empty, and a JPEG one ends with
    its end-of-image marker: what decoders do not check. One MdeblurError naming the first bad tile."""
    series = slide.handle.ts_tifffile.series[slide.handle.properties.get("tiffslide.series-index") or 0]
    fh = slide.handle.ts_tifffile.filehandle
    size = fh.size
    for page in series.levels[level].pages:
        if page is None:
            continue
        page = page.aspage() if hasattr(page, "aspage") else page
        jpeg = page.compression == JPEG
        for i, (off, n) in enumerate(zip(page.dataoffsets, page.databytecounts, strict=True)):
            if n == 0 and off == 0:  # sparse tile: readers fill it
                continue
            if n <= 0 or off + n > size:
                raise MdeblurError(f"{slide.path}: level {level}, tile {i}: points outside the file "
                                   f"(offset {off}, {n} bytes, file {size} bytes); the file is damaged or truncated")
            if jpeg:
                fh.seek(off + n - 2)
                if fh.read(2) != b"\xff\xd9":
                    raise MdeblurError(f"{slide.path}: level {level}, tile {i}: truncated JPEG data (no end-of-image "
                                       "marker); the file is damaged")


def parse_region(text: str | None) -> tuple[int, int, int, int] | None:
    """'x,y,w,h' (pixels of the chosen level) -> (x, y, w, h)."""
    if text is None:
        return None
    try:
        x, y, w, h = (int(v) for v in text.split(","))
    except ValueError:
        raise MdeblurError(f"--region {text!r}: give x,y,w,h in pixels of the chosen level, e.g. 2000,1200,1024,1024") from None
    if x < 0 or y < 0 or w <= 0 or h <= 0:
        raise MdeblurError(f"--region {text!r}: x and y must be >= 0, w and h > 0")
    return x, y, w, h


def window(slide: Slide, level: int, region: tuple[int, int, int, int] | None) -> tuple[int, int, int, int]:
    """(y0, y1, x0, x1) of the level to restore; a level or region outside the slide is one MdeblurError."""
    if not 0 <= level < len(slide.levels):
        raise MdeblurError(f"{slide.path}: no level {level} (the slide has levels 0-{len(slide.levels) - 1}; "
                           f"see mdeblur info {slide.path})")
    h, w = slide.levels[level]
    if region is None:
        return 0, h, 0, w
    x, y, rw, rh = region
    if x + rw > w or y + rh > h:
        raise MdeblurError(f"{slide.path}: region {x},{y},{rw},{rh} lies outside level {level} ({w} x {h} px)")
    return y, y + rh, x, x + rw


def info(path: str | Path) -> dict:
    """What `mdeblur info` prints for a slide."""
    s = open_slide(path)
    try:
        return {"file": str(s.path), "vendor": s.vendor, "compression": s.compression,
                "tile": list(s.tile) if s.tile else None, "objective_power": s.objective,
                "mpp": list(s.mpp) if s.mpp else None,
                "levels": [{"level": i, "width": w, "height": h, "downsample": round(d, 3),
                            "mpp": [round(v, 4) for v in s.level_mpp(i)] if s.mpp else None}
                           for i, ((h, w), d) in enumerate(zip(s.levels, s.downsamples, strict=True))],
                "associated": sorted(k for k in s.handle.associated_images.keys() if k)}
    finally:
        s.close()
