"""Microscopy files: axes, channels, stacks, calibration and OME/ImageJ metadata, in and out (files made here)."""

import numpy as np
import pytest
import tifffile
from typer.testing import CliRunner

from mdeblur_cli.cli import app
from mdeblur_cli.errors import MdeblurError
from mdeblur_cli.formats.images import write_image
from mdeblur_cli.formats.series import Meta, split_name
from mdeblur_cli.formats.stacks import read_series
from mdeblur_cli.restore.arrays import restore_array
from mdeblur_cli.restore.files import restore_file

from .conftest import smooth_image

runner = CliRunner()


def _fluo(shape, seed=0, peak=3000, offset=100):
    """16-bit fluorescence-like planes of any leading shape over (H, W)."""
    lead, (h, w) = shape[:-2], shape[-2:]
    n = int(np.prod(lead))
    planes = [smooth_image(h, w, c=1, seed=seed + i)[..., 0] for i in range(n)]
    return np.rint(offset + peak * np.stack(planes).reshape(shape) ** 3).astype(np.uint16)


def _restore(args, weights):
    return runner.invoke(app, ["restore", *map(str, args), "--weights", str(weights)])


def test_ome_tiff_keeps_ome_and_halves_the_pixel_size(tmp_path, tiny_weights):
    src = tmp_path / "cells.ome.tif"
    data = _fluo((2, 3, 24, 28))
    tifffile.imwrite(src, data, ome=True, metadata={
        "axes": "ZCYX", "PhysicalSizeX": 0.65, "PhysicalSizeY": 0.65, "PhysicalSizeZ": 2.0,
        "Channel": {"Name": ["DAPI", "GFP", "RFP"]}})
    res = _restore([src, "--out-dir", tmp_path / "out"], tiny_weights)
    assert res.exit_code == 0, res.output
    out = tmp_path / "out" / "cells_x2.ome.tif"
    with tifffile.TiffFile(out) as tif:
        assert tif.is_ome and len(tif.series) == 1
        assert tif.series[0].axes == "ZCYX" and tif.series[0].shape == (2, 3, 48, 56)
        pixels = tifffile.xml2dict(tif.ome_metadata)["OME"]["Image"]["Pixels"]
    assert pixels["PhysicalSizeX"] == pytest.approx(0.325) and pixels["PhysicalSizeY"] == pytest.approx(0.325)
    assert pixels["PhysicalSizeZ"] == pytest.approx(2.0)
    assert [c["Name"] for c in pixels["Channel"]] == ["DAPI", "GFP", "RFP"]
    assert "channels: independent" in res.output


def test_imagej_hyperstack_stays_a_hyperstack(tmp_path, tiny_weights):
    src = tmp_path / "movie.tif"
    data = _fluo((2, 3, 2, 20, 24))
    tifffile.imwrite(src, data, imagej=True, resolution=(1 / 0.65, 1 / 0.65),
                     metadata={"axes": "TZCYX", "spacing": 2.5, "unit": "um", "finterval": 10.0, "mode": "composite"})
    res = _restore([src, "-o", tmp_path / "out.tif"], tiny_weights)
    assert res.exit_code == 0, res.output
    with tifffile.TiffFile(tmp_path / "out.tif") as tif:
        assert tif.is_imagej and tif.series[0].axes == "TZCYX" and tif.series[0].shape == (2, 3, 2, 40, 48)
        ij = tif.imagej_metadata
        xres = tif.pages[0].tags["XResolution"].value
    assert ij["spacing"] == 2.5 and ij["unit"] == "um" and ij["finterval"] == 10.0 and ij["mode"] == "composite"
    assert xres[1] / xres[0] == pytest.approx(0.325, rel=1e-6)  # pixel width halved
    assert tifffile.imread(tmp_path / "out.tif").shape == (2, 3, 2, 40, 48)


