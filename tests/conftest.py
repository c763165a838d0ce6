import numpy as np
import pytest
import torch

from mdeblur_cli.models import build_model
from mdeblur_cli.weights import LoadedModel, save_weights

TINY_MDEBLURGAN = dict(width=8, max_width=16, fusion_width=8, sr_width=8, oa_width=4)
TINY_UNET = dict(width=4, sr_width=8)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    np.random.seed(0)


@pytest.fixture
def tiny_net():
    """A tiny M-Deblurgan network (seeded, untrained)."""
    torch.manual_seed(0)
    return build_model("mdeblurgan", TINY_MDEBLURGAN).eval()


@pytest.fixture
def tiny_model(tiny_net):
    """The same network as a loaded model with no provenance: what restore_array and the file API take."""
    return LoadedModel(tiny_net, "mdeblurgan")


@pytest.fixture
def tiny_weights(tmp_path, tiny_net):
    path = tmp_path / "tiny.safetensors"
    save_weights(path, tiny_net, "mdeblurgan", {"data": "test"})
    return path


def smooth_image(h: int, w: int, c: int = 3, seed: int = 0) -> np.ndarray:
    """A seeded, smooth-but-detailed float32 test image in [0, 1]."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w] / max(h, w)
    img = np.zeros((h, w, c), np.float32)
    for ch in range(c):
        for _ in range(6):
            fx, fy, ph = rng.uniform(0.5, 4, 3)
            img[..., ch] += np.sin(2 * np.pi * (fx * x + fy * y) + ph)
    img = (img - img.min()) / (img.max() - img.min())
    return img.astype(np.float32)


TINY_TRAIN = ["--model", "unet-sr", "--preset", "tiny", "--iters", "2", "--batch-size", "2", "--patch", "24",
              "--val-every", "2", "--device", "cpu"]


@pytest.fixture
def hr_folder(tmp_path):
    """Two small HR images in a folder: the least `mdeblur train` accepts (use with TINY_TRAIN)."""
    import cv2

    data = tmp_path / "hr"
    data.mkdir()
    for i in range(2):
        cv2.imwrite(str(data / f"{i}.png"), np.rint(smooth_image(96, 104, seed=i)[..., ::-1] * 255).astype(np.uint8))
    return data
