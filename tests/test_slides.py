"""Whole slides: SVS-like, JPEG tiled TIFF and pyramidal OME-TIFF read at any level and region, streamed through
the tile engine into pyramids that tiffslide and bioio open, glass skipping, resume, and bad slides."""

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from mdeblur_cli import load_model, restore_array
from mdeblur_cli.cli import app
from mdeblur_cli.scale.pyramid import level_shapes
from tests.tools.slides import damage_tile, pyramidal_ome_tiff, svs_like, tiled_jpeg_tiff, tissue

pytest.importorskip("tiffslide")
runner = CliRunner()
MAKERS = {"svs": (svs_like, ".svs"), "jpeg_tiff": (tiled_jpeg_tiff, ".tif"), "ome_tiff": (pyramidal_ome_tiff, ".ome.tif")}


@pytest.fixture
def small_pyramids(monkeypatch):
    from mdeblur_cli.scale import pyramid

    monkeypatch.setattr(pyramid, "LAST_SIDE", 200)


def _slide(tmp_path: Path, kind: str, h: int = 400, w: int = 560, glass: float = 0.3) -> Path:
    make, ext = MAKERS[kind]
    return make(tmp_path / f"slide{ext}", tissue(h, w, glass=glass, side=128))


@pytest.mark.parametrize("kind", sorted(MAKERS))
def test_slides_at_each_level_and_region_become_pyramids_that_open_everywhere(tmp_path, tiny_weights, kind,
                                                                               small_pyramids):
    import tifffile
    import tiffslide
    from bioio import BioImage

    src = _slide(tmp_path, kind)
    s_in = tiffslide.TiffSlide(str(src))
    model = load_model(tiny_weights)
    cases = [(0, None), (0, (50, 40, 200, 150))] + ([(1, None)] if s_in.level_count > 1 else [])
    for level, region in cases:
        dst = tmp_path / f"out_{level}_{region is not None}.ome.tif"
        args = ["restore", str(src), "-o", str(dst), "--weights", str(tiny_weights), "--level", str(level),
                "--tile", "64", "--no-skip-background"] + (["--region", ",".join(map(str, region))] if region else [])
        res = runner.invoke(app, args)
        assert res.exit_code == 0, res.output
        assert "streamed into" in res.output
        w, h = s_in.level_dimensions[level]
        x, y, rw, rh = region or (0, 0, w, h)
        ref = restore_array(np.asarray(s_in.zarr_group[str(level)][y : y + rh, x : x + rw]), model)
        out = tiffslide.TiffSlide(str(dst))
        assert out.level_dimensions[0] == (2 * rw, 2 * rh)
        assert out.level_count == len(level_shapes(2 * rh, 2 * rw)) and (out.level_count > 1 or 2 * rw < 400)
        for k in range(out.level_count):  # every level reads
            lw, lh = out.level_dimensions[k]
            assert np.asarray(out.read_region((0, 0), k, (lw, lh), as_array=True)).shape == (lh, lw, 3)
        got = np.asarray(out.zarr_group["0"][:])
        assert np.abs(got.astype(int) - ref.astype(int)).max() <= 1
        if s_in.properties["tiffslide.mpp-x"]:
            in_mpp = s_in.properties["tiffslide.mpp-x"] * s_in.level_downsamples[level]
            assert out.properties["tiffslide.mpp-x"] == pytest.approx(in_mpp / 2, rel=1e-3)  # from the TIFF tags
            bio = BioImage(dst)  # bioio-ome-tiff 1.4 reads the full-resolution level of SubIFD pyramids only
            assert bio.physical_pixel_sizes.X == pytest.approx(in_mpp / 2, rel=1e-3)  # from the OME-XML
            assert bio.get_image_data("YXS").shape == got.shape
        desc = json.loads(tifffile.xml2dict(out.ts_tifffile.ome_metadata)["OME"]["Image"]["Description"])
        assert desc["level"] == level and desc["source"] == src.name