def test_plain_tiff_resolution_tags_are_scaled(tmp_path, tiny_weights):
    src = tmp_path / "a.tif"
    tifffile.imwrite(src, _fluo((24, 24)), resolution=(2000.0, 2000.0), resolutionunit="CENTIMETER")
    res = _restore([src, "-o", tmp_path / "b.tif"], tiny_weights)
    assert res.exit_code == 0, res.output
    s = read_series(tmp_path / "b.tif")[0]
    assert s.meta.resolution == pytest.approx((4000.0, 4000.0)) and s.meta.resolution_unit == 3
    assert s.meta.pixel_size() == pytest.approx((2.5, 2.5, "µm"))  # 4000 px/cm, said in µm


def test_channels_stay_one_series_and_tifffile_reads_them_all(tmp_path, tiny_weights):
    src = tmp_path / "four.tif"
    tifffile.imwrite(src, _fluo((4, 20, 22)), photometric="minisblack", metadata={"axes": "CYX"})
    res = _restore([src, "-o", tmp_path / "out.tif"], tiny_weights)
    assert res.exit_code == 0, res.output
    assert tifffile.imread(tmp_path / "out.tif").shape == (4, 40, 44)
    assert read_series(tmp_path / "out.tif")[0].axes == "CYX"


@pytest.mark.parametrize("c", [2, 4])
def test_two_and_four_channel_16bit_fluorescence_accepted(tmp_path, tiny_weights, c):
    src = tmp_path / f"yx{c}.tif"
    data = np.moveaxis(_fluo((c, 20, 22)), 0, -1)  # Y, X, C: samples, no ExtraSamples alpha tag
    tifffile.imwrite(src, data, photometric="minisblack", planarconfig="contig")
    res = _restore([src, "-o", tmp_path / "out.tif"], tiny_weights)
    assert res.exit_code == 0, res.output
    out = tifffile.imread(tmp_path / "out.tif")
    assert out.shape == (40, 44, c) and out.dtype == np.uint16
    assert out[..., -1].max() > 1000  # the fourth channel was restored, not treated as alpha


def test_an_empty_channel_stays_empty_and_channels_do_not_leak(tiny_model):
    data = _fluo((3, 24, 24))
    data[1] = 0
    out = restore_array(data, tiny_model, axes="CYX")
    assert out.shape == (3, 48, 48) and out.dtype == np.uint16
    assert (out[1] == 0).all()
    alone = restore_array(data[2], tiny_model)  # independent: a channel's result does not depend on the others
    assert np.array_equal(out[2], alone)
    rgb_u16 = restore_array(np.moveaxis(data, 0, -1), tiny_model)  # Y,X,3 16-bit: auto is independent
    assert (rgb_u16[..., 1] == 0).all()


def test_channel_choice(tiny_model):
    rgb8 = np.rint(smooth_image(20, 20) * 255).astype(np.uint8)
    mixed = restore_array(rgb8, tiny_model)  # auto: 8-bit colour goes through the colour network
    alone = restore_array(rgb8, tiny_model, channels="independent")
    assert mixed.shape == alone.shape == (40, 40, 3) and not np.array_equal(mixed, alone)
    with pytest.raises(MdeblurError, match="3 colour channels"):
        restore_array(_fluo((2, 16, 16)), tiny_model, axes="CYX", channels="rgb")


def test_png_alpha_stays_alpha(tmp_path, tiny_weights):
    rgba = np.rint(smooth_image(24, 24, c=4) * 255).astype(np.uint8)
    rgba[..., 3] = 255
    rgba[:12, :, 3] = 0
    write_image(tmp_path / "a.png", rgba)
    assert read_series(tmp_path / "a.png")[0].meta.alpha
    res = _restore([tmp_path / "a.png", "-o", tmp_path / "b.png"], tiny_weights)
    assert res.exit_code == 0, res.output
    out = read_series(tmp_path / "b.png")[0].data
    assert out.shape == (48, 48, 4) and (out[:20, :, 3] == 0).all() and (out[28:, :, 3] == 255).all()


