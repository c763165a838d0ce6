"""The README's napari screenshot, from the real viewer: the retina sample restored with the shipped weights and
its trust map over it, the widget docked. Needs a display (in CI or here: xvfb-run -a env QT_QPA_PLATFORM=xcb).

    xvfb-run -a env QT_QPA_PLATFORM=xcb python benchmarks/napari_screenshot.py -o docs/napari_restore.png
"""

from __future__ import annotations

import argparse
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-o", "--output", type=Path, default=Path("docs/napari_restore.png"))
    args = ap.parse_args()
    import napari
    from qtpy.QtCore import QEventLoop, QTimer

    from mdeblur_cli.napari_plugin.widget import RestoreWidget

    viewer = napari.Viewer(show=True)
    viewer.window.resize(1400, 800)
    viewer.open_sample("mdeblur", "retina")
    widget = RestoreWidget(viewer)
    viewer.window.add_dock_widget(widget, name="mdeblur")
    widget.trust.value = True
    widget.start()
    loop = QEventLoop()
    widget.worker.finished.connect(lambda: QTimer.singleShot(500, loop.quit))
    loop.exec()
    viewer.layers.selection.active = viewer.layers[-1]
    viewer.reset_view()
    print(widget.status.value)
    viewer.screenshot(str(args.output), canvas_only=False)
    viewer.close()


if __name__ == "__main__":
    main()
