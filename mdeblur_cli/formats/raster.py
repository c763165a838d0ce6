"""PNG, JPEG and BMP (OpenCV), and vendor formats (CZI, ND2, LIF through bioio): read and, for rasters, written."""

from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np

from ..errors import MdeblurError
from .series import Meta, Series, _planes_last, check_dtype, check_size, from_float


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
