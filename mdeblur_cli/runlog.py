"""A run's log on disk: metrics.csv (truncated to the resumed iteration) and reading it back."""

from __future__ import annotations

import csv
from pathlib import Path

from .errors import MdeblurError


def _truncate_metrics(path: Path, upto: int) -> None:
    if not path.exists():
        return
    rows = list(csv.reader(path.open()))
    keep = [METRIC_COLUMNS] + [r for r in rows[1:] if r and int(r[0]) <= upto]
    with path.open("w", newline="") as f:
        csv.writer(f).writerows(keep)


METRIC_COLUMNS = ["iter", "epoch", "learning_rate", "loss", "mse", "ssim_term", "percep_term", "adv_term", "d_loss",
                  "val_psnr", "val_ssim", "seconds"]


def read_metrics(run_dir: Path) -> list[dict]:
    """metrics.csv rows of a run."""
    path = Path(run_dir) / "metrics.csv"
    if not path.exists():
        raise MdeblurError(f"{run_dir}: no metrics.csv")
    return list(csv.DictReader(path.open()))