def test_tiff_extrasamples_alpha_stays_alpha(tmp_path, tiny_weights):
    rgba = np.rint(smooth_image(24, 24, c=4) * 65535).astype(np.uint16)
    rgba[..., 3] = 65535
    tifffile.imwrite(tmp_path / "a.tif", rgba, photometric="rgb", extrasamples=["unassalpha"])
    res = _restore([tmp_path / "a.tif", "-o", tmp_path / "b.tif"], tiny_weights)
    assert res.exit_code == 0, res.output
    with tifffile.TiffFile(tmp_path / "b.tif") as tif:
        assert tuple(int(e) for e in tif.pages[0].extrasamples) == (2,)
        assert (tif.asarray()[..., 3] == 65535).all()


def test_axes_override(tmp_path, tiny_weights):
    src = tmp_path / "stack.tif"
    tifffile.imwrite(src, _fluo((3, 20, 20)), photometric="minisblack")  # tifffile names the stack axis itself
    res = _restore([src, "-o", tmp_path / "z.tif", "--axes", "ZYX"], tiny_weights)
    assert res.exit_code == 0, res.output
    assert read_series(tmp_path / "z.tif")[0].axes == "ZYX"
    bad = _restore([src, "-o", tmp_path / "y.tif", "--axes", "TZYX"], tiny_weights)
    lines = [ln for ln in bad.output.splitlines() if ln.strip()]
    assert bad.exit_code == 2 and len(lines) == 1 and "stack.tif" in lines[0] and "3" in lines[0]
    assert not (tmp_path / "y.tif").exists()


def test_calibrated_input_to_png_warns_once(tmp_path, tiny_weights):
    for name in ("a", "b"):
        tifffile.imwrite(tmp_path / f"{name}.ome.tif", _fluo((20, 20)), ome=True,
                         metadata={"axes": "YX", "PhysicalSizeX": 0.2, "PhysicalSizeY": 0.2})
    res = _restore([tmp_path / "a.ome.tif", tmp_path / "b.ome.tif", "--out-dir", tmp_path / "o", "--suffix", ""],
                   tiny_weights)
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == ["a.ome.tif", "b.ome.tif"]
    res = _restore([tmp_path / "a.ome.tif", "-o", tmp_path / "a.png"], tiny_weights)
    assert res.exit_code == 0 and res.output.count("calibration") == 1 and "0.2" in res.output


def test_stack_to_png_refused_before_any_work(tmp_path, tiny_weights):
    tifffile.imwrite(tmp_path / "z.tif", _fluo((3, 20, 20)), photometric="minisblack", metadata={"axes": "ZYX"})
    res = _restore([tmp_path / "z.tif", "-o", tmp_path / "z.png"], tiny_weights)
    assert res.exit_code == 2 and "z.png" in res.output and "TIFF" in res.output and ".mdeblur-" not in res.output
    assert not (tmp_path / "z.png").exists()


def test_same_name_collision_refused_naming_both(tmp_path, tiny_weights):
    for d in ("a", "b"):
        (tmp_path / d).mkdir()
        write_image(tmp_path / d / "x.png", np.rint(smooth_image(16, 16) * 255).astype(np.uint8))
    res = _restore([tmp_path / "a" / "x.png", tmp_path / "b" / "x.png", "--out-dir", tmp_path / "o"], tiny_weights)
    assert res.exit_code == 2
    assert str(tmp_path / "a" / "x.png") in res.output and str(tmp_path / "b" / "x.png") in res.output
    assert not (tmp_path / "o").exists()
    res = _restore([tmp_path, "--recursive", "--out-dir", tmp_path / "o"], tiny_weights)  # sub-folders kept
    assert res.exit_code == 0, res.output
    assert (tmp_path / "o" / "a" / "x_x2.png").exists() and (tmp_path / "o" / "b" / "x_x2.png").exists()


