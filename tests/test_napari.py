"""The napari plugin without a canvas: restore_layer's contract, the widget's controller on a ViewerModel, the
reader, the writer, the samples and the manifest. (tests/test_napari_viewer.py drives a real viewer, under Xvfb.)"""

import numpy as np
import pytest

napari = pytest.importorskip("napari")
from napari.components import ViewerModel  # noqa: E402

from mdeblur_cli import load_model, restore_array  # noqa: E402
from mdeblur_cli.napari_plugin import restore_layer  # noqa: E402


@pytest.fixture
def viewer():
    return ViewerModel()


def _gray(seed=0, shape=(40, 48)):
    return (np.random.default_rng(seed).random(shape) * 4000).astype(np.uint16)


def test_restore_layer_equals_restore_array_and_overlays_the_original(viewer, tiny_weights):
    layer = viewer.add_image(_gray(), name="cells", scale=(0.5, 0.4), translate=(10.0, 20.0), colormap="green",
                             metadata={"objective": "20x"})
    (data, kw, kind), = restore_layer(layer, weights=str(tiny_weights), tile=64)
    assert kind == "image" and kw["name"] == "cells_x2"
    np.testing.assert_array_equal(data, restore_array(layer.data, load_model(tiny_weights), tile=64))
    assert kw["scale"] == [0.25, 0.2] and kw["translate"] == pytest.approx([10.0 - 0.125, 20.0 - 0.1])
    assert kw["metadata"]["objective"] == "20x" and kw["metadata"]["mdeblur"]["source_layer"] == "cells"
    assert kw["colormap"] == "green"
    out = viewer.add_image(data, **kw)
    # pixel centres line up: output pixels 0 and 1 straddle input pixel 0's centre
    c0 = layer.data_to_world((0, 0))
    o0, o1 = out.data_to_world((0, 0)), out.data_to_world((1, 1))
    np.testing.assert_allclose((np.array(o0) + np.array(o1)) / 2, c0)


def test_rgb_layer_with_trust_gives_one_map_per_pixel_and_the_verdict(viewer, tiny_weights):
    from mdeblur_cli.restore.error_head import ErrorHead, HeadTrust
    from mdeblur_cli.weights import store_error_head

    store_error_head(tiny_weights, HeadTrust(ErrorHead(8, 2).eval(), 2.0, 0.95, "laplace", "test", "test", 20))
    rgb = (np.random.default_rng(1).random((32, 40, 3)) * 255).astype(np.uint8)
    layer = viewer.add_image(rgb, name="he", rgb=True)
    (data, kw, _), (tmap, tkw, _) = restore_layer(layer, weights=str(tiny_weights), trust=True)
    ref, ref_map, summary = restore_array(rgb, load_model(tiny_weights), trust=True)
    np.testing.assert_array_equal(data, ref)
    assert tmap.shape == (64, 80) and np.isfinite(tmap).all() and (tmap >= 0).all()
    np.testing.assert_allclose(tmap, ref_map[..., 0])
    assert tkw["name"] == "he_x2_trust" and tkw["opacity"] == 0.5 and tkw["scale"] == kw["scale"]
    info = kw["metadata"]["mdeblur"]["trust"]
    assert info["suspect"] == summary["suspect"] and info["map"] == "learned error head"
    assert tkw["metadata"]["mdeblur"]["trust"] == info


def test_a_stack_restores_plane_by_plane_with_progress_over_planes(viewer, tiny_weights):
    stack = np.stack([_gray(s, (32, 32)) for s in range(3)])
    layer = viewer.add_image(stack, name="z", scale=(2.0, 0.5, 0.5))
    seen = []
    (data, kw, _), = restore_layer(layer, weights=str(tiny_weights), progress=lambda *a: seen.append(a))
    assert data.shape == (3, 64, 64) and kw["scale"] == [2.0, 0.25, 0.25]
    ref = restore_array(stack, load_model(tiny_weights), axes="ZYX")
    np.testing.assert_array_equal(data, ref)
    assert sorted({p for p, n, *_ in seen}) == [0, 1, 2] and all(n == 3 for _, n, *_ in seen)


def test_a_rotated_layer_is_overlaid_through_its_transform(viewer, tiny_weights):
    layer = viewer.add_image(_gray(3, (24, 32)), name="r", scale=(0.5, 0.7), translate=(3.0, -2.0), rotate=30)
    (data, kw, _), = restore_layer(layer, weights=str(tiny_weights))
    out = viewer.add_image(data, **kw)
    for y, x in ((0, 0), (5, 7), (23, 31)):
        centre = np.array(layer.data_to_world((y, x)))
        quad = np.mean([out.data_to_world((2 * y + dy, 2 * x + dx)) for dy in (0, 1) for dx in (0, 1)], axis=0)
        np.testing.assert_allclose(quad, centre, atol=1e-9)