def test_slide_to_ome_zarr_is_multiscale_and_equals_the_tiff(tmp_path, tiny_weights, small_pyramids):
    import zarr

    src = _slide(tmp_path, "svs")
    for dst in ("a.ome.zarr", "a.ome.tif"):
        res = runner.invoke(app, ["restore", str(src), "-o", str(tmp_path / dst), "--weights", str(tiny_weights),
                                  "--tile", "64"])
        assert res.exit_code == 0, res.output
    g = zarr.open_group(str(tmp_path / "a.ome.zarr"), mode="r")
    ms = g.attrs["multiscales"][0]
    assert [a["name"] for a in ms["axes"]] == ["c", "y", "x"] and len(ms["datasets"]) >= 2
    assert ms["datasets"][0]["coordinateTransformations"][0]["scale"][1] == pytest.approx(0.499 / 2)
    import tifffile

    tif = tifffile.imread(tmp_path / "a.ome.tif")
    np.testing.assert_array_equal(np.moveaxis(np.asarray(g["0"][:]), 0, 2), tif)
    assert g.attrs["mdeblur"]["complete"] and not (tmp_path / "a.ome.zarr.partial").exists()
    from bioio import BioImage

    bio = BioImage(tmp_path / "a.ome.zarr")
    assert len(bio.resolution_levels) == len(ms["datasets"])
    assert bio.physical_pixel_sizes.X == pytest.approx(0.499 / 2)
    for k in bio.resolution_levels:
        bio.set_resolution_level(k)
        assert bio.get_image_data("CYX").shape == g[str(k)].shape


def test_glass_tiles_are_skipped_and_the_tissue_is_the_same(tmp_path, tiny_weights):
    import tifffile

    src = _slide(tmp_path, "svs", 384, 768, glass=0.5)
    outs = {}
    for flag in ("--skip-background", "--no-skip-background"):
        dst = tmp_path / f"o{flag}.ome.tif"
        res = runner.invoke(app, ["restore", str(src), "-o", str(dst), "--weights", str(tiny_weights), "--tile",
                                  "64", flag])
        assert res.exit_code == 0, res.output
        outs[flag] = tifffile.imread(dst)
        if flag == "--skip-background":
            glass = json.loads(tifffile.xml2dict(tifffile.TiffFile(dst).ome_metadata)["OME"]["Image"]["Description"])["glass"]
            assert 0.25 < glass["skipped_count"] / glass["windows"] < 0.6
            assert "glass (bicubic)" in res.output
    a, b = outs["--skip-background"], outs["--no-skip-background"]
    tissue_cols = 2 * int(768 * 0.5)
    np.testing.assert_array_equal(a[:, : tissue_cols - 64], b[:, : tissue_cols - 64])
    assert np.abs(a[:, tissue_cols + 256 :].astype(float) - 238).mean() < 2  # glass: bicubic of glass