def test_skip_existing_resumes_a_batch(tmp_path, tiny_weights):
    src = tmp_path / "in"
    src.mkdir()
    for i in range(3):
        write_image(src / f"{i}.png", np.rint(smooth_image(16, 16, seed=i) * 255).astype(np.uint8))
    out = tmp_path / "out"
    assert _restore([src, "--out-dir", out], tiny_weights).exit_code == 0
    (out / "1_x2.png").unlink()
    kept = (out / "0_x2.png").stat().st_mtime_ns
    (out / "2_x2.png").write_bytes(b"left alone")
    res = _restore([src, "--out-dir", out], tiny_weights)
    assert res.exit_code == 2 and "--skip-existing" in res.output
    res = _restore([src, "--out-dir", out, "--skip-existing"], tiny_weights)
    assert res.exit_code == 0, res.output
    assert "skipping 2" in res.output and (out / "1_x2.png").exists()
    assert (out / "0_x2.png").stat().st_mtime_ns == kept and (out / "2_x2.png").read_bytes() == b"left alone"
    both = _restore([src, "--out-dir", out, "--skip-existing", "--overwrite"], tiny_weights)
    assert both.exit_code == 2 and "contradict" in both.output


def test_restore_file_api_keeps_metadata(tmp_path, tiny_model):
    src = tmp_path / "a.ome.tif"
    tifffile.imwrite(src, _fluo((2, 20, 20)), ome=True, metadata={"axes": "CYX", "PhysicalSizeX": 0.5,
                                                                   "PhysicalSizeY": 0.5})
    res = restore_file(src, tmp_path / "b.ome.tif", tiny_model)
    assert res.modes == ["independent"] and len(res.norms) == 2
    s = read_series(tmp_path / "b.ome.tif")[0]
    assert s.axes == "CYX" and s.data.shape == (2, 40, 40) and s.meta.pixel_size()[:2] == pytest.approx((0.25, 0.25))


def test_names_and_meta_units():
    from pathlib import Path

    assert split_name(Path("d/cells.ome.tif")) == ("cells", ".ome.tif")
    assert split_name(Path("cells.OME.TIFF")) == ("cells", ".OME.TIFF")
    assert split_name(Path("a.b.png")) == ("a.b", ".png")
    assert Meta(resolution=(1.0, 1.0), resolution_unit=2).pixel_size() is None  # (1, 1) inch: no calibration
    assert Meta(kind="imagej", resolution=(2.0, 4.0), imagej={"unit": "micron"}).pixel_size() == (0.25, 0.5, "µm")


def test_vendor_formats_without_the_bio_extra_name_it(tmp_path, tiny_weights, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "bioio", None)  # as if the extra were not installed
    (tmp_path / "plate.czi").write_bytes(b"ZISRAWFILE" + bytes(100))
    res = _restore([tmp_path / "plate.czi", "--out-dir", tmp_path / "o"], tiny_weights)
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert res.exit_code == 2 and len(lines) == 1 and "plate.czi" in lines[0] and "mdeblur[bio]" in lines[0]


def test_czi_through_the_bio_extra(tmp_path, tiny_weights):
    pytest.importorskip("bioio_czi")
    pyczi = pytest.importorskip("pylibCZIrw.czi")
    data = _fluo((2, 3, 24, 28))
    with pyczi.create_czi(str(tmp_path / "plate.czi")) as w:
        for c in range(2):
            for z in range(3):
                w.write(data=data[c, z], plane={"C": c, "Z": z})
        w.write_metadata(channel_names={0: "DAPI", 1: "GFP"}, scale_x=0.65e-6, scale_y=0.65e-6, scale_z=2e-6)
    res = _restore([tmp_path / "plate.czi", "--out-dir", tmp_path / "o"], tiny_weights)
    assert res.exit_code == 0, res.output
    with tifffile.TiffFile(tmp_path / "o" / "plate_x2.ome.tif") as tif:
        assert tif.series[0].axes == "CZYX" and tif.series[0].shape == (2, 3, 48, 56)
        pixels = tifffile.xml2dict(tif.ome_metadata)["OME"]["Image"]["Pixels"]
    assert pixels["PhysicalSizeX"] == pytest.approx(0.325) and pixels["PhysicalSizeZ"] == pytest.approx(2.0)
    assert [c["Name"] for c in pixels["Channel"]] == ["DAPI", "GFP"]


