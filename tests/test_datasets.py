import numpy as np
import pytest

from mdeblur_cli.data import RESERVED
from mdeblur_cli.data.eval import list_datasets, load_eval_set
from mdeblur_cli.data.train import TRAIN_SOURCES
from mdeblur_cli.errors import MdeblurError
from mdeblur_cli.io import write_image


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


def test_microscope_patch_equals_the_whole_field_simulation():
    """The margin around a simulated patch hides the crop's edge: the patch is the full simulation's region."""
    import torch

    from mdeblur_cli.data.train import MICRO_MARGIN, MicroscopePatches
    from mdeblur_cli.simulate import simulate_pair

    mp = MicroscopePatches(seeds=[7], size=200, peak_range=None)
    g = torch.Generator().manual_seed(3)
    state = g.get_state()
    lr, lr_clear, hr = mp.sample(24, g)
    assert lr.shape == (3, 24, 24) and hr.shape == (3, 48, 48) and lr_clear.shape == lr.shape
    # replay the draws to know where the patch came from
    g.set_state(state)
    side = 48 + 2 * MICRO_MARGIN
    src = mp.pool[int(torch.randint(1, (), generator=g))]
    y = int(torch.randint(src.shape[-2] - side + 1, (), generator=g))
    x = int(torch.randint(src.shape[-1] - side + 1, (), generator=g))
    lo, hi = 10.0, 120.0
    dz = round(lo + (hi - lo) * torch.rand((), generator=g).item())
    dz = float(dz if torch.rand((), generator=g).item() < 0.5 else -dz)
    from dataclasses import replace

    # the field from the patch's corner to the specimen's far edges: only the near edges are the crop's
    full_lr, full_hr, _ = simulate_pair(src[:, y:, x:], replace(mp.spec, peak=None), g, dz_um=dz)
    m = MICRO_MARGIN
    assert torch.allclose(hr, full_hr[:, m : m + 48, m : m + 48], atol=1e-5)
    assert torch.allclose(lr, full_lr[:, m // 2 : m // 2 + 24, m // 2 : m // 2 + 24], atol=1e-5)
    # defocus blurs: the LR has less high-frequency energy than the downscaled in-focus image
    assert lr.diff(dim=-1).abs().mean() < lr_clear.diff(dim=-1).abs().mean()


def test_sampler_microscope_share_is_seeded_and_off_by_default():
    import torch

    from mdeblur_cli.data import Pair, skimage_image, to_tensor
    from mdeblur_cli.data.train import PatchSampler
    from mdeblur_cli.degrade import DegradationSpec

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
