import pytest
import torch

from mdeblur_cli.errors import MdeblurError
from mdeblur_cli.train.losses import PerceptualLoss
from mdeblur_cli.train.vgg import (
    TORCHVISION_FILE,
    find_vgg19_weights,
    load_vgg19_features,
    vgg19_features,
)


def _torchvision_style_state(seed=0):
    torch.manual_seed(seed)
    feats = vgg19_features()
    state = {f"features.{k}": v for k, v in feats.state_dict().items()}
    state["classifier.0.weight"] = torch.zeros(4, 4)  # torchvision files also hold the classifier
    return state


def test_key_layout_matches_torchvision():
    keys = list(vgg19_features().state_dict())
    assert keys[0] == "0.weight" and keys[-1] == "34.bias" and len(keys) == 32


def test_loads_torchvision_pth_and_safetensors(tmp_path):
    state = _torchvision_style_state()
    pth = tmp_path / TORCHVISION_FILE
    torch.save(state, pth)
    model = load_vgg19_features(pth)
    assert torch.equal(model[0].weight, state["features.0.weight"])
    from safetensors.torch import save_file

    save_file(state, str(tmp_path / "vgg.safetensors"))
    assert torch.equal(load_vgg19_features(tmp_path / "vgg.safetensors")[34].bias, state["features.34.bias"])


def test_hub_cache_is_found(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    assert find_vgg19_weights() is None
    (tmp_path / "hub" / "checkpoints").mkdir(parents=True)
    torch.save(_torchvision_style_state(), tmp_path / "hub" / "checkpoints" / TORCHVISION_FILE)
    assert find_vgg19_weights() == tmp_path / "hub" / "checkpoints" / TORCHVISION_FILE


def test_wrong_files_are_reported(tmp_path):
    torch.save({"features.0.weight": torch.zeros(2)}, tmp_path / "bad.pth")
    with pytest.raises(MdeblurError, match="not VGG19"):
        load_vgg19_features(tmp_path / "bad.pth")
    with pytest.raises(MdeblurError, match="not found"):
        find_vgg19_weights(tmp_path / "missing.pth")


def test_perceptual_loss_is_zero_for_equal_images_and_has_gradients():
    loss = PerceptualLoss(vgg19_features(), layer=8)
    x = torch.rand(2, 3, 32, 32)
    assert loss(x, x).item() == 0
    y = torch.rand(2, 1, 32, 32, requires_grad=True)
    out = loss(y, torch.rand(2, 1, 32, 32))
    out.backward()
    assert out.item() > 0 and y.grad.abs().sum() > 0
    assert all(not p.requires_grad for p in loss.parameters())
