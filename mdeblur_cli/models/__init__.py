"""Networks: the M-Deblurgan generator, the U-Net + SR baseline and the discriminator.

Every generator keeps one contract, which `restore`, `export` and training rely on and tests/test_models.py checks
for each entry of ARCHS: forward maps (N, C, H, W) of any H, W to (SR (N, C, sH, sW), deblurred (N, C, H, W)), and
the class declares `scale` (set from its config), `multiple` (the input sides it takes without padding itself:
its downsampling grid) and `context` (low-res px of context a tile needs for tiled to equal whole).
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from .discriminator import Discriminator
from .ensemble import SelfEnsemble
from .generator import PRESETS, DeblurModule, GeneratorConfig, MDeblurGAN, OptimalApproximation, SRModule
from .unet import UNET_PRESETS, UNetSR, UNetSRConfig


@dataclass(frozen=True)
class Arch:
    """One generator architecture: its name (as weights files record it), network class, config class and
    named size presets."""

    name: str
    cls: type[nn.Module]
    config_cls: type
    presets: dict

    def build(self, config: dict) -> nn.Module:
        return self.cls(self.config_cls(**config))


ARCHS: dict[str, Arch] = {
    "mdeblurgan": Arch("mdeblurgan", MDeblurGAN, GeneratorConfig, PRESETS),
    "unet-sr": Arch("unet-sr", UNetSR, UNetSRConfig, UNET_PRESETS),
}


def arch(name: str) -> Arch:
    if name not in ARCHS:
        raise KeyError(f"unknown architecture {name!r}; known: {', '.join(ARCHS)}")
    return ARCHS[name]


def build_model(name: str, config: dict) -> nn.Module:
    """Build a generator from its architecture name and config dict."""
    return arch(name).build(config)


def preset_config(name: str, preset: str, **overrides) -> dict:
    """The config dict of a named size preset, with overrides applied."""
    presets = arch(name).presets
    if preset not in presets:
        raise KeyError(f"unknown preset {preset!r}; known: {', '.join(presets)}")
    cfg = presets[preset].to_dict()
    cfg.update({k: v for k, v in overrides.items() if v is not None})
    return cfg


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


__all__ = [
    "ARCHS", "Arch", "DeblurModule", "Discriminator", "GeneratorConfig", "MDeblurGAN", "OptimalApproximation",
    "SRModule", "SelfEnsemble", "UNET_PRESETS", "UNetSR", "UNetSRConfig", "PRESETS", "arch", "build_model", "count_params",
    "preset_config",
]
