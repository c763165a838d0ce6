import pytest
import torch

from mdeblur_cli.models import ARCHS, Discriminator, build_model, count_params, preset_config

from .conftest import TINY_MDEBLURGAN, TINY_UNET


def _cases():
    """Every architecture in ARCHS at its tiny preset, and each variant its config offers (no OA, x4)."""
    for name, arch in ARCHS.items():
        tiny = arch.presets["tiny"].to_dict()
        yield name, tiny
        if "use_oa" in tiny:
            yield name, {**tiny, "use_oa": False}
        yield name, {**tiny, "scale": 4}


@pytest.mark.parametrize("arch,cfg", list(_cases()))
@pytest.mark.parametrize("size", [(32, 32), (37, 53)])
def test_generator_contract(arch, cfg, size):
    """The contract of models/__init__.py: any size in, (SR, deblurred) out; scale, multiple and context
    declared; every parameter trained."""
    model = build_model(arch, cfg)
    s = cfg["scale"]
    assert model.scale == s and model.multiple in (8, 16) and model.context > 0
    x = torch.rand(2, 3, *size)
    sr, deblurred = model(x)
    assert sr.shape == (2, 3, size[0] * s, size[1] * s)
    assert deblurred.shape == x.shape
    assert torch.isfinite(sr).all() and torch.isfinite(deblurred).all()
    (sr.mean() + deblurred.mean()).backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not torch.any(p.grad != 0)]
    assert not missing, missing



@pytest.mark.parametrize("arch,cfg", [c for c in _cases() if c[1]["scale"] == 2])
def test_declared_grid_and_context_are_the_networks_own(arch, cfg):
    """What tiling relies on: an input shifted by `multiple` gives the output shifted by multiple * scale,
    everywhere further than `context` from the crop's edge."""
    torch.manual_seed(0)
    model = build_model(arch, cfg).eval()
    m, c, s, n = model.multiple, model.context, model.scale, 12 * model.multiple
    x = torch.rand(1, 3, n + m, n + m)
    with torch.no_grad():
        full, crop = model(x)[0], model(x[..., m:, m:])[0]
    inner = slice(c * s, (n - c) * s)
    shifted = slice((m + c) * s, (m + n - c) * s)
    assert (full[..., shifted, shifted] - crop[..., inner, inner]).abs().max() < 1e-4


def test_tiny_presets_match_the_test_configs():
    assert ARCHS["mdeblurgan"].presets["tiny"].to_dict() == {**ARCHS["mdeblurgan"].config_cls().to_dict(),
                                                             **TINY_MDEBLURGAN}
    assert ARCHS["unet-sr"].presets["tiny"].to_dict() == {**ARCHS["unet-sr"].config_cls().to_dict(), **TINY_UNET}


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
def test_self_ensemble_is_equivariant_and_idempotent(size):
    from mdeblur_cli.models import SelfEnsemble

    torch.manual_seed(0)
    model = build_model("mdeblurgan", TINY_MDEBLURGAN).eval()
    ens = SelfEnsemble(model)
    x = torch.rand(1, 3, *size)
    with torch.no_grad():
        sr, deblurred = ens(x)
        plain = model(x)
        # The average over the group commutes with every element of it, including the transpose, which the
        # wrapper never applies literally: turning the input turns the output.
        for turn in (lambda t: torch.rot90(t, 1, (2, 3)), lambda t: t.transpose(2, 3), lambda t: t.flip(2)):
            got_sr, got_deblurred = ens(turn(x))
            assert torch.allclose(got_sr, turn(sr), atol=1e-5)
            assert torch.allclose(got_deblurred, turn(deblurred), atol=1e-5)
        # The ensemble of the ensemble is itself.
        if size == (32, 32):
            assert torch.allclose(SelfEnsemble(ens)(x)[0], sr, atol=1e-5)
    assert sr.shape == plain[0].shape and deblurred.shape == plain[1].shape
    assert not torch.allclose(sr, plain[0], atol=1e-4)  # a random model is not equivariant: averaging changes it
    assert count_params(ens) == count_params(model)