def test_an_interrupted_ome_zarr_resumes_to_the_same_result(tmp_path, tiny_weights, small_pyramids):
    import torch
    import zarr

    from mdeblur_cli.formats.slide import SlideOptions
    from mdeblur_cli.scale.slide import plan, restore_slide

    src = _slide(tmp_path, "svs", 1200, 400, glass=0.0)
    model = load_model(tiny_weights)
    dst = tmp_path / "r.ome.zarr"
    opts = SlideOptions()

    def stop(done, total, glass):
        if done > total // 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        restore_slide(plan(src, dst, opts, 2), dst, model.net, opts, 64, torch.device("cpu"), torch.float32, stop)
    assert not dst.exists() and (tmp_path / "r.ome.zarr.partial").exists()
    done = zarr.open_group(str(tmp_path / "r.ome.zarr.partial"), mode="r").attrs["mdeblur"]["rows_done"]
    assert 0 < done < 2400
    res = runner.invoke(app, ["restore", str(src), "-o", str(dst), "--weights", str(tiny_weights), "--tile", "64",
                              "--resume"])
    assert res.exit_code == 0, res.output
    assert "resuming from output row" in res.output
    other = _slide(tmp_path / "o", "svs", 1200, 400, glass=0.1) if (tmp_path / "o").mkdir() is None else None
    for extra in ([], ["--resume"]):  # the same size from another slide: never mixed in
        (tmp_path / "r2.ome.zarr.partial").exists() or __import__("shutil").copytree(
            tmp_path / "r.ome.zarr", tmp_path / "r2.ome.zarr.partial")
        bad = runner.invoke(app, ["restore", str(other), "-o", str(tmp_path / "r2.ome.zarr"), "--weights",
                                  str(tiny_weights), "--tile", "64", *extra])
        assert bad.exit_code == 2 and ("--resume" in bad.output), bad.output
    res = runner.invoke(app, ["restore", str(src), "-o", str(tmp_path / "full.ome.zarr"), "--weights",
                              str(tiny_weights), "--tile", "64"])
    assert res.exit_code == 0, res.output
    for k in ("0", "1"):
        np.testing.assert_array_equal(zarr.open_group(str(dst), mode="r")[k][:],
                                      zarr.open_group(str(tmp_path / "full.ome.zarr"), mode="r")[k][:])


