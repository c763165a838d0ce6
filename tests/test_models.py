import pytest
import torch

from mdeblur_cli.models import Discriminator, build_model, count_params, preset_config

from .conftest import TINY_MDEBLURGAN, TINY_UNET

CASES = [
    ("mdeblurgan", TINY_MDEBLURGAN),
    ("mdeblurgan", {**TINY_MDEBLURGAN, "use_oa": False}),
    ("mdeblurgan", {**TINY_MDEBLURGAN, "scale": 4}),
    ("unet-sr", TINY_UNET),
]


@pytest.mark.parametrize("arch,cfg", CASES)
@pytest.mark.parametrize("size", [(32, 32), (37, 53)])
def test_generator_contract(arch, cfg, size):
    model = build_model(arch, cfg)
    s = cfg.get("scale", 2)
    x = torch.rand(2, 3, *size)
    sr, deblurred = model(x)
    assert sr.shape == (2, 3, size[0] * s, size[1] * s)
    assert deblurred.shape == x.shape
    assert torch.isfinite(sr).all() and torch.isfinite(deblurred).all()
    (sr.mean() + deblurred.mean()).backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not torch.any(p.grad != 0)]
    assert not missing, missing


def test_discriminator_contract():
    d = Discriminator(width=8, stages=3)
    x = torch.rand(2, 3, 37, 53)
    logits = d(x)
    assert logits.shape == (2,) and torch.isfinite(logits).all()
    logits.sum().backward()
    assert all(p.grad is not None and torch.any(p.grad != 0) for p in d.parameters())


def test_oa_switch_removes_module():
    on = build_model("mdeblurgan", TINY_MDEBLURGAN)
    off = build_model("mdeblurgan", {**TINY_MDEBLURGAN, "use_oa": False})
    assert on.oa is not None and off.oa is None
    assert count_params(off) < count_params(on)


def test_shipped_presets_compare_as_the_paper_claims():
    """The U-Net + SR baseline has at least as many parameters as M-Deblurgan."""
    for preset in ("tiny", "small", "paper"):
        g = build_model("mdeblurgan", preset_config("mdeblurgan", preset))
        u = build_model("unet-sr", preset_config("unet-sr", preset))
        assert count_params(u) >= count_params(g)


def test_unknown_arch():
    with pytest.raises(KeyError):
        build_model("nope", {})


@pytest.mark.parametrize("size", [(32, 32), (37, 53)])
def test_self_ensemble_is_the_mean_over_the_eight_symmetries(size):
    from mdeblur_cli.models import SelfEnsemble

    torch.manual_seed(0)
    model = build_model("mdeblurgan", TINY_MDEBLURGAN).eval()
    x = torch.rand(1, 3, *size)
    with torch.no_grad():
        sr, deblurred = SelfEnsemble(model)(x)
        # By hand: transpose is rot90 then flip, so all 8 are {identity, rot90, rot180, rot270} x {flip or not}.
        outs = []
        for k in range(4):
            for flip in (False, True):
                t = torch.rot90(x, k, (2, 3))
                t = torch.flip(t, (3,)) if flip else t
                y = model(t)[0]
                y = torch.flip(y, (3,)) if flip else y
                outs.append(torch.rot90(y, -k, (2, 3)))
        want = torch.stack(outs).mean(0)
        plain = model(x)
    assert sr.shape == plain[0].shape and deblurred.shape == plain[1].shape
    assert torch.allclose(sr, want, atol=1e-6)
    assert not torch.allclose(sr, plain[0], atol=1e-4)  # a random model is not equivariant: averaging changes it
    # The ensemble of an ensemble is itself: its output is already invariant to the symmetries.
    twice = SelfEnsemble(SelfEnsemble(model))(x)[0] if size == (32, 32) else sr
    assert torch.allclose(twice, sr, atol=1e-5)
    assert count_params(SelfEnsemble(model)) == count_params(model)
