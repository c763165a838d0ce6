"""One real napari viewer: open a sample, dock the Restore widget, restore with the tiny model and its trust map,
and save a screenshot (MDEBLUR_ARTIFACTS, else the test's folder). Needs a display with OpenGL: in CI it runs
under Xvfb on Mesa (`xvfb-run -a`, QT_QPA_PLATFORM=xcb; .ci/run); without a display it is skipped."""

import os
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("napari")
pytest.importorskip("pytestqt")
if not os.environ.get("DISPLAY") or os.environ.get("QT_QPA_PLATFORM") == "offscreen":
    pytest.skip("needs a display with OpenGL (run under xvfb-run -a)", allow_module_level=True)


def test_restore_in_a_real_viewer_adds_the_image_and_its_trust_map(make_napari_viewer, qtbot, tiny_weights, tmp_path):
    from mdeblur_cli.napari_plugin.widget import RestoreWidget
    from mdeblur_cli.restore.error_head import ErrorHead, HeadTrust
    from mdeblur_cli.weights import store_error_head

    store_error_head(tiny_weights, HeadTrust(ErrorHead(8, 2).eval(), 2.0, 0.95, "laplace", "test", "test", 20))
    viewer = make_napari_viewer(show=True)
    viewer.open_sample("mdeblur", "retina")
    widget = RestoreWidget(viewer)
    viewer.window.add_dock_widget(widget, name="mdeblur")
    widget.weights_file.value = str(tiny_weights)
    widget.trust.value = True
    widget.start()
    qtbot.waitUntil(lambda: any(layer.name.endswith("_x2_trust") for layer in viewer.layers), timeout=120_000)
    names = [layer.name for layer in viewer.layers]
    assert names == ["retina_blurry_lr", "retina_blurry_lr_x2", "retina_blurry_lr_x2_trust"]
    assert "pixels doubtful" in widget.status.value
    out = Path(os.environ.get("MDEBLUR_ARTIFACTS", tmp_path))
    out.mkdir(parents=True, exist_ok=True)
    shot = viewer.screenshot(str(out / "napari_restore.png"), canvas_only=False)
    assert shot.ndim == 3 and np.asarray(shot)[..., :3].std() > 5  # not a black canvas
