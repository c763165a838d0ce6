"""Reading and writing images: TIFF (multi-page), PNG, JPEG, BMP; dtype and channels kept."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from .errors import MdeblurError

# Broken files are reported as MdeblurError, not as OpenCV's log lines.
_cv_logging = getattr(getattr(cv2, "utils", None), "logging", None)
if _cv_logging is not None:
    _cv_logging.setLogLevel(_cv_logging.LOG_LEVEL_SILENT)
elif hasattr(cv2, "setLogLevel"):
    cv2.setLogLevel(0)

TIFF_EXT = {".tif", ".tiff"}
CV_EXT = {".png", ".jpg", ".jpeg", ".bmp"}
IMAGE_EXT = TIFF_EXT | CV_EXT
SUPPORTED_DTYPES = (np.uint8, np.uint16, np.float32, np.float64)


@dataclass
class Image:
    """The pages of one image file, each (H, W) or (H, W, C) in the file's dtype, RGB(A) order."""

    path: Path
    pages: list[np.ndarray]


def _check_page(path: Path, page: np.ndarray) -> np.ndarray:
    if page.dtype == bool:
        page = page.astype(np.uint8) * 255
    if not any(page.dtype == d for d in SUPPORTED_DTYPES):
        raise MdeblurError(f"{path}: unsupported pixel type {page.dtype} (use 8/16-bit integer or float)")
    if page.ndim == 3 and page.shape[2] == 1:
        page = page[..., 0]
    if page.ndim not in (2, 3) or (page.ndim == 3 and page.shape[2] not in (3, 4)):
        raise MdeblurError(f"{path}: unsupported image shape {page.shape} (need gray, RGB or RGBA)")
    if min(page.shape[:2]) < 2:
        raise MdeblurError(f"{path}: image too small ({page.shape[1]}x{page.shape[0]} px)")
    return page


def read_image(path: str | Path) -> Image:
    """Read all pages of an image file; raises MdeblurError with the file and the reason."""
    path = Path(path)
    ext = path.suffix.lower()
    if not path.is_file():
        raise MdeblurError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise MdeblurError(f"{path}: empty file")
    if ext not in IMAGE_EXT:
        raise MdeblurError(f"{path}: unsupported file type {ext or '(none)'} (use {', '.join(sorted(IMAGE_EXT))})")
    if ext in TIFF_EXT:
        import tifffile

        pages = []
        try:
            with tifffile.TiffFile(path) as tif:
                for series in tif.series:  # a stack is one series; pages written one by one are several
                    data = series.asarray()
                    if data.size == 0:
                        raise MdeblurError(f"{path}: zero-sized image")
                    if "S" in series.axes:  # samples (channels), planar or contiguous: move them last
                        data = np.moveaxis(data, series.axes.index("S"), -1)
                        pages += list(data.reshape(-1, *data.shape[-3:]))
                    else:
                        pages += list(data.reshape(-1, *data.shape[-2:]))
        except MdeblurError:
            raise
        except Exception as exc:  # tifffile raises many types for broken files
            raise MdeblurError(f"{path}: not a readable TIFF ({type(exc).__name__}: {exc})".splitlines()[0]) from None
        if not pages:
            raise MdeblurError(f"{path}: TIFF holds no image")
    else:
        buf = np.fromfile(path, dtype=np.uint8)
        arr = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
        if arr is None:
            raise MdeblurError(f"{path}: not a readable {ext[1:].upper()} image (truncated or corrupt)")
        if arr.ndim == 3 and arr.shape[2] >= 3:
            arr = cv2.cvtColor(arr, cv2.COLOR_BGRA2RGBA if arr.shape[2] == 4 else cv2.COLOR_BGR2RGB)
        pages = [arr]
    return Image(path, [_check_page(path, p) for p in pages])


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


def _write_to(path: Path, pages: list[np.ndarray]) -> None:
    ext = path.suffix.lower()
    if ext in TIFF_EXT:
        import tifffile

        with tifffile.TiffWriter(path) as tif:
            for p in pages:
                tif.write(p, photometric="rgb" if p.ndim == 3 else "minisblack", contiguous=False)
        return
    if len(pages) != 1:
        raise MdeblurError(f"{path}: {len(pages)} pages need a TIFF output (.tif)")
    arr = pages[0]
    if ext in {".jpg", ".jpeg", ".bmp"} and arr.dtype != np.uint8:
        arr = from_float(to_float(arr).clip(0, 1), np.uint8)
    elif ext == ".png" and arr.dtype not in (np.uint8, np.uint16):
        arr = from_float(arr.clip(0, 1), np.uint16)
    if arr.ndim == 3:
        arr = cv2.cvtColor(arr, cv2.COLOR_RGBA2BGRA if arr.shape[2] == 4 else cv2.COLOR_RGB2BGR)
    ok, buf = cv2.imencode(ext, arr)
    if not ok:
        raise MdeblurError(f"{path}: could not encode as {ext}")
    path.write_bytes(buf.tobytes())


def write_image(path: str | Path, pages: list[np.ndarray] | np.ndarray) -> None:
    """Write pages atomically (temp file in the same folder, then rename); format from the extension."""
    path = Path(path)
    if path.suffix.lower() not in IMAGE_EXT:
        raise MdeblurError(f"{path}: unsupported output type {path.suffix or '(none)'}")
    pages = [pages] if isinstance(pages, np.ndarray) else pages
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".mdeblur-", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    try:
        _write_to(Path(tmp), pages)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the usual permissions
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def list_images(folder: Path, recursive: bool = False) -> list[Path]:
    """Image files in a folder, sorted."""
    pattern = "**/*" if recursive else "*"
    return sorted(p for p in folder.glob(pattern) if p.is_file() and p.suffix.lower() in IMAGE_EXT)
