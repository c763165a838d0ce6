import numpy as np
import skimage.data
import torch
from skimage.restoration import richardson_lucy as sk_richardson_lucy

from mdeblur_cli.data.degrade import convolve, gaussian_kernel
from mdeblur_cli.evaluate.metrics import psnr
from mdeblur_cli.evaluate.rl import richardson_lucy

from .conftest import smooth_image


def _reflect_padded_reference(blurred: torch.Tensor, psf: torch.Tensor, iterations: int) -> np.ndarray:
    """scikit-image's RL in float64 on the image reflect-padded by twice the PSF size, cropped back."""
    pad = 2 * max(psf.shape)
    return np.stack([
        sk_richardson_lucy(np.pad(blurred[c].double().numpy(), pad, mode="reflect"), psf.double().numpy(),
                           num_iter=iterations)[pad:-pad, pad:-pad]
        for c in range(blurred.shape[0])
    ])


def test_matches_reflect_padded_float64_reference():
    img = torch.from_numpy(smooth_image(40, 56)).permute(2, 0, 1)
    psf = gaussian_kernel(1.5)
    blurred = convolve(img, psf)
    out = richardson_lucy(blurred, psf, iterations=30)
    ref = _reflect_padded_reference(blurred, psf, 30)
    assert np.abs(out.numpy() - ref).max() < 1e-4


def test_deconvolution_sharpens_and_keeps_borders():
    photo = skimage.data.astronaut()[100:228, 100:228].astype(np.float32) / 255
    img = torch.from_numpy(photo).permute(2, 0, 1)
    psf = gaussian_kernel(1.5)
    blurred = convolve(img, psf)
    out = richardson_lucy(blurred, psf, iterations=30)
    assert psnr(out, img).item() > psnr(blurred, img).item() + 2
    err = (out - img).abs()
    assert err[..., :4, :].mean() < 2 * err.mean()  # reflect padding: no dark frame at the border
    zero_padded = richardson_lucy(blurred, psf, iterations=30, pad=0)
    assert (zero_padded - img).abs()[..., :2, :].mean() > 2 * err[..., :2, :].mean()


def test_per_channel_psfs():
    img = torch.from_numpy(smooth_image(40, 40, seed=3)).permute(2, 0, 1)
    psfs = torch.stack([gaussian_kernel(s, radius=6) for s in (1.0, 1.5, 2.0)])
    blurred = torch.stack([convolve(img[c : c + 1], psfs[c])[0] for c in range(3)])
    joint = richardson_lucy(blurred, psfs, iterations=10)
    for c in range(3):
        single = richardson_lucy(blurred[c : c + 1], psfs[c], iterations=10)
        assert torch.allclose(joint[c : c + 1], single, atol=1e-5)


def test_even_sized_psf_matches_the_reference_too():
    img = torch.from_numpy(smooth_image(40, 48, seed=5)).permute(2, 0, 1)
    psf = torch.rand(4, 6, generator=torch.Generator().manual_seed(0)) + 0.1
    psf /= psf.sum()
    blurred = convolve(img, gaussian_kernel(1.0))
    out = richardson_lucy(blurred, psf, iterations=10)
    ref = _reflect_padded_reference(blurred, psf, 10)
    assert np.abs(out.numpy() - ref).max() < 1e-4


def test_fft_sizes_are_3_smooth_and_minimal():
    from mdeblur_cli.evaluate.rl import fft_size

    assert [fft_size(n) for n in (1, 5, 7, 564, 576, 577)] == [1, 6, 8, 576, 576, 648]


def test_separable_path_matches_fft_path_and_the_reference():
    from mdeblur_cli.evaluate.rl import separable_factors

    img = torch.from_numpy(smooth_image(40, 56, seed=7)).permute(2, 0, 1)
    psf = gaussian_kernel(1.5)
    col, row = separable_factors(psf)
    assert torch.allclose(col[0][:, None] * row[0][None, :], psf, atol=1e-7)
    blurred = convolve(img, psf)
    sep = richardson_lucy(blurred, psf, iterations=30, method="separable")
    fft = richardson_lucy(blurred, psf, iterations=30, method="fft")
    assert torch.allclose(sep, fft, atol=2e-5)
    assert np.abs(sep.numpy() - _reflect_padded_reference(blurred, psf, 30)).max() < 1e-4


def test_separable_path_with_rectangular_and_per_channel_psfs():
    img = torch.from_numpy(smooth_image(36, 44, seed=8)).permute(2, 0, 1)
    g = torch.Generator().manual_seed(1)
    cols, rows = torch.rand(3, 5, generator=g) + 0.1, torch.rand(3, 8, generator=g) + 0.1  # even width: centre 3
    psfs = cols[:, :, None] * rows[:, None, :]
    psfs /= psfs.sum((-1, -2), keepdim=True)
    blurred = convolve(img, gaussian_kernel(1.0))
    sep = richardson_lucy(blurred, psfs, iterations=10, method="separable")
    fft = richardson_lucy(blurred, psfs, iterations=10, method="fft")
    assert torch.allclose(sep, fft, atol=2e-5)
    ref = np.stack([_reflect_padded_reference(blurred[c : c + 1], psfs[c], 10)[0] for c in range(3)])
    assert np.abs(sep.numpy() - ref).max() < 1e-4


def test_a_disk_psf_is_not_separable_and_auto_takes_the_fft_path():
    import pytest

    from mdeblur_cli.evaluate.rl import separable_factors

    yy, xx = torch.meshgrid(torch.arange(9.0) - 4, torch.arange(9.0) - 4, indexing="ij")
    disk = ((yy**2 + xx**2) <= 12).float()
    disk /= disk.sum()
    assert separable_factors(disk) is None
    blurred = convolve(torch.from_numpy(smooth_image(32, 32, seed=9)).permute(2, 0, 1), disk)
    assert torch.equal(richardson_lucy(blurred, disk, 5), richardson_lucy(blurred, disk, 5, method="fft"))
    with pytest.raises(ValueError, match="not separable"):
        richardson_lucy(blurred, disk, 5, method="separable")
    with pytest.raises(ValueError, match="unknown RL method"):
        richardson_lucy(blurred, disk, 5, method="spatial")
