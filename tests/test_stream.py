"""Large plain TIFFs stream: memory-mapped windows, one band at a time, tiles into a tiled BigTIFF; the result
equals the in-memory restore."""

import numpy as np
import pytest
import tifffile

import mdeblur_cli.scale.stream as stream
from mdeblur_cli.restore.arrays import restore_array
from mdeblur_cli.restore.files import restore_file

from .conftest import smooth_image


@pytest.mark.parametrize(("rgb", "group"), [(False, 4096), (True, 4096), (False, 200), (True, 344)])
def test_streamed_equals_in_memory(tmp_path, tiny_model, monkeypatch, rgb, group):
    monkeypatch.setattr(stream, "STREAM_MIN_PIXELS", 1)  # stream even this small image
    monkeypatch.setattr(stream, "GROUP_COLS", group)  # 200/344: several column groups, edges inside windows
    if rgb:
        a = np.rint(smooth_image(250, 190) * 255).astype(np.uint8)
        tifffile.imwrite(tmp_path / "in.tif", a, photometric="rgb", resolution=(2000.0, 2000.0),
                         resolutionunit="CENTIMETER")
    else:
        a = np.rint(100 + smooth_image(301, 517, c=1)[..., 0] * 3000).astype(np.uint16)
        tifffile.imwrite(tmp_path / "in.tif", a, resolution=(2000.0, 2000.0), resolutionunit="CENTIMETER")
    res = restore_file(tmp_path / "in.tif", tmp_path / "out.tif", tiny_model, tile=64)
    assert res.streamed and len(res.norms) == 1
    ref = restore_array(a, tiny_model, tile=64)
    with tifffile.TiffFile(tmp_path / "out.tif") as tif:
        page = tif.pages[0]
        assert tif.is_bigtiff and page.is_tiled and page.tags["XResolution"].value[0] / page.tags["XResolution"].value[1] == pytest.approx(4000)
        out = tif.asarray()
    assert out.shape == ref.shape and out.dtype == a.dtype
    assert np.array_equal(out, ref)  # the same tile engine: the same windows, weights and blend


def test_small_or_compressed_or_microscopy_files_do_not_stream(tmp_path, tiny_model):
    a = np.zeros((64, 64), np.uint16)
    tifffile.imwrite(tmp_path / "small.tif", a)
    assert stream.probe(tmp_path / "small.tif", tmp_path / "o.tif", None, "auto") is None  # below the size
    big = (stream.STREAM_MIN_PIXELS // 64 + 1, 64)
    tifffile.imwrite(tmp_path / "z.tif", np.zeros(big, np.uint8), compression="zlib")
    assert stream.probe(tmp_path / "z.tif", tmp_path / "o.tif", None, "auto") is None  # not memory-mappable
    tifffile.imwrite(tmp_path / "m.tif", np.zeros(big, np.uint8))
    assert stream.probe(tmp_path / "m.tif", tmp_path / "o.tif", None, "auto") is not None
    assert stream.probe(tmp_path / "m.tif", tmp_path / "o.ome.tif", None, "auto") is None  # OME out: metadata path
    assert stream.probe(tmp_path / "m.tif", tmp_path / "o.png", None, "auto") is None


def test_ahead_keeps_order_raises_the_producers_error_and_stops_when_the_consumer_does():
    import threading
    import time

    from mdeblur_cli.scale.stream import ahead

    assert [int(b[0]) for b in ahead(np.full(1, i) for i in range(7))] == list(range(7))

    def failing():
        yield np.zeros(1)
        raise ValueError("tile 3 undecodable")

    got = []
    with pytest.raises(ValueError, match="tile 3 undecodable"):
        for b in ahead(failing()):
            got.append(b)
    assert len(got) == 1

    made = []

    def endless():
        for i in range(10**6):
            made.append(i)
            yield np.full(1, i)

    rows = ahead(endless(), depth=1)
    assert int(next(rows)[0]) == 0
    rows.close()  # the consumer stops (an error or Ctrl-C in the writer)
    time.sleep(0.5)
    n = len(made)
    time.sleep(0.3)
    assert len(made) == n <= 4  # the producer stopped, at most depth + 2 blocks ahead
    assert not any(t.name == "mdeblur-rows" and t.is_alive() for t in threading.enumerate())
