"""What `mdeblur restore` was asked to do, and how its progress is shown: shared by the in-process batch
(batch.py) and the Dask cluster (cluster.py), so that neither imports the other's module for them."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from rich.progress import BarColumn, ProgressColumn, TextColumn, TimeRemainingColumn
from rich.text import Text

from ..formats.slide import SlideOptions
from ..restore.tiles import DEFAULT_TILE


@dataclass
class RestoreJob:
    """What `mdeblur restore` was asked to do."""

    inputs: list[str]
    output: Path | None = None
    out_dir: Path | None = None
    weights: str = "mdeblurgan-x2"
    recursive: bool = False
    tile: int = DEFAULT_TILE
    device: str = "auto"
    precision: str = "fp32"
    suffix: str = "_x2"
    overwrite: bool = False
    skip_existing: bool = False
    self_ensemble: bool = False
    normalize: str = "auto"
    percentiles: tuple[float, float] | None = None  # None: the model's own
    axes: str | None = None  # None: from the file (OME, ImageJ, TIFF layout)
    channels: str = "auto"
    max_pixels: int | None = None  # None: what this machine's memory can restore
    debug: bool = False  # unexpected errors raise with their traceback instead of a one-line report
    trust: bool = False  # also write NAME_trust.tif, the predicted error per pixel, and a summary per image
    cluster: str | None = None  # a Dask scheduler address, or 'local' (cluster.py); None: in this process
    workers: int | None = None  # --cluster local: worker processes
    threads_per_worker: int | None = None
    slide: SlideOptions = field(default_factory=SlideOptions)  # whole slides: level, region, output pyramid


class RateColumn(ProgressColumn):
    """Input megapixels restored per second, since the task started."""

    def render(self, task) -> Text:
        px, elapsed = task.fields.get("pixels", 0.0), task.elapsed
        return Text(f"{px / elapsed / 1e6:.2f} Mpx/s" if px and elapsed else "", style="progress.data.speed")


PROGRESS_COLUMNS = (TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                    RateColumn(), TimeRemainingColumn())
