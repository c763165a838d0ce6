import numpy as np
import pytest

from mdeblur_cli.restore.normalize import choose, percentile_bounds, resolve_mode, strided_sample


def test_auto_uses_range_for_8_bit_and_percentiles_otherwise():
    assert resolve_mode("auto", np.uint8) == "range"
    assert resolve_mode("auto", np.uint16) == "percentile"
    assert resolve_mode("auto", np.float32) == "percentile"
    with pytest.raises(ValueError):
        resolve_mode("zscore", np.uint8)


def test_range_of_8_bit_is_division_by_255():
    arr = np.array([[0, 51], [204, 255]], np.uint8)
    n = choose(arr, "auto")
    assert (n.mode, n.lo, n.hi) == ("range", 0.0, 255.0)
    assert np.allclose(n.apply(arr.astype(np.float32)), arr / 255)


def test_percentiles_of_a_camera_image_and_the_exact_inverse():
    rng = np.random.default_rng(0)
    arr = rng.integers(100, 4201, (300, 200)).astype(np.uint16)  # 12-bit data in a 16-bit file
    n = choose(arr, "auto", (1.0, 99.0))
    lo, hi = np.percentile(arr, [1, 99])
    assert n.mode == "percentile" and n.lo == pytest.approx(lo) and n.hi == pytest.approx(hi)
    x = arr.astype(np.float64)
    assert np.allclose(n.invert(n.apply(x)), x)
    y = n.apply(x)
    assert np.mean(y < 0) == pytest.approx(0.01, abs=0.003) and np.mean(y > 1) == pytest.approx(0.01, abs=0.003)


def test_percentiles_come_from_a_strided_sample_of_large_images():
    rng = np.random.default_rng(1)
    big = rng.normal(1000, 50, (2048, 2048)).astype(np.float32)
    sample = strided_sample(big, max_samples=1 << 16)
    assert sample.size <= 1 << 16
    lo, hi = percentile_bounds(big, (0.1, 99.9))
    exact = np.percentile(big, [0.1, 99.9])
    assert abs(lo - exact[0]) < 5 and abs(hi - exact[1]) < 5


def test_a_constant_image_reaches_the_network_as_mid_grey():
    n = choose(np.full((16, 16), 700, np.uint16), "percentile")
    assert (n.lo, n.hi) == (699.5, 700.5) and n.apply(700.0) == 0.5
    f = choose(np.full((4, 4), 0.25, np.float32), "auto")
    assert f.apply(np.float32(0.25)) == pytest.approx(0.5, abs=1e-4) and f.hi > f.lo
    with pytest.raises(ValueError, match="two numbers"):
        percentile_bounds(np.zeros((4, 4)), (5,))


def test_floats_outside_unit_range_use_their_own_range_and_none_keeps_them():
    arr = np.linspace(-2, 6, 64, dtype=np.float32).reshape(8, 8)
    n = choose(arr, "range")
    assert (n.lo, n.hi) == (-2.0, 6.0)
    assert (choose(arr, "none").lo, choose(arr, "none").hi) == (0.0, 1.0)
    assert (choose(np.zeros((4, 4), np.uint16), "none").hi) == 65535.0
