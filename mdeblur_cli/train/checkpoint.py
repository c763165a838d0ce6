"""Training state on disk: save and load atomically, with every RNG state so that a resumed run continues exactly."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import torch

from ..data.train import PatchSampler
from ..errors import MdeblurError

STATE_FILE = "state.pt"


def _rng_state(sampler: PatchSampler) -> dict:
    np_state = np.random.get_state()
    return {
        "python": [list(x) if isinstance(x, tuple) else x for x in random.getstate()],
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]],
        "torch": torch.get_rng_state(),
        "sampler": sampler.generator.get_state(),
    }


def _set_rng_state(state: dict, sampler: PatchSampler, sampler_state: torch.Tensor) -> None:
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    n = state["numpy"]
    np.random.set_state((n[0], n[1].numpy().astype(np.uint32), *n[2:]))
    torch.set_rng_state(state["torch"])
    sampler.generator.set_state(sampler_state)


def save_state(path: Path, state: dict) -> None:
    """torch.save to a temp file, then rename: a crash never leaves a half-written checkpoint."""
    from ..formats.images import atomic_write

    atomic_write(path, lambda tmp: torch.save(state, tmp))


def load_state(path: Path) -> dict:
    if not path.is_file():
        raise MdeblurError(f"{path.parent}: no {STATE_FILE} to resume from (a run stopped before its first "
                           "checkpoint: start it afresh with --overwrite)")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise MdeblurError(f"{path}: unreadable training state ({type(exc).__name__})") from None
