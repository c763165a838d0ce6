"""VGG19 `features` in torchvision's key layout and its weight loader (the perceptual loss is in losses.py)."""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from ..errors import MdeblurError

# torchvision's VGG19 configuration 'E': channel counts, 'M' for max pooling.
CFG_E = [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M"]
TORCHVISION_FILE = "vgg19-dcbb9e9d.pth"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def vgg19_features() -> nn.Sequential:
    """VGG19 convolutional part; indices match torchvision's `features.N`."""
    layers: list[nn.Module] = []
    c = 3
    for v in CFG_E:
        if v == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(c, v, 3, padding=1), nn.ReLU(inplace=True)]
            c = v
    return nn.Sequential(*layers)


def find_vgg19_weights(path: str | Path | None = None) -> Path | None:
    """--vgg19-weights, else torch's hub cache ($TORCH_HOME or ~/.cache/torch), else None."""
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise MdeblurError(f"{p}: VGG19 weights file not found")
        return p
    home = Path(os.environ.get("TORCH_HOME", Path.home() / ".cache" / "torch"))
    cand = home / "hub" / "checkpoints" / TORCHVISION_FILE
    return cand if cand.is_file() else None


def load_vgg19_features(path: str | Path) -> nn.Sequential:
    """Load torchvision's VGG19 state dict (.pth, weights only) or a safetensors file into `features`."""
    path = Path(path)
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise MdeblurError(f"{path}: not a readable VGG19 weights file ({type(exc).__name__})") from None
    feats = {k[len("features."):]: v for k, v in state.items() if k.startswith("features.")}
    model = vgg19_features()
    try:
        model.load_state_dict(feats)
    except RuntimeError as exc:
        raise MdeblurError(f"{path}: not VGG19 features ({str(exc).splitlines()[0]})") from None
    return model
