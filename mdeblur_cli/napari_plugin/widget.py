"""The Restore widget: pick an image layer, the weights, normalisation, tile, device and whether to make the trust
map; Restore runs `restore_layer` in a worker thread (the viewer stays responsive), a progress bar counts tiles
and planes, Cancel stops at the next tile and adds nothing. The logic lives in `RestoreController`, which needs
no Qt (tests drive it on a `napari.components.ViewerModel`); `RestoreWidget` is the Qt face over it."""

from __future__ import annotations

import threading

from . import restore_layer

SHIPPED = ("mdeblurgan-x2", "unet-sr-x2")
NORMALIZE = ("auto", "percentile", "range", "none")
DEVICES = ("auto", "cpu", "cuda")


class Cancelled(Exception):
    """Raised from the progress callback when the user pressed Cancel."""


class RestoreController:
    """What Restore does, without Qt: run (in any thread), then add the layers (in the viewer's thread)."""

    def __init__(self, viewer) -> None:
        self.viewer = viewer
        self.cancel_event = threading.Event()
        self.progress = (0, 1, 0, 1)  # plane, planes, tile, tiles

    def image_layers(self) -> list:
        from napari.layers import Image

        return [layer for layer in self.viewer.layers if isinstance(layer, Image)]

    def run(self, layer, weights: str, trust: bool, normalize: str, tile: int | None, device: str) -> list[tuple]:
        """restore_layer with progress kept in self.progress; Cancelled if cancel() was called."""
        self.cancel_event.clear()

        def tick(plane: int, planes: int, done: int, total: int) -> None:
            self.progress = (plane, planes, done, total)
            if self.cancel_event.is_set():
                raise Cancelled
        return restore_layer(layer, weights=weights, trust=trust, normalize=normalize, tile=tile or None,
                             device=device, progress=tick)

    def cancel(self) -> None:
        self.cancel_event.set()

    def add(self, tuples: list[tuple]) -> list:
        """Add the restored (and trust) layers to the viewer; returns them."""
        added = []
        for data, kw, _kind in tuples:
            added.append(self.viewer.add_image(data, **kw))
        return added

    @staticmethod
    def fail(exc: BaseException) -> str:
        """Show an error as one line in napari's notifications; returns the line."""
        from napari.utils.notifications import show_error

        from ..errors import MdeblurError

        if isinstance(exc, Cancelled):
            from napari.utils.notifications import show_info

            line = "mdeblur: restore cancelled; no layer added"
            show_info(line)
            return line
        elif isinstance(exc, MdeblurError | ValueError | OSError):
            line = f"mdeblur: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
        else:
            line = f"mdeblur: unexpected {type(exc).__name__}: {(str(exc).splitlines() or [''])[0][:200]}"
        show_error(line)
        return line

    @staticmethod
    def verdict(tuples: list[tuple]) -> str:
        """The trust verdict as the widget shows it (empty without a trust layer)."""
        info = tuples[0][1]["metadata"]["mdeblur"].get("trust")
        if not info:
            return ""
        state = "SUSPECT of invented detail" if info["suspect"] else "not suspect"
        return (f"{state}: {info['doubtful_share']:.1%} of pixels doubtful; median predicted error "
                f"{info['median_error']:.3g} ({info['map']} map)")


def _qt_widget_base():
    from qtpy.QtWidgets import QWidget

    return QWidget


class RestoreWidget(_qt_widget_base()):
    """The dock widget (npe2 'Restore')."""

    def __init__(self, napari_viewer) -> None:
        from magicgui.widgets import CheckBox, ComboBox, Container, FileEdit, Label, ProgressBar, PushButton, SpinBox
        from qtpy.QtCore import QTimer
        from qtpy.QtWidgets import QVBoxLayout

        super().__init__()
        self.viewer, self.controller, self.worker = napari_viewer, RestoreController(napari_viewer), None
        self.layer = ComboBox(label="image layer", choices=self._layer_choices)
        self.weights = ComboBox(label="weights", choices=SHIPPED, value=SHIPPED[0])
        self.weights_file = FileEdit(label="or a file / run folder", mode="r", value="")
        self.normalize = ComboBox(label="normalisation", choices=NORMALIZE, value="auto")
        self.tile = SpinBox(label="tile (0: default)", min=0, max=4096, step=64, value=0)
        self.device = ComboBox(label="device", choices=DEVICES, value="auto")
        self.trust = CheckBox(text="trust map (predicted error)", value=True)
        self.run_button, self.cancel_button = PushButton(text="Restore"), PushButton(text="Cancel", enabled=False)
        self.bar, self.status = ProgressBar(label="progress", min=0, max=1000, value=0), Label(value="")
        self.form = Container(widgets=[self.layer, self.weights, self.weights_file, self.normalize, self.tile,
                                       self.device, self.trust, self.run_button, self.cancel_button, self.bar,
                                       self.status])
        QVBoxLayout(self).addWidget(self.form.native)
        self.status.native.setWordWrap(True)
        self.run_button.changed.connect(self.start)
        self.cancel_button.changed.connect(self.controller.cancel)
        napari_viewer.layers.events.inserted.connect(lambda e: self.layer.reset_choices())
        napari_viewer.layers.events.removed.connect(lambda e: self.layer.reset_choices())
        self.timer = QTimer(self)
        self.timer.timeout.connect(self._show_progress)

    def _layer_choices(self, _widget=None) -> list:
        return [(layer.name, layer) for layer in self.controller.image_layers()]

    def _show_progress(self) -> None:
        plane, planes, done, total = self.controller.progress
        self.bar.value = int(1000 * (plane + done / max(total, 1)) / max(planes, 1))
        self.bar.label = f"plane {plane + 1}/{planes}, tile {done}/{total}"

    def start(self) -> None:
        from napari.qt.threading import create_worker

        layer = self.layer.value
        if layer is None:
            self.status.value = self.controller.fail(ValueError("open an image layer first"))
            return
        path = str(self.weights_file.value or "").strip()
        weights = path if path not in ("", ".") else self.weights.value
        # handlers given at creation: a worker made without an 'errored' handler raises its error again
        self.worker = create_worker(self.controller.run, layer, weights, self.trust.value, self.normalize.value,
                                    self.tile.value, self.device.value, _start_thread=False,
                                    _connect={"returned": self._done, "errored": self._failed,
                                              "finished": self._finished})
        self.controller.progress = (0, 1, 0, 1)
        self.run_button.enabled, self.cancel_button.enabled = False, True
        self.status.value = f"restoring {layer.name} with {weights}..."
        self.timer.start(100)
        self.worker.start()

    def _done(self, tuples: list[tuple]) -> None:
        self.timer.stop()
        self.controller.add(tuples)
        self.status.value = f"added {tuples[0][1]['name']}. " + (self.controller.verdict(tuples) or "")
        self.bar.value, self.bar.label = self.bar.max, "done"

    def _failed(self, exc: BaseException) -> None:
        self.timer.stop()
        self.status.value = self.controller.fail(exc)
        self.bar.value, self.bar.label = 0, "cancelled" if isinstance(exc, Cancelled) else "failed"

    def _finished(self) -> None:
        self.timer.stop()
        self.run_button.enabled, self.cancel_button.enabled = True, False
