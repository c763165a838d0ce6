"""Images as lists of 2-D pages (gray, RGB or RGBA) for training and benchmarks; atomic writes; folders.

`stacks` reads and writes the full microscopy structure (axes, channels, metadata); this module flattens it.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import MdeblurError
from .ngff import is_zarr
from .series import STACK_EXT, WRITE_EXT, Meta, Series, from_float, split_name, to_float
from .stacks import read_series, write_series

__all__ = ["IMAGE_EXT", "Image", "atomic_write", "from_float", "list_images", "match_stems", "read_image", "to_float",
           "write_image"]

IMAGE_EXT = STACK_EXT
TEMP_PREFIX = ".mdeblur-"


@dataclass
class Image:
    """The pages of one image file, each (H, W) or (H, W, C) in the file's dtype, RGB(A) order."""

    path: Path
    pages: list[np.ndarray]


def _check_page(path: Path, page: np.ndarray) -> np.ndarray:
    if page.ndim == 3 and page.shape[2] == 1:
        page = page[..., 0]
    if page.ndim not in (2, 3) or (page.ndim == 3 and page.shape[2] not in (3, 4)):
        raise MdeblurError(f"{path}: unsupported image shape {page.shape} (need gray, RGB or RGBA)")
    return page


def read_image(path: str | Path) -> Image:
    """Read all 2-D pages of an image file (samples last, every other axis flattened); MdeblurError if bad."""
    path = Path(path)
    pages = []
    for s in read_series(path):
        data, axes = s.data, s.axes
        if "S" in axes:
            data, axes = np.moveaxis(data, axes.index("S"), -1), axes.replace("S", "") + "S"
        tail = len(axes) - axes.index("Y")
        pages += list(data.reshape(-1, *data.shape[-tail:]))
    pages = [_check_page(path, p) for p in pages]
    for p in pages:
        if p.dtype.kind == "f" and not np.isfinite(p).all():
            raise MdeblurError(f"{path}: holds {int(np.count_nonzero(~np.isfinite(p)))} NaN/Inf sample(s); training, "
                               "benchmarks and simulations need finite images (restore fills them)")
    return Image(path, pages)


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Call `write(tmp)` on a temporary file (or folder, for OME-Zarr) beside `path`, then rename it over `path`;
    no partial outputs, whatever fails."""
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = split_name(path)[1]  # the temporary name keeps the format's extension (.ome.tif as one)
    folder = is_zarr(path)
    umask = os.umask(0)
    os.umask(umask)
    if folder:
        tmp = tempfile.mkdtemp(prefix=TEMP_PREFIX, suffix=suffix, dir=path.parent)
        os.chmod(tmp, 0o777 & ~umask)
    else:
        fd, tmp = tempfile.mkstemp(prefix=TEMP_PREFIX, suffix=suffix, dir=path.parent)
        os.close(fd)
    old = None
    try:
        write(Path(tmp))
        if not folder:
            os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the usual permissions
        elif path.exists():  # a folder cannot be renamed over another: move the old one aside first
            old = tempfile.mkdtemp(prefix=TEMP_PREFIX, dir=path.parent)
            os.replace(path, Path(old) / "old")
        os.replace(tmp, path)
    finally:
        for leftover in (tmp, old):
            if leftover and os.path.isdir(leftover):
                shutil.rmtree(leftover, ignore_errors=True)
            elif leftover and os.path.exists(leftover):
                os.unlink(leftover)


def write_image(path: str | Path, pages: list[np.ndarray] | np.ndarray) -> None:
    """Write pages atomically (temp file in the same folder, then rename); format from the extension."""
    path = Path(path)
    if path.suffix.lower() not in WRITE_EXT:
        raise MdeblurError(f"{path}: unsupported output type {path.suffix or '(none)'}")
    pages = [pages] if isinstance(pages, np.ndarray) else pages
    series = [Series(p, "YXS" if p.ndim == 3 else "YX", Meta(rgb=p.ndim == 3, alpha=p.ndim == 3 and p.shape[2] == 4))
              for p in pages]
    if len(series) > 1 and path.suffix.lower() not in (".tif", ".tiff"):
        raise MdeblurError(f"{path}: {len(series)} pages need a TIFF output (.tif)")
    atomic_write(path, lambda tmp: write_series(tmp, series))


def is_image(p: Path) -> bool:
    """An image file, or an OME-Zarr folder; mdeblur's own temporary files are not."""
    if p.name.startswith(TEMP_PREFIX) or p.suffix.lower() not in IMAGE_EXT:
        return False
    return p.is_dir() if is_zarr(p) else p.is_file()


def match_stems(a: Path, b: Path) -> tuple[dict[str, Path], dict[str, Path], list[str]]:
    """The images of two folders by file stem (lr/ and hr/ pairs): both maps and the sorted common stems."""
    first = {p.stem: p for p in list_images(a)}
    second = {p.stem: p for p in list_images(b)}
    return first, second, sorted(first.keys() & second.keys())


def list_images(folder: Path, recursive: bool = False) -> list[Path]:
    """Image files (and OME-Zarr folders) in a folder, sorted; nothing inside an OME-Zarr folder."""
    pattern = "**/*" if recursive else "*"
    return sorted(p for p in folder.glob(pattern)
                  if is_image(p) and not any(is_zarr(q) for q in p.relative_to(folder).parents if q != Path(".")))
