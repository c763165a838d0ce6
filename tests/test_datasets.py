import numpy as np
import pytest
import torch

from mdeblur_cli.data import RESERVED
from mdeblur_cli.data.eval import list_datasets, load_eval_set
from mdeblur_cli.data.train import TRAIN_SOURCES
from mdeblur_cli.errors import MdeblurError
from mdeblur_cli.formats.images import write_image


def test_reserved_images_are_never_training_sources():
    assert not set(RESERVED) & set(TRAIN_SOURCES)


def test_reserved_set_uses_the_fire_protocol():
    es = load_eval_set("reserved")
    assert not es.stand_in and len(es.pairs) == 4
    p = es.pairs[0]
    assert p.hr.shape[-1] == 2 * p.lr.shape[-1] and p.psf is not None
    assert es.protocol["sigma_lr_px"] == 1.5


def test_fire_stand_in_is_named_and_real_fire_is_found(tmp_path):
    es = load_eval_set("fire", data_root=tmp_path / "none")
    assert es.stand_in and "STAND-IN" in es.source and len(es.pairs) == 4
    images = tmp_path / "FIRE" / "Images"
    write_image(images / "A01_1.jpg", (np.random.default_rng(0).random((600, 1100, 3)) * 255).astype(np.uint8))
    es = load_eval_set("fire", data_root=tmp_path)
    assert not es.stand_in and len(es.pairs) == 2 and es.pairs[0].hr.shape == (3, 512, 512)
    assert next(d for d in list_datasets(tmp_path) if d["name"] == "fire")["real"]


def test_pinecones_stand_in_is_deterministic():
    a = load_eval_set("pinecones", limit=1)
    b = load_eval_set("pinecones", limit=1)
    assert a.stand_in and "STAND-IN" in a.source
    assert np.array_equal(a.pairs[0].lr.numpy(), b.pairs[0].lr.numpy())
    assert a.pairs[0].psf.shape[0] == 3


def test_folder_sets(tmp_path):
    hr_only = tmp_path / "hr_only"
    write_image(hr_only / "x.png", (np.random.default_rng(1).random((64, 80, 3)) * 255).astype(np.uint8))
    es = load_eval_set(str(hr_only))
    assert es.pairs[0].lr.shape == (3, 32, 40) and es.protocol["name"] == "FIRE"
    with pytest.raises(MdeblurError, match="not a dataset name"):
        load_eval_set(str(tmp_path / "missing"))