def test_ome_input_to_tif_gives_a_calibrated_imagej_hyperstack(tmp_path, tiny_model):
    src = tmp_path / "a.ome.tif"
    tifffile.imwrite(src, _fluo((3, 2, 20, 20)), ome=True, photometric="minisblack", metadata={
        "axes": "ZCYX", "PhysicalSizeX": 0.65, "PhysicalSizeY": 0.65, "PhysicalSizeZ": 1.5})
    restore_file(src, tmp_path / "b.tif", tiny_model)
    with tifffile.TiffFile(tmp_path / "b.tif") as tif:
        assert tif.is_imagej and tif.series[0].axes == "ZCYX"
        ij, xres = tif.imagej_metadata, tif.pages[0].tags["XResolution"].value
    assert ij["unit"] == "micron" and ij["spacing"] == 1.5 and xres[1] / xres[0] == pytest.approx(0.325, rel=1e-6)


def test_planar_rgb_stays_planar_rgb(tmp_path, tiny_model):
    src = tmp_path / "p.tif"
    tifffile.imwrite(src, np.rint(np.moveaxis(smooth_image(20, 20), -1, 0) * 255).astype(np.uint8),
                     photometric="rgb", planarconfig="separate")
    restore_file(src, tmp_path / "q.tif", tiny_model)
    with tifffile.TiffFile(tmp_path / "q.tif") as tif:
        assert tif.series[0].axes == "SYX" and tif.series[0].shape == (3, 40, 40) and tif.pages[0].photometric == 2


def test_formats_that_would_lose_intensities_are_refused_before_work(tmp_path, tiny_weights):
    counts = (_fluo((20, 20)).astype(np.float32) + 0.5)  # float counts, far outside [0, 1]
    tifffile.imwrite(tmp_path / "f.tif", counts)
    tifffile.imwrite(tmp_path / "u.tif", _fluo((20, 20)))
    four = np.moveaxis(_fluo((4, 20, 20)), 0, -1)  # four fluorescence channels, no alpha tag
    tifffile.imwrite(tmp_path / "four.tif", four, photometric="minisblack", planarconfig="contig")
    for src, dst, why in (("f.tif", "f.png", "float"), ("u.tif", "u.jpg", "8 bits"), ("u.tif", "u.bmp", "8 bits"),
                          ("four.tif", "four.png", "no alpha tag")):
        res = _restore([tmp_path / src, "-o", tmp_path / dst], tiny_weights)
        lines = [ln for ln in res.output.splitlines() if ln.strip()]
        assert res.exit_code == 2 and len(lines) == 1 and dst in lines[0] and why in lines[0], res.output
        assert not (tmp_path / dst).exists()
    unit = np.clip(counts / counts.max(), 0, 1).astype(np.float32)  # a float image in [0, 1] may be a PNG
    tifffile.imwrite(tmp_path / "g.tif", unit)
    assert _restore([tmp_path / "g.tif", "-o", tmp_path / "g.png"], tiny_weights).exit_code == 0


def test_write_errors_are_one_line_per_file_and_the_batch_goes_on(tmp_path, tiny_weights):
    src = tmp_path / "in"
    src.mkdir()
    for name in ("a", "b"):
        write_image(src / f"{name}.png", np.rint(smooth_image(16, 16) * 255).astype(np.uint8))
    blocker = tmp_path / "out"
    blocker.mkdir()
    (blocker / "a_x2.png").mkdir()  # a folder where a's output should go: the write fails
    res = _restore([src, "--out-dir", blocker, "--overwrite"], tiny_weights)
    assert res.exit_code == 2 and "Traceback" not in res.output
    assert "a_x2.png" in res.output and "cannot write" in res.output and (blocker / "b_x2.png").is_file()
    res = _restore([src / "a.png", "--out-dir", src / "a.png"], tiny_weights)  # --out-dir is a file
    assert res.exit_code == 2 and "Traceback" not in res.output and len(res.output.strip().splitlines()) == 1


