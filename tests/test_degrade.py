import torch

from mdeblur_cli.degrade import (
    DegradationSpec,
    convolve,
    disk_kernel,
    downscale,
    fire_protocol,
    gaussian_kernel,
    random_degradation,
)


def test_kernels_normalised_and_symmetric():
    for k in (gaussian_kernel(1.5), gaussian_kernel(0.5), disk_kernel(2.3), disk_kernel(1.0)):
        assert abs(k.sum().item() - 1) < 1e-6
        assert torch.allclose(k, k.flip(0)) and torch.allclose(k, k.t())


def test_gaussian_kernel_width():
    k = gaussian_kernel(2.0).double()
    r = k.shape[0] // 2
    x = torch.arange(-r, r + 1, dtype=torch.float64)
    var = (k.sum(0) * x**2).sum()
    assert abs(var.sqrt().item() - 2.0) < 0.02


def test_convolve_keeps_constants_at_borders():
    img = torch.full((3, 20, 30), 0.7)
    out = convolve(img, gaussian_kernel(2.0))
    assert torch.allclose(out, img, atol=1e-6)


def test_fire_protocol_shapes_and_blur():
    hr = torch.rand(3, 64, 48)
    lr, lr_clear = fire_protocol(hr, 1.5, 2)
    assert lr.shape == lr_clear.shape == (3, 32, 24)
    assert lr.std() < lr_clear.std()  # blur removes contrast from noise
    assert torch.allclose(lr_clear, downscale(hr, 2).clamp(0, 1))


def test_random_degradation_is_seeded_and_in_range():
    hr = torch.rand(3, 64, 64)
    spec = DegradationSpec()
    a = random_degradation(hr, spec, torch.Generator().manual_seed(3))
    b = random_degradation(hr, spec, torch.Generator().manual_seed(3))
    assert torch.equal(a[0], b[0]) and a[2] == b[2]
    assert a[0].min() >= 0 and a[0].max() <= 1
    seen = {random_degradation(hr, spec, torch.Generator().manual_seed(s))[2]["psf"] for s in range(40)}
    assert seen == {"gaussian", "disk"}
    noisy = [("peak" in random_degradation(hr, spec, torch.Generator().manual_seed(s))[2]) for s in range(60)]
    assert 0 < sum(noisy) < 60  # a noise-free share is kept
