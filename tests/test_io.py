import numpy as np
import pytest
import skimage.data
import tifffile

from mdeblur_cli.errors import MdeblurError
from mdeblur_cli.formats.images import from_float, read_image, to_float, write_image

from .conftest import smooth_image


def _img(dtype, channels):
    f = smooth_image(20, 30, c=max(channels, 1))
    if channels == 0:
        f = f[..., 0]
    return from_float(f, dtype) if dtype != np.float32 else f


@pytest.mark.parametrize("ext,dtype,channels", [
    (".png", np.uint8, 0), (".png", np.uint16, 3), (".png", np.uint8, 4), (".png", np.uint16, 0),
    (".tif", np.uint16, 3), (".tif", np.float32, 0), (".tif", np.uint8, 4), (".bmp", np.uint8, 3),
])
def test_round_trip(tmp_path, ext, dtype, channels):
    arr = _img(dtype, channels)
    path = tmp_path / f"a{ext}"
    write_image(path, arr)
    back = read_image(path).pages
    assert len(back) == 1
    assert back[0].dtype == arr.dtype and back[0].shape == arr.shape
    assert np.array_equal(back[0], arr)


def test_jpeg_is_lossy_but_close_and_rgb_ordered(tmp_path):
    arr = skimage.data.astronaut()[:64, :96]
    write_image(tmp_path / "a.jpg", arr)
    back = read_image(tmp_path / "a.jpg").pages[0].astype(int)
    assert back.shape == arr.shape and np.abs(back - arr).mean() < 6
    assert np.abs(back[..., ::-1] - arr).mean() > 2 * np.abs(back - arr).mean()


def test_multipage_tiff(tmp_path):
    stack = np.stack([_img(np.uint16, 0)] * 3)
    tifffile.imwrite(tmp_path / "stack.tif", stack, photometric="minisblack")
    pages = read_image(tmp_path / "stack.tif").pages
    assert len(pages) == 3 and pages[0].shape == stack.shape[1:]
    write_image(tmp_path / "out.tif", pages)
    assert len(read_image(tmp_path / "out.tif").pages) == 3


def test_planar_rgb_tiff(tmp_path):
    rgb = _img(np.uint8, 3)
    tifffile.imwrite(tmp_path / "planar.tif", np.moveaxis(rgb, -1, 0), photometric="rgb", planarconfig="separate")
    pages = read_image(tmp_path / "planar.tif").pages
    assert len(pages) == 1 and np.array_equal(pages[0], rgb)


def test_float_conversion_round_trip():
    a = np.array([[0, 1000, 65535]], np.uint16)
    assert np.array_equal(from_float(to_float(a), np.uint16), a)


@pytest.mark.parametrize("content,name,reason", [
    (b"", "empty.png", "empty file"),
    (b"not an image at all", "text.png", "not a readable PNG"),
    (b"not a tiff", "bad.tif", "not a readable TIFF"),
    (b"xx", "a.gif", "unsupported file type"),
])
def test_bad_files_name_the_file_and_reason(tmp_path, content, name, reason):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(MdeblurError) as err:
        read_image(path)
    assert str(path) in str(err.value) and reason in str(err.value)
    assert "\n" not in str(err.value)


def test_truncated_png(tmp_path):
    write_image(tmp_path / "a.png", _img(np.uint8, 3))
    data = (tmp_path / "a.png").read_bytes()
    (tmp_path / "t.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(MdeblurError, match="t.png"):
        read_image(tmp_path / "t.png")


def test_unsupported_dtype_and_zero_size(tmp_path):
    tifffile.imwrite(tmp_path / "c.tif", np.zeros((8, 8), np.complex64))
    with pytest.raises(MdeblurError, match="unsupported pixel type"):
        read_image(tmp_path / "c.tif")
    tifffile.imwrite(tmp_path / "z.tif", np.zeros((1, 8), np.uint8))
    with pytest.raises(MdeblurError, match="too small"):
        read_image(tmp_path / "z.tif")


def test_write_is_atomic_and_leaves_nothing_on_error(tmp_path):
    with pytest.raises(MdeblurError):
        write_image(tmp_path / "multi.png", [_img(np.uint8, 3)] * 2)
    assert list(tmp_path.iterdir()) == []