def test_metadata_crosses_formats_and_what_cannot_is_warned(tmp_path, tiny_model, tiny_weights):
    src = tmp_path / "h.tif"
    tifffile.imwrite(src, _fluo((2, 3, 16, 16)), imagej=True, resolution=(2.0, 2.0),
                     metadata={"axes": "TZYX", "spacing": 0.7, "unit": "micron", "finterval": 5.0})
    restore_file(src, tmp_path / "h.ome.tif", tiny_model)  # ImageJ -> OME: spacing and interval carried over
    with tifffile.TiffFile(tmp_path / "h.ome.tif") as tif:
        pixels = tifffile.xml2dict(tif.ome_metadata)["OME"]["Image"]["Pixels"]
    assert pixels["PhysicalSizeX"] == pytest.approx(0.25) and pixels["PhysicalSizeZ"] == pytest.approx(0.7)
    assert pixels["TimeIncrement"] == pytest.approx(5.0)
    ome = tmp_path / "c.ome.tif"
    tifffile.imwrite(ome, _fluo((2, 3, 16, 16)), ome=True, photometric="minisblack", metadata={
        "axes": "CZYX", "PhysicalSizeX": 0.1, "PhysicalSizeY": 0.1, "Channel": {"Name": ["a", "b"]}})
    res = restore_file(ome, tmp_path / "c.tif", tiny_model)  # C before Z: not an ImageJ order, a plain TIFF
    assert res.lost == {"channel names": "a, b"}
    assert read_series(tmp_path / "c.tif")[0].meta.pixel_size() == pytest.approx((0.05, 0.05, "µm"))
    cli = _restore([ome, "-o", tmp_path / "d.tif"], tiny_weights)
    assert cli.exit_code == 0 and "warning" in cli.output and "channel names a, b" in cli.output


def test_option_and_api_checks(tmp_path, tiny_model, tiny_weights):
    write_image(tmp_path / "a.png", np.rint(smooth_image(16, 16) * 255).astype(np.uint8))
    for args, why in ((["--tile", "0"], "--tile"), (["--axes", ""], "--axes"),
                      (["--suffix", "/../../e"], "--suffix"), (["--channels", "rgb", "--axes", "YX"], "a.png")):
        res = _restore([tmp_path / "a.png", "--out-dir", tmp_path / "o", *args], tiny_weights)
        assert res.exit_code == 2 and why in res.output and len(res.output.strip().splitlines()) == 1, res.output
    assert not (tmp_path / "o").exists() and not (tmp_path.parent / "e.png").exists()
    for bad in (np.zeros((16, 16), np.int16), np.zeros((16, 16), bool)):
        with pytest.raises(MdeblurError, match="restore_array"):
            restore_array(bad, tiny_model)
    with pytest.raises(ValueError, match="axes="):
        restore_array(np.zeros((5, 16, 16), np.uint16), tiny_model)  # a Z stack needs its axes named
    tifffile.imwrite(tmp_path / "mask.tif", np.zeros((16, 16), bool))
    assert _restore([tmp_path / "mask.tif", "-o", tmp_path / "m.tif"], tiny_weights).exit_code == 2


def test_auto_follows_what_the_file_declares(tmp_path, tiny_model):
    planes = np.rint(smooth_image(16, 16) * 255).astype(np.uint8)
    planes[..., 1] = 0
    tifffile.imwrite(tmp_path / "gray3.tif", planes, photometric="minisblack", planarconfig="contig")
    res = restore_file(tmp_path / "gray3.tif", tmp_path / "o.tif", tiny_model)
    assert res.modes == ["independent"] and (tifffile.imread(tmp_path / "o.tif")[..., 1] == 0).all()
    tifffile.imwrite(tmp_path / "rgb.tif", planes, photometric="rgb")
    assert restore_file(tmp_path / "rgb.tif", tmp_path / "p.tif", tiny_model).modes == ["rgb"]




