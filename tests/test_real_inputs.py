"""The shipped default weights on the files users have: 8-bit examples, dim 12-bit camera data, noise."""

from pathlib import Path

import numpy as np
import pytest
import torch

from mdeblur_cli.data.degrade import upscale_bicubic
from mdeblur_cli.evaluate.metrics import psnr
from mdeblur_cli.formats.images import read_image, to_float
from mdeblur_cli.restore.arrays import restore_array
from mdeblur_cli.weights import load_model

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@pytest.fixture(scope="module")
def shipped():
    return load_model("mdeblurgan-x2")


def _t(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1)))[None]


@pytest.mark.parametrize("name", ["retina", "immunohistochemistry", "cell", "microaneurysms"])
def test_8_bit_examples_beat_bicubic_of_the_same_file_by_2_db(shipped, name):
    lr = read_image(EXAMPLES / f"{name}_blurry_lr.png").pages[0]
    hr = _t(to_float(read_image(EXAMPLES / f"{name}_ground_truth.png").pages[0]))
    assert lr.dtype == np.uint8
    restored = restore_array(lr, shipped)
    assert restored.dtype == np.uint8 and restored.shape == (2 * lr.shape[0], 2 * lr.shape[1], 3)
    gain = psnr(_t(to_float(restored)), hr, 2).item() - psnr(upscale_bicubic(_t(to_float(lr)), 2), hr, 2).item()
    assert gain >= 2.0, f"{name}: only {gain:+.2f} dB over bicubic"


def test_a_flat_poisson_field_stays_flat(shipped):
    field = np.random.default_rng(0).poisson(300, (96, 96)).astype(np.uint16)
    out = restore_array(field, shipped).astype(np.float64)
    assert out.std() <= field.std(), f"noise became structure: std {field.std():.1f} -> {out.std():.1f}"
    assert abs(out.mean() / field.mean() - 1) <= 0.02


def test_a_12_bit_camera_image_keeps_its_offset_and_range(shipped):
    from mdeblur_cli.data import skimage_image, to_tensor
    from mdeblur_cli.data.degrade import fire_protocol

    scene = to_tensor(skimage_image("camera")[100:292, 100:292])
    scene[:, :, :48] = 0  # a dark region at the camera offset, blurred like the rest
    lr, _ = fire_protocol(scene, 1.5, 2)
    noise = np.random.default_rng(1).integers(0, 3, lr.shape[1:])
    arr = np.rint(100 + lr[0].numpy() * 4100 + noise).astype(np.uint16)  # 12-bit data over an offset of 100
    out = restore_array(arr, shipped)
    assert out.dtype == np.uint16
    dark = out[8:-8, 8:32]  # the dark region, away from its edge (HR px)
    assert abs(np.median(dark) - 101) <= 5, f"offset moved to {np.median(dark)}"
    assert (out == 0).mean() == 0 and out.max() <= 4200 * 1.1