def test_microscope_patch_equals_the_whole_field_simulation(monkeypatch):
    """The margin around a simulated patch hides the crop's edge: a patch is the whole field's simulation at
    some offset and some allowed defocus (found by search, not by replaying the sampler's draws)."""
    from dataclasses import replace

    import torch

    import mdeblur_cli.data.train as dt
    from mdeblur_cli.data.simulate import simulate_pair

    monkeypatch.setattr(dt, "MICRO_DEFOCUS_UM", (40.0, 40.0))  # |dz| fixed: two candidates, +-40 um
    mp = dt.MicroscopePatches(seeds=[7], size=200, peak_range=None)
    lr, lr_clear, hr = mp.sample(24, torch.Generator().manual_seed(3))
    assert lr.shape == (3, 24, 24) and hr.shape == (3, 48, 48) and lr_clear.shape == lr.shape
    src, spec, m = mp.pool[0], replace(mp.spec, peak=None), dt.MICRO_MARGIN
    g = torch.Generator()
    _, field_hr, _ = simulate_pair(src, spec, g, dz_um=40.0)  # the in-focus HR does not depend on dz
    err = ((field_hr.unfold(1, 48, 1).unfold(2, 48, 1) - hr[:, None, None]) ** 2).sum((0, 3, 4))
    y, x = divmod(int(err.argmin()), err.shape[1])
    assert err.min() < 1e-6 and m <= y <= 200 - 48 - m and m <= x <= 200 - 48 - m
    # the field from the crop's corner (so the LR bins line up) at either sign of the defocus
    best = min((simulate_pair(src[:, y - m :, x - m :], spec, g, dz_um=dz)[0][:, m // 2 : m // 2 + 24,
                m // 2 : m // 2 + 24] - lr).abs().max().item() for dz in (40.0, -40.0))
    assert best < 1e-5
    # defocus blurs: the LR has less high-frequency energy than the downscaled in-focus image
    assert lr.diff(dim=-1).abs().mean() < lr_clear.diff(dim=-1).abs().mean()


def test_sampler_microscope_share_is_seeded_and_off_by_default():
    import torch

    from mdeblur_cli.data import Pair, skimage_image, to_tensor
    from mdeblur_cli.data.degrade import DegradationSpec
    from mdeblur_cli.data.train import PatchSampler

    src = [Pair(name="camera", hr=to_tensor(skimage_image("camera")[:200, :200]))]
    a = PatchSampler(src, 24, DegradationSpec(), seed=1, microscope_prob=0.5).batch(4)
    b = PatchSampler(src, 24, DegradationSpec(), seed=1, microscope_prob=0.5).batch(4)
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    assert PatchSampler(src, 24, DegradationSpec(), seed=1).microscope is None
    with pytest.raises(MdeblurError, match="scale 2"):
        PatchSampler([Pair(name="camera", hr=to_tensor(skimage_image("camera")))], 24, DegradationSpec(scale=4), seed=1, microscope_prob=0.5)


def test_microscope_validation_uses_held_out_seeds():
    from mdeblur_cli.data import TRAIN_SEED_LIMIT
    from mdeblur_cli.data.eval import PINECONE_SEED0
    from mdeblur_cli.data.train import MICRO_POOL, MICRO_VAL_SEED, microscope_validation

    assert MICRO_POOL <= MICRO_VAL_SEED < TRAIN_SEED_LIMIT <= PINECONE_SEED0
    pairs = microscope_validation(count=2, size=96)
    assert len(pairs) == 2 and pairs[0].hr.shape[-1] == 2 * pairs[0].lr.shape[-1]


def test_range_optics_cover_the_common_dry_objectives_with_bounded_blur():
    import math

    from mdeblur_cli.data.simulate import geometric_radius_um
    from mdeblur_cli.data.train import RANGE_BLUR_LR_PX, RANGE_OBJECTIVES, range_optics

    g = torch.Generator().manual_seed(0)
    seen = set()
    for _ in range(200):
        spec, dz = range_optics(g)
        lo = spec.objective_lr
        seen.add((lo.magnification, lo.na))
        assert spec.scale == 2 and spec.objective_hr.na >= lo.na
        r_lr_px = geometric_radius_um(dz, lo.na) / lo.pixel_um
        assert RANGE_BLUR_LR_PX[0] - 1e-6 <= r_lr_px <= RANGE_BLUR_LR_PX[1] + 1e-6
        assert math.isfinite(dz) and dz > 0
    assert seen == set(RANGE_OBJECTIVES)


def test_range_microscope_patches_are_seeded_and_sized():
    from mdeblur_cli.data.train import MicroscopePatches, microscope_validation

    mp = MicroscopePatches(seeds=range(3), optics="range")
    a = [mp.sample(24, torch.Generator().manual_seed(3)) for _ in range(2)]
    assert all(torch.equal(x, y) for x, y in zip(a[0], a[1], strict=True))
    lr, lr_clear, hr = a[0]
    assert lr.shape == lr_clear.shape == (3, 24, 24) and hr.shape == (3, 48, 48)
    assert len(microscope_validation(count=1, size=96, optics="range")) == 2
    with pytest.raises(MdeblurError, match="optics"):
        MicroscopePatches(seeds=range(1), optics="x7")


def test_the_defocus_set_is_the_reserved_images_through_physical_optics():
    from mdeblur_cli.evaluate.benchmark import header_line

    es = load_eval_set("defocus", limit=1)
    p = es.pairs[0]
    assert not es.stand_in and p.name in RESERVED and p.psf is not None and p.psf.dim() == 3
    assert p.hr.shape[-1] == 2 * p.lr.shape[-1] and p.psf.shape[-1] >= 9  # 50 um at 5x/0.12: a wide disk
    rep = {"source": es.source, "stand_in": False, "protocol": es.protocol, "dataset": "defocus",
           "metric": {"border_crop_px": 2}}
    assert "defocused 50-50 um" in header_line(rep)