def test_a_streamed_slide_stays_in_bounded_memory(tmp_path, tiny_weights):
    """Peak RSS grows by far less than the output (3000 x 2400 RGB in, 6000 x 4800 out: 86 MB as uint8, 4x that
    as the float an in-memory restore holds)."""
    src = _slide(tmp_path, "jpeg_tiff", 2400, 3000, glass=0.0)
    script = textwrap.dedent(f"""
        import resource, sys
        from pathlib import Path
        import torch
        from mdeblur_cli import load_model
        from mdeblur_cli.formats.slide import SlideOptions
        from mdeblur_cli.scale.slide import plan, restore_slide
        m = load_model({str(tiny_weights)!r})
        src, dst = Path({str(src)!r}), Path({str(tmp_path / 'big.ome.tif')!r})
        opts = SlideOptions(skip_background=False)
        p = plan(src, dst, opts, 2)
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        restore_slide(p, dst, m.net, opts, 256, torch.device("cpu"), torch.float32)
        print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) / 1024)
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=Path(__file__).parent.parent)
    assert out.returncode == 0, out.stderr[-2000:]
    grown_mb = float(out.stdout.strip().splitlines()[-1])
    assert grown_mb < 60, grown_mb


@pytest.mark.parametrize("case", ["truncated", "level", "region", "disk", "offset", "ndpi"])
def test_bad_slides_are_one_line_and_exit_2(tmp_path, tiny_weights, case, monkeypatch):
    src = _slide(tmp_path, "svs")
    extra: list[str] = []
    if case == "truncated":
        damage_tile(src, 0, 3, "truncate")
        want = "truncated JPEG"
    elif case == "level":
        extra, want = ["--level", "7"], "no level 7"
    elif case == "region":
        extra, want = ["--region", "500,300,200,200"], "outside level 0"
    elif case == "disk":
        import shutil

        from mdeblur_cli.scale import slide as slide_mod

        monkeypatch.setattr(slide_mod.shutil, "disk_usage", lambda p: shutil._ntuple_diskusage(10**9, 10**9 - 1000, 1000))
        want = "MB free"
    elif case == "offset":
        src = tiled_jpeg_tiff(tmp_path / "scan.tif", tissue(300, 300, side=128))
        damage_tile(src, 0, 2, "offset")
        want = "points outside the file"
    else:  # tifffile cannot write NDPI: a damaged file under that name (offsets that do not parse as NDPI)
        src = tiled_jpeg_tiff(tmp_path / "scan.tif", tissue(300, 300, side=128)).rename(tmp_path / "scan.ndpi")
        want = "not a readable slide"
    dst = tmp_path / "out.ome.tif"
    res = runner.invoke(app, ["restore", str(src), "-o", str(dst), "--weights", str(tiny_weights), *extra])
    assert res.exit_code == 2, res.output
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and want in lines[0] and str(src.name) in lines[0], res.output
    assert not dst.exists() and not list(tmp_path.glob("*.raw")) and not list(tmp_path.glob(".mdeblur*"))


def test_info_lists_levels_pixel_size_vendor_and_compression(tmp_path):
    src = _slide(tmp_path, "svs")
    res = runner.invoke(app, ["info", str(src), "--json"])
    assert res.exit_code == 0, res.output
    d = json.loads(res.output)
    assert d["vendor"] == "aperio" and d["compression"] == "JPEG" and d["objective_power"] == 20
    assert [lv["width"] for lv in d["levels"]] == [560, 140, 35] and d["mpp"] == [0.499, 0.499]


def test_a_slide_over_a_local_cluster_equals_the_in_process_pyramid(tmp_path, tiny_weights, small_pyramids):
    """RGB on the Dask plane route: window tasks (glass by bicubic) and chunk tasks, then the lower levels;
    within 1 LSB of the in-process OME-Zarr (a worker runs torch on one thread)."""
    import zarr

    src = _slide(tmp_path, "svs", 400, 560, glass=0.4)
    for dst, extra in (("here.ome.zarr", []), ("dask.ome.zarr", ["--cluster", "local", "--workers", "2"])):
        res = runner.invoke(app, ["restore", str(src), "-o", str(tmp_path / dst), "--weights", str(tiny_weights),
                                  "--tile", "64", *extra])
        assert res.exit_code == 0, res.output
    assert "glass (bicubic)" in res.output and "one plane over the cluster" in res.output
    a, b = (zarr.open_group(str(tmp_path / d), mode="r") for d in ("here.ome.zarr", "dask.ome.zarr"))
    assert len(a.attrs["multiscales"][0]["datasets"]) == len(b.attrs["multiscales"][0]["datasets"]) >= 2
    for k in ("0", "1"):
        assert np.abs(np.asarray(a[k][:]).astype(int) - np.asarray(b[k][:])).max() <= 1


def test_out_dir_names_a_vendor_slide_as_ome_tiff_and_a_partial_needs_resume_or_overwrite(tmp_path, tiny_weights):
    src = _slide(tmp_path, "svs", 200, 240, glass=0.0)
    res = runner.invoke(app, ["restore", str(src), "--out-dir", str(tmp_path / "od"), "--weights", str(tiny_weights)])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "od" / "slide_x2.ome.tif").is_file()
    (tmp_path / "z.ome.zarr.partial").mkdir()
    args = ["restore", str(src), "-o", str(tmp_path / "z.ome.zarr"), "--weights", str(tiny_weights)]
    res = runner.invoke(app, args)
    assert res.exit_code == 2 and "add --resume" in res.output, res.output
    res = runner.invoke(app, [*args, "--overwrite"])
    assert res.exit_code == 0 and (tmp_path / "z.ome.zarr").is_dir() and not (tmp_path / "z.ome.zarr.partial").exists()


def test_halver_in_row_chunks_equals_the_whole_block_mean():
    from mdeblur_cli.scale.pyramid import HALVE_ROWS, Halver

    rng = np.random.default_rng(0)
    for dtype in (np.uint8, np.uint16, np.float32):
        a = (rng.random((3 * HALVE_ROWS + 7, 101, 3)) * (255 if dtype != np.float32 else 1)).astype(dtype)
        p = np.concatenate([a, a[-1:]])
        p = np.concatenate([p, p[:, -1:]], axis=1).astype(np.float32)
        ref = (p[0::2, 0::2] + p[1::2, 0::2] + p[0::2, 1::2] + p[1::2, 1::2]) / 4
        ref = np.rint(ref).astype(dtype) if dtype != np.float32 else ref
        h = Halver()
        got = np.concatenate([h.add(a[:150]), h.add(a[150:], last=True)])  # 150 rows: an odd carry-free split
        assert got.dtype == dtype and np.array_equal(got, ref)
