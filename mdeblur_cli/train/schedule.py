"""When a training run changes its learning rate and when it stops: the schedule (by iterations, or by time under
a time limit), the iterations of an epoch, and the Ctrl-C / SIGTERM request that stops it at a checkpoint."""

from __future__ import annotations

import contextlib
import math
import signal

from .config import TrainConfig

BALANCE_BATCHES = 4  # batches measured by --loss-balance auto


def learning_rate_at(cfg: TrainConfig, it: int, elapsed_s: float = 0.0) -> float:
    """Constant for the first `decay_start` share, then linear down to `final_learning_rate`. With a time limit,
    the share is whichever is further along, iterations or time, so the decay ends by the limit."""
    start = int(cfg.decay_start * cfg.iters)
    t = (it - start) / max(1, cfg.iters - start)
    if cfg.time_limit_s is not None:
        t = max(t, (elapsed_s / cfg.time_limit_s - cfg.decay_start) / max(1e-9, 1 - cfg.decay_start))
    if t < 0:
        return cfg.learning_rate
    return cfg.learning_rate + min(1.0, t) * (cfg.final_learning_rate - cfg.learning_rate)

def iters_per_epoch(sources: list, cfg: TrainConfig) -> int:
    """Iterations that show about as many HR pixels as the training images hold."""
    pixels = sum(s.hr.shape[-1] * s.hr.shape[-2] for s in sources)
    return max(1, math.ceil(pixels / (cfg.batch_size * (cfg.patch * cfg.scale) ** 2)))

class StopRequest:
    """SIGINT/SIGTERM set a flag; the loop checkpoints and exits at the end of the iteration."""

    def __init__(self) -> None:
        self.requested = False
        self.signal = signal.SIGINT
        self._old = {}

    def __enter__(self):
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(ValueError):  # not the main thread
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        self.requested = True
        self.signal = signum

    def __exit__(self, *exc) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)
