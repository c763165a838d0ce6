"""Networks: the M-Deblurgan generator, the U-Net + SR baseline and the discriminator."""

from __future__ import annotations

from torch import nn

from .discriminator import Discriminator
from .ensemble import SelfEnsemble
from .generator import PRESETS, DeblurModule, GeneratorConfig, MDeblurGAN, OptimalApproximation, SRModule
from .unet import UNET_PRESETS, UNetSR, UNetSRConfig

ARCHS: dict[str, tuple[type[nn.Module], type]] = {
    "mdeblurgan": (MDeblurGAN, GeneratorConfig),
    "unet-sr": (UNetSR, UNetSRConfig),
}


def build_model(arch: str, config: dict) -> nn.Module:
    """Build a generator from its architecture name and config dict."""
    if arch not in ARCHS:
        raise KeyError(f"unknown architecture {arch!r}; known: {', '.join(ARCHS)}")
    cls, cfg_cls = ARCHS[arch]
    return cls(cfg_cls(**config))


def preset_config(arch: str, preset: str, **overrides) -> dict:
    """The config dict of a named size preset, with overrides applied."""
    presets = PRESETS if arch == "mdeblurgan" else UNET_PRESETS
    if preset not in presets:
        raise KeyError(f"unknown preset {preset!r}; known: {', '.join(presets)}")
    cfg = presets[preset].to_dict()
    cfg.update({k: v for k, v in overrides.items() if v is not None})
    return cfg


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


__all__ = [
    "ARCHS", "DeblurModule", "Discriminator", "GeneratorConfig", "MDeblurGAN", "OptimalApproximation",
    "SRModule", "SelfEnsemble", "UNET_PRESETS", "UNetSR", "UNetSRConfig", "PRESETS", "build_model", "count_params", "preset_config",
]
