"""Fuzzing the image reader and the weights loader (bounded, derandomised for CI): for any mutated file the
only outcome allowed is a result or the package's one-line MdeblurError. benchmarks/fuzz_reader.py runs longer."""

import tempfile
from pathlib import Path

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from .tools.fuzzing import load_once, mutate, read_once, seed_files  # noqa: E402

SEEDS = seed_files()
FOLDER = Path(tempfile.mkdtemp(prefix="mdeblur-fuzz-"))


@settings(max_examples=300, deadline=None, derandomize=True)
@given(name=st.sampled_from(sorted(SEEDS)), seed=st.integers(0, 2**32 - 1), rounds=st.integers(1, 3))
def test_reader_refuses_cleanly(name, seed, rounds):
    rng = np.random.default_rng(seed)
    data = SEEDS[name]
    for _ in range(rounds):
        data = mutate(data, rng)
    path = FOLDER / name
    path.write_bytes(data)
    assert read_once(path) in ("ok", "refused")


def test_every_seed_reads():
    for name, data in SEEDS.items():
        (FOLDER / name).write_bytes(data)
        assert read_once(FOLDER / name) == "ok", name


@pytest.fixture(scope="module")
def weights_bytes():
    from mdeblur_cli.models import build_model
    from mdeblur_cli.weights import save_weights

    from .conftest import TINY_UNET

    path = FOLDER / "tiny.safetensors"
    save_weights(path, build_model("unet-sr", TINY_UNET), "unet-sr", {"data": "fuzz"})
    return path.read_bytes()


@settings(max_examples=120, deadline=None, derandomize=True)
@given(seed=st.integers(0, 2**32 - 1), rounds=st.integers(1, 3))
def test_weights_loader_refuses_cleanly(weights_bytes, seed, rounds):
    rng = np.random.default_rng(seed)
    data = weights_bytes
    for _ in range(rounds):
        data = mutate(data, rng)
    path = FOLDER / "m.safetensors"
    path.write_bytes(data)
    assert load_once(path) in ("ok", "refused")
