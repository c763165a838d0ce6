import torch

from mdeblur_cli.data.degrade import (
    DegradationSpec,
    convolve,
    disk_kernel,
    downscale,
    fire_protocol,
    gaussian_kernel,
    jpeg_compress,
    quantize,
    random_degradation,
    random_dim,
    random_encoding,
    random_noise,
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
    assert all(torch.equal(x, y) for x, y in zip(a[:3], b[:3], strict=True)) and a[3] == b[3]
    draws = [random_degradation(hr, spec, torch.Generator().manual_seed(s))[3] for s in range(80)]
    assert {d["psf"] for d in draws} == {"gaussian", "disk"}
    assert 0 < sum("peak" in d for d in draws) < 80  # a noise-free share is kept
    assert {d["bits"] for d in draws} == {8, 12, "float"}
    assert any("jpeg_quality" in d for d in draws) and any("gain" in d for d in draws)
    for s in range(20):  # range-normalised (8-bit) inputs stay in [0, 1] and keep the target as it was
        lr, lr_clear, target, d = random_degradation(hr, spec, torch.Generator().manual_seed(s))
        if d["normalize"] == "range" and "gain" not in d:
            assert lr.min() >= 0 and lr.max() <= 1 and torch.equal(target, hr)


def test_noise_is_drawn_in_every_branch_unless_asked_otherwise():
    hr = torch.rand(3, 32, 32)
    protocol_only = DegradationSpec(protocol_prob=1.0, noise_prob=1.0)
    assert "peak" in random_degradation(hr, protocol_only, torch.Generator().manual_seed(0))[3]
    old = DegradationSpec(protocol_prob=1.0, noise_prob=1.0, noise_all_branches=False)
    assert "peak" not in random_degradation(hr, old, torch.Generator().manual_seed(0))[3]


def test_quantize_rounds_to_the_levels_of_a_file():
    x = torch.linspace(-0.1, 1.1, 1000)
    q8 = quantize(x, 8)
    assert torch.allclose(q8 * 255, torch.round(q8 * 255)) and q8.min() == 0 and q8.max() == 1
    assert (quantize(x.clamp(0, 1), 12) - x.clamp(0, 1)).abs().max() <= 0.5 / 4095 + 1e-7
    assert torch.equal(quantize(x, 8), quantize(x, 8))


def test_jpeg_is_lossy_deterministic_and_8_bit():
    img = torch.rand(3, 40, 48)
    a, b = jpeg_compress(img, 60), jpeg_compress(img, 60)
    assert torch.equal(a, b) and a.shape == img.shape
    assert torch.allclose(a * 255, torch.round(a * 255), atol=1e-4)
    err60 = (jpeg_compress(img, 60) - img).abs().mean()
    err95 = (jpeg_compress(img, 95) - img).abs().mean()
    assert err95 < err60  # quality matters
    gray = jpeg_compress(torch.rand(1, 16, 16), 90)
    assert gray.shape == (1, 16, 16)


def test_dim_noise_and_encoding_are_seeded_pure_and_return_their_parameters():
    spec = DegradationSpec(dim_prob=1.0, noise_prob=1.0, bits8_prob=0.0, bits12_prob=1.0)
    img = torch.rand(3, 32, 32)
    before = img.clone()
    (d1,), p1 = random_dim((img,), spec, torch.Generator().manual_seed(5))
    (d2,), p2 = random_dim((img,), spec, torch.Generator().manual_seed(5))
    assert torch.equal(d1, d2) and p1 == p2 and torch.equal(img, before)
    assert 0.05 <= p1["gain"] <= 1 and 0 <= p1["offset"] <= 0.1
    assert torch.allclose(d1, img * p1["gain"] + p1["offset"])
    n1, q1 = random_noise(img, spec, torch.Generator().manual_seed(6))
    n2, q2 = random_noise(img, spec, torch.Generator().manual_seed(6))
    assert torch.equal(n1, n2) and q1 == q2 and 50 <= q1["peak"] <= 5000
    lr, (t,), e = random_encoding(d1, (img,), spec, torch.Generator().manual_seed(7))
    assert e["bits"] == 12 and e["normalize"] == "percentile"
    # the target went through the same affine map as the input
    lo, hi = e["norm_lo"], e["norm_hi"]
    assert torch.allclose(t, (img - lo) / (hi - lo), atol=1e-5)
    assert torch.allclose(lr, (quantize(d1, 12) - lo) / (hi - lo), atol=1e-5)


def test_convolve_takes_one_psf_or_one_per_channel():
    from mdeblur_cli.data.degrade import convolve, disk_kernel, gaussian_kernel

    img = torch.rand(3, 40, 36)
    psfs = [gaussian_kernel(1.0, radius=4), disk_kernel(2.0), gaussian_kernel(2.0, radius=4)]
    side = max(p.shape[-1] for p in psfs)
    stack = torch.stack([torch.nn.functional.pad(p, [(side - p.shape[-1]) // 2] * 4) for p in psfs])
    per_channel = convolve(img, stack)
    for c, p in enumerate(psfs):
        assert torch.allclose(per_channel[c], convolve(img[c : c + 1], p)[0], atol=1e-6)
    assert per_channel.shape == img.shape