def test_the_reader_gives_micrometres_whatever_the_files_unit(tmp_path):
    import tifffile

    from mdeblur_cli.napari_plugin.io import get_reader

    tifffile.imwrite(tmp_path / "nm.ome.tif", _gray(4, (16, 16)), metadata={
        "axes": "YX", "PhysicalSizeX": 130, "PhysicalSizeY": 130, "PhysicalSizeXUnit": "nm", "PhysicalSizeYUnit": "nm"})
    (_, kw, _), = get_reader(str(tmp_path / "nm.ome.tif"))(str(tmp_path / "nm.ome.tif"))
    assert kw["scale"] == pytest.approx([0.13, 0.13])


def test_controller_adds_layers_cancel_adds_none_and_bad_weights_notify(viewer, tiny_weights, tmp_path, monkeypatch):
    from mdeblur_cli.napari_plugin.widget import Cancelled, RestoreController

    layer = viewer.add_image(_gray(), name="a")
    ctl = RestoreController(viewer)
    assert ctl.image_layers() == [layer]
    added = ctl.add(ctl.run(layer, str(tiny_weights), False, "auto", 0, "cpu"))
    assert [lyr.name for lyr in viewer.layers] == ["a", "a_x2"] and added[0].scale[0] == pytest.approx(0.5)
    shown = []
    monkeypatch.setattr("napari.utils.notifications.show_error", lambda msg: shown.append(msg))
    monkeypatch.setattr("napari.utils.notifications.show_info", lambda msg: shown.append(msg))
    ctl.cancel_event.set()
    monkeypatch.setattr(ctl.cancel_event, "clear", lambda: None)  # the user pressed Cancel during the run
    with pytest.raises(Cancelled) as exc:
        ctl.run(layer, str(tiny_weights), False, "auto", 64, "cpu")
    ctl.fail(exc.value)
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not weights")
    with pytest.raises(Exception) as exc2:
        ctl.run(layer, str(bad), False, "auto", 0, "cpu")
    line = ctl.fail(exc2.value)
    assert len(viewer.layers) == 2  # nothing added by the cancelled or the failed run
    assert "cancelled" in shown[0] and "bad.safetensors" in line and "\n" not in line


def test_reader_gives_calibrated_layers_and_the_writer_keeps_it(tmp_path):
    import tifffile

    from mdeblur_cli.napari_plugin.io import get_reader, write_image

    img = _gray(2, (3, 24, 32))
    tifffile.imwrite(tmp_path / "z.ome.tif", img, metadata={"axes": "ZYX", "PhysicalSizeX": 0.3,
                                                            "PhysicalSizeY": 0.3, "PhysicalSizeZ": 2.0})
    reader = get_reader(str(tmp_path / "z.ome.tif"))
    (data, kw, kind), = reader(str(tmp_path / "z.ome.tif"))
    assert data.shape == (3, 24, 32) and kw["scale"] == pytest.approx([2.0, 0.3, 0.3])
    assert get_reader(str(tmp_path / "notes.txt")) is None
    out = write_image(str(tmp_path / "w.ome.tif"), data, {"scale": [2.0, 0.15, 0.15], "name": "w"})
    (d2, kw2, _), = get_reader(out[0])(out[0])
    np.testing.assert_array_equal(d2, data)
    assert kw2["scale"] == pytest.approx([2.0, 0.15, 0.15])


def test_reader_opens_a_slide_as_a_multiscale_rgb_layer(tmp_path):
    pytest.importorskip("tiffslide")
    from mdeblur_cli.napari_plugin.io import get_reader
    from tests.tools.slides import svs_like, tissue

    path = svs_like(tmp_path / "s.svs", tissue(256, 512, side=128))
    (levels, kw, _), = get_reader(str(path))(str(path))
    assert kw["multiscale"] and kw["rgb"] and kw["scale"] == [0.499, 0.499]
    assert [tuple(a.shape) for a in levels] == [(256, 512, 3), (64, 128, 3), (16, 32, 3)]


def test_samples_ship_in_the_package_and_the_manifest_validates():
    from npe2 import PluginManifest

    from mdeblur_cli.napari_plugin.io import sample_cell, sample_ihc, sample_retina

    for fn in (sample_cell, sample_ihc, sample_retina):
        (data, kw, kind), = fn()
        assert data.dtype == np.uint8 and data.ndim in (2, 3) and kind == "image"
    pm = PluginManifest.from_distribution("mdeblur")  # found through the napari.manifest entry point
    assert pm.name == "mdeblur" and {w.display_name for w in pm.contributions.widgets} == {"Restore"}
    assert len(pm.contributions.sample_data) == 3
