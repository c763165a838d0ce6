"""A run's log on disk: metrics.csv and train.log (metrics truncated to the resumed iteration), and reading them
back."""

from __future__ import annotations

import csv
from pathlib import Path

from ..errors import MdeblurError


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


class RunLog:
    """metrics.csv and train.log of a run folder; a resumed run (`resume_at`) keeps the rows up to its iteration,
    a new one starts both afresh. Disabled (`enabled=False`) on the non-main processes of a distributed run."""

    def __init__(self, out: Path, resume_at: int | None, enabled: bool = True) -> None:
        self.enabled = enabled
        if not enabled:
            return
        out.mkdir(parents=True, exist_ok=True)
        path = out / "metrics.csv"
        if resume_at is not None:
            _truncate_metrics(path, resume_at)
        else:  # a new run (or --overwrite): neither log keeps an earlier run's lines
            path.unlink(missing_ok=True)
            (out / "train.log").unlink(missing_ok=True)
        new_file = not path.exists()
        self._metrics = open(path, "a", newline="")
        self._writer = csv.writer(self._metrics)
        if new_file:
            self._writer.writerow(METRIC_COLUMNS)
            self._metrics.flush()
        self._log = open(out / "train.log", "a")
        if resume_at is not None:
            self._log.write(f"resumed at iteration {resume_at}\n")

    def metrics(self, row: list) -> None:
        self._writer.writerow(row)
        self._metrics.flush()

    def line(self, text: str) -> str:
        self._log.write(text + "\n")
        self._log.flush()
        return text

    def close(self) -> None:
        if self.enabled:
            self._log.close()
            self._metrics.close()