def _gray_alpha_png(path, gray, alpha):
    """A gray+alpha PNG (colour type 4), which OpenCV cannot write, made by hand."""
    import struct
    import zlib

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    h, w = gray.shape
    rows = b"".join(b"\0" + np.stack([gray[y], alpha[y]], -1).astype(np.uint8).tobytes() for y in range(h))
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 4, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


def test_gray_alpha_png_stays_gray(tmp_path, tiny_weights):
    gray = np.rint(smooth_image(16, 16, c=1)[..., 0] * 255).astype(np.uint8)
    alpha = np.full((16, 16), 255, np.uint8)
    alpha[:8] = 0
    _gray_alpha_png(tmp_path / "la.png", gray, alpha)
    s = read_series(tmp_path / "la.png")[0]
    assert s.axes == "YXS" and s.data.shape == (16, 16, 2) and s.meta.alpha
    res = _restore([tmp_path / "la.png", "-o", tmp_path / "o.png"], tiny_weights)
    assert res.exit_code == 0, res.output
    out = read_series(tmp_path / "o.png")[0].data  # written as RGBA with equal colour channels: no tint
    assert out.shape == (32, 32, 4) and (out[..., 0] == out[..., 1]).all() and (out[..., 1] == out[..., 2]).all()
    assert (out[:14, :, 3] == 0).all() and (out[18:, :, 3] == 255).all()


def test_out_dir_inside_a_scanned_input_folder_is_left_out(tmp_path, tiny_weights):
    src = tmp_path / "tree"
    (src / "a").mkdir(parents=True)
    write_image(src / "a" / "img.png", np.rint(smooth_image(16, 16) * 255).astype(np.uint8))
    out = src / "restored"
    assert _restore([src, "--recursive", "--out-dir", out], tiny_weights).exit_code == 0
    res = _restore([src, "--recursive", "--out-dir", out, "--skip-existing"], tiny_weights)
    assert res.exit_code == 0 and "skipping 1" in res.output, res.output
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png")) == ["a/img_x2.png"]


def test_ome_zarr_in_and_out(tmp_path, tiny_weights):
    zarr = pytest.importorskip("zarr")
    src = tmp_path / "plate.ome.zarr"
    group = zarr.open_group(str(src), mode="w", zarr_format=2)
    group.create_array("0", shape=(2, 3, 20, 24), dtype="uint16", chunks=(1, 1, 20, 24))[...] = _fluo((2, 3, 20, 24))
    group.attrs["multiscales"] = [{"version": "0.4", "axes": [
        {"name": "c", "type": "channel"}, {"name": "z", "type": "space", "unit": "micrometer"},
        {"name": "y", "type": "space", "unit": "micrometer"}, {"name": "x", "type": "space", "unit": "micrometer"}],
        "datasets": [{"path": "0", "coordinateTransformations": [{"type": "scale", "scale": [1, 2.0, 0.65, 0.65]}]}]}]
    group.attrs["omero"] = {"channels": [{"label": "DAPI", "color": "0000FF"}, {"label": "GFP", "color": "00FF00"}]}
    res = _restore([tmp_path, "--out-dir", tmp_path / "out"], tiny_weights)  # found in the folder, as one image
    assert res.exit_code == 0, res.output
    out = zarr.open_group(str(tmp_path / "out" / "plate_x2.ome.zarr"), mode="r")
    ms = dict(out.attrs)["multiscales"][0]
    assert [a["name"] for a in ms["axes"]] == ["c", "z", "y", "x"] and out["0"].shape == (2, 3, 40, 48)
    assert ms["datasets"][0]["coordinateTransformations"][0]["scale"] == pytest.approx([1, 2.0, 0.325, 0.325])
    assert [c["label"] for c in dict(out.attrs)["omero"]["channels"]] == ["DAPI", "GFP"]
    tif = tmp_path / "plate_x2.ome.tif"  # and across: OME-Zarr to OME-TIFF
    assert _restore([src, "-o", tif], tiny_weights).exit_code == 0
    assert read_series(tif)[0].meta.calibration() == {"pixel size": "0.325 µm", "Z spacing": "2 µm",
                                                      "channel names": "DAPI, GFP"}
    again = _restore([src, "-o", tmp_path / "out" / "plate_x2.ome.zarr", "--overwrite"], tiny_weights)
    assert again.exit_code == 0 and not [p for p in (tmp_path / "out").iterdir() if p.name.startswith(".mdeblur")]
    rgb = tmp_path / "rgb.png"
    write_image(rgb, np.rint(smooth_image(16, 16) * 255).astype(np.uint8))
    bad = _restore([rgb, "-o", tmp_path / "rgb.ome.zarr"], tiny_weights)
    assert bad.exit_code == 2 and "T, C, Z, Y, X" in bad.output and not (tmp_path / "rgb.ome.zarr").exists()


