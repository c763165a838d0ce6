import math

import numpy as np
import pytest
import torch

from mdeblur_cli.data.simulate import OBJ_X5, OBJ_X10, SimulationSpec, defocus_psf, lr_psf, rms_radius_px, simulate_pair
from mdeblur_cli.data.specimens import SPECIMENS


def test_psf_sums_to_one_and_is_symmetric():
    for dz in (0.0, 25.0, -60.0):
        p = defocus_psf(dz, 0.12, 0.54, 0.65)
        assert abs(p.sum() - 1) < 1e-5
        assert np.allclose(p, p[::-1, ::-1], atol=1e-7) and np.allclose(p, p.T, atol=1e-6)


def test_in_focus_width_matches_gaussian_approximation():
    wavelength, na, pitch = 0.54, 0.25, 0.02
    p = defocus_psf(0.0, na, wavelength, pitch, radius_px=100)
    profile = p[100]
    fwhm_um = (profile > profile.max() / 2).sum() * pitch
    sigma = fwhm_um / (2 * math.sqrt(2 * math.log(2)))
    assert abs(sigma / (0.21 * wavelength / na) - 1) < 0.10


def test_large_defocus_approaches_geometric_disk():
    dz, na, px = 120.0, 0.12, 0.65
    p = defocus_psf(dz, na, 0.54, px)
    radius_px = dz * math.tan(math.asin(na)) / px
    assert abs(rms_radius_px(p) / (radius_px / math.sqrt(2)) - 1) < 0.10


def test_blur_grows_with_defocus():
    radii = [rms_radius_px(defocus_psf(dz, 0.12, 0.54, 1.3)) for dz in (20, 40, 60, 90, 120)]
    assert all(a < b for a, b in zip(radii, radii[1:], strict=False))
    assert rms_radius_px(defocus_psf(-40, 0.12, 0.54, 1.3)) == pytest.approx(radii[1], rel=1e-3)


def test_depth_of_field_of_default_objectives():
    assert OBJ_X5.pixel_um == pytest.approx(1.3) and OBJ_X10.pixel_um == pytest.approx(0.65)
    assert OBJ_X5.depth_of_field_um(0.55) == pytest.approx(0.55 / 0.12**2 + 6.5 / (5 * 0.12))
    assert OBJ_X10.depth_of_field_um(0.55) < OBJ_X5.depth_of_field_um(0.55)


def test_simulated_pair_shapes_metadata_and_psf():
    specimen = torch.from_numpy(SPECIMENS["plant"](96, 3)).permute(2, 0, 1)
    lr, hr, meta = simulate_pair(specimen, SimulationSpec(), torch.Generator().manual_seed(0), dz_um=50.0)
    assert hr.shape == (3, 96, 96) and lr.shape == (3, 48, 48)
    assert meta["lr_pixel_um"] == pytest.approx(1.3) and meta["defocus_um"] == 50.0
    psf = lr_psf(meta)
    assert psf.shape[0] == 3 and torch.allclose(psf.sum((1, 2)), torch.ones(3), atol=1e-5)


@pytest.mark.parametrize("name", sorted(SPECIMENS))
def test_specimens_are_seeded_images(name):
    a, b, c = SPECIMENS[name](64, 1), SPECIMENS[name](64, 1), SPECIMENS[name](64, 2)
    assert a.shape == (64, 64, 3) and a.dtype == np.float32 and 0 <= a.min() and a.max() <= 1
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert a.std() > 0.02
