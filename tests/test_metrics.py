import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity
from skimage.transform import resize

from mdeblur_cli.data.degrade import convolve, gaussian_kernel
from mdeblur_cli.evaluate.metrics import crop_border, psnr, rgb_to_y, ssim

from .conftest import smooth_image


def pairs():
    ref = smooth_image(64, 80, seed=1)
    rng = np.random.default_rng(0)
    t = torch.from_numpy(ref).permute(2, 0, 1)
    blurred = convolve(t, gaussian_kernel(1.5)).permute(1, 2, 0).numpy()
    noisy = np.clip(ref + rng.normal(0, 0.05, ref.shape), 0, 1).astype(np.float32)
    resized = resize(resize(ref, (32, 40), anti_aliasing=True), (64, 80)).astype(np.float32)
    return [(ref, blurred), (ref, noisy), (ref, resized)]


@pytest.mark.parametrize("border", [0, 2])
def test_against_scikit_image(border):
    for ref, test in pairs():
        t = torch.from_numpy(test).permute(2, 0, 1)
        r = torch.from_numpy(ref).permute(2, 0, 1)
        rc, tc = (x[border : x.shape[0] - border, border : x.shape[1] - border] for x in (ref, test))
        want_p = peak_signal_noise_ratio(rc, tc, data_range=1)
        want_s = structural_similarity(rc, tc, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                       data_range=1, channel_axis=-1)
        assert abs(psnr(t, r, border).item() - want_p) <= 1e-3
        assert abs(ssim(t, r, border).item() - want_s) <= 1e-4


def test_gray_and_batch():
    ref, test = pairs()[1]
    a = torch.from_numpy(test[..., 0])
    b = torch.from_numpy(ref[..., 0])
    want = structural_similarity(test[..., 0], ref[..., 0], gaussian_weights=True, sigma=1.5,
                                 use_sample_covariance=False, data_range=1)
    assert abs(ssim(a, b).item() - want) <= 1e-4
    batch = torch.stack([a[None], a[None]])
    assert ssim(batch, torch.stack([b[None], b[None]])).shape == (2,)


def test_identical_images():
    x = torch.rand(1, 3, 32, 32)
    assert ssim(x, x).item() == pytest.approx(1.0, abs=1e-6)
    assert psnr(x, x).item() > 150


def test_y_channel_and_crop():
    white = torch.ones(1, 3, 8, 8)
    assert torch.allclose(rgb_to_y(white), torch.full((1, 1, 8, 8), 235 / 255), atol=1e-6)
    assert crop_border(white, 2).shape == (1, 3, 4, 4)