def test_ome_zarr_without_the_extra_names_it(tmp_path, tiny_weights, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "zarr", None)
    (tmp_path / "a.ome.zarr").mkdir()
    res = _restore([tmp_path / "a.ome.zarr", "-o", tmp_path / "b.tif"], tiny_weights)
    assert res.exit_code == 2 and "mdeblur[zarr]" in res.output and "a.ome.zarr" in res.output and len(res.output.strip().splitlines()) == 1


def test_imagej_to_ome_zarr_is_reordered_named_and_coloured(tmp_path, tiny_model):
    zarr = pytest.importorskip("zarr")
    src = tmp_path / "movie.ome.tif"
    tifffile.imwrite(src, _fluo((3, 2, 16, 16)), ome=True, photometric="minisblack", metadata={
        "axes": "ZCYX", "PhysicalSizeX": 0.5, "PhysicalSizeY": 0.5, "PhysicalSizeZ": 1.0,
        "Channel": {"Name": ["DAPI", "GFP"], "Color": [65535, -16776961]}})  # 0x0000FFFF blue, 0xFF0000FF red
    restore_file(src, tmp_path / "m.ome.zarr", tiny_model)
    group = zarr.open_group(str(tmp_path / "m.ome.zarr"), mode="r")
    ms, omero = dict(group.attrs)["multiscales"][0], dict(group.attrs)["omero"]
    assert [a["name"] for a in ms["axes"]] == ["c", "z", "y", "x"] and group["0"].shape == (2, 3, 32, 32)
    assert ms["name"] == "Image0" or not ms["name"].startswith(".mdeblur")
    assert [(c["label"], c["color"]) for c in omero["channels"]] == [("DAPI", "0000FF"), ("GFP", "FF0000")]
    restore_file(tmp_path / "m.ome.zarr", tmp_path / "back.ome.tif", tiny_model)  # and the colours come back
    chans = read_series(tmp_path / "back.ome.tif")[0].meta.ome["Pixels"]["Channel"]
    assert [c["Color"] for c in chans] == [65535, -16776961]
    plain = tmp_path / "plain.tif"
    tifffile.imwrite(plain, _fluo((16, 16)))
    restore_file(plain, tmp_path / "p.ome.zarr", tiny_model)
    assert dict(zarr.open_group(str(tmp_path / "p.ome.zarr"), mode="r").attrs)["multiscales"][0]["name"] == "plain"


def test_restore_file_refuses_its_own_input_and_a_file_as_folder(tmp_path, tiny_model, tiny_weights):
    src = tmp_path / "same.tif"
    tifffile.imwrite(src, _fluo((16, 16)))
    before = src.read_bytes()
    for dst in (src, tmp_path / "." / "same.tif"):
        with pytest.raises(MdeblurError, match="over an input"):
            restore_file(src, dst, tiny_model)
    assert src.read_bytes() == before
    res = _restore([src, "--out-dir", src], tiny_weights)
    assert res.exit_code == 2 and "is a file, not a folder" in res.output
