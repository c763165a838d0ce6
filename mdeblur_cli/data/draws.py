"""Seeded random draws, one style for the whole package: each call takes exactly one number from the
generator, so that a seed gives the same sequence wherever the draws are made."""

from __future__ import annotations

import math

import torch


def unit(generator: torch.Generator) -> float:
    """Uniform in [0, 1)."""
    return torch.rand((), generator=generator).item()


def uniform(generator: torch.Generator, lo: float, hi: float) -> float:
    """Uniform in [lo, hi)."""
    return lo + (hi - lo) * unit(generator)


def log_uniform(generator: torch.Generator, lo: float, hi: float) -> float:
    """Log-uniform in [lo, hi): each factor of two is as likely as any other."""
    return math.exp(uniform(generator, math.log(lo), math.log(hi)))


def chance(generator: torch.Generator, p: float) -> bool:
    """True with probability p."""
    return unit(generator) < p
