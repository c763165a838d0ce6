"""Training data: the built-in sources, HR-only and paired folders, their validation strips, and the seeded patch
sampler (synthetic degradations, zoom, soft content and simulated microscope pairs)."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import MdeblurError
from ..formats.images import list_images
from . import Pair, _readable, load_pairs, skimage_image, to_tensor
from .degrade import DegradationSpec, downscale, random_degradation, random_encoding
from .draws import chance, uniform

# Bundled, natural or textured images (no synthetic test patterns); cat duplicates chelsea.
TRAIN_SOURCES = (
    "astronaut", "brick", "camera", "chelsea", "clock", "coffee", "coins", "colorwheel", "grass",
    "gravel", "hubble_deep_field", "logo", "moon", "page", "rocket", "text",
)
VAL_FRACTION = 0.2  # right-most share of each training image held out for validation
VAL_SEED = 1_000_003  # validation degradations use seeds from here, fixed across runs


def load_sources(root: str | Path | None, scale: int) -> tuple[list[Pair], str]:
    """Training images and a description: HR-only pairs (builtin or an HR-only folder; their input is simulated
    per patch) or real pairs (an lr/ + hr/ folder)."""
    if root is None or str(root) == "builtin":
        return ([Pair(name=n, hr=to_tensor(skimage_image(n))) for n in TRAIN_SOURCES],
                "scikit-image bundled images (reserved excluded)")
    root = Path(root)
    if not root.is_dir():
        raise MdeblurError(f"{root}: not a folder")
    if (root / "lr").is_dir() and (root / "hr").is_dir():
        return load_pairs(root, scale), f"paired folder {root}"
    files = list_images(root, recursive=True)
    if not files:
        raise MdeblurError(f"{root}: no images found (expected image files, or lr/ and hr/ folders)")
    images = [Pair(name=f.stem, hr=to_tensor(img)) for f in files if (img := _readable(f)) is not None]
    if not images:
        raise MdeblurError(f"{root}: none of its {len(files)} images could be read")
    return images, f"HR-only folder {root}"


def split_columns(
    t: torch.Tensor, fraction: float = VAL_FRACTION, multiple: int = 4, min_val: int = 32
) -> tuple[torch.Tensor, torch.Tensor]:
    """Split (C, H, W) into a left training part and a right validation strip at least `min_val` wide."""
    w = t.shape[-1]
    cut = min(int(round(w * (1 - fraction))), w - min_val) // multiple * multiple
    return t[..., :cut], t[..., cut:]


def split_sources(sources: list[Pair], scale: int) -> tuple[list[Pair], list[Pair]]:
    """Training parts and validation strips (the right-most VAL_FRACTION) of every source."""
    train, val = [], []
    for src in sources:
        if src.lr is not None:
            lr_train, lr_val = split_columns(src.lr, min_val=16)
            cut = lr_train.shape[-1] * scale
            train.append(Pair(name=src.name, lr=lr_train, hr=src.hr[..., :cut]))
            val.append(Pair(name=src.name, lr=lr_val, hr=src.hr[..., cut : cut + lr_val.shape[-1] * scale]))
        else:
            t, v = split_columns(src.hr, multiple=4 * scale, min_val=16 * scale)
            train.append(Pair(name=src.name, hr=t))
            val.append(Pair(name=src.name, hr=v))
    return train, val


def validation_set(
    val_sources: list[Pair], spec: DegradationSpec, copies: int = 2, soft: bool = False, microscope: str | None = None
) -> list[Pair]:
    """Fixed validation pairs: each HR-only strip degraded `copies` times with fixed seeds (and, with `soft`, once
    more with its ground truth softened), real pairs as they are; with `microscope` (x5 or range), plus held-out
    simulated microscope pairs of those optics."""
    pairs = microscope_validation(encoding=spec, optics=microscope) if microscope else []
    for i, src in enumerate(val_sources):
        if src.lr is not None:
            pairs.append(src)
            continue
        s = spec.scale
        h, w = src.hr.shape[-2] // s * s, src.hr.shape[-1] // s * s
        if min(h, w) < 16 * s:
            continue
        hr = src.hr[:, :h, :w]
        for c in range(copies):
            g = torch.Generator().manual_seed(VAL_SEED + copies * i + c)
            lr, _, target, _ = random_degradation(hr, spec, g)
            pairs.append(Pair(name=f"{src.name}#{c}", lr=lr, hr=target))
        if soft:
            g = torch.Generator().manual_seed(VAL_SEED - 1 - i)
            lr, _, target, _ = random_degradation(soften(hr, g), spec, g)
            pairs.append(Pair(name=f"{src.name}#soft", lr=lr, hr=target))
    return pairs


MICRO_POOL = 24  # procedural specimens (seeds 0..23) simulated for the microscope share of training
MICRO_VAL_SEED = 50_000  # held-out specimen seeds for validation; both ranges below TRAIN_SEED_LIMIT
MICRO_VAL_COUNT = 4  # held-out simulated pairs in the validation set
MICRO_MARGIN = 40  # HR px simulated around a patch: covers the widest training defocus PSF (radius 37)
MICRO_DEFOCUS_UM = (10.0, 120.0)  # |dz| range of the training share (the pinecones stand-in uses 30-120)
MICRO_PEAK_RANGE = (300.0, 3000.0)  # photons at white
MICRO_REAL_SIDE = 256  # HR side of the real training-image crops also put through the optics
MICRO_REAL_MAX = 48  # at most this many such crops
# "range" optics: common dry objectives for the low-res image, each imaged at twice the magnification for the
# ground truth (the NA of that objective doubled, capped at 0.9). Defocus is drawn by the geometric blur radius
# it gives in low-res pixels (log-uniform), so every objective covers mild to strong blur.
RANGE_OBJECTIVES = ((4, 0.10), (5, 0.12), (5, 0.15), (10, 0.25), (10, 0.30), (20, 0.40), (20, 0.45))
RANGE_BLUR_LR_PX = (0.5, 10.0)  # geometric defocus radius, low-res px
RANGE_PEAK = (200.0, 5000.0)  # photons at white (log-uniform); RANGE_CLEAN_PROB of patches are noise-free
RANGE_CLEAN_PROB = 0.15


def range_optics(generator: torch.Generator):
    """A drawn (SimulationSpec without noise, |dz| um) from the common dry objectives and a blur radius."""
    from .simulate import Objective, SimulationSpec

    mag, na = RANGE_OBJECTIVES[int(torch.randint(len(RANGE_OBJECTIVES), (), generator=generator))]
    lo = Objective(mag, na)
    hi = Objective(2 * mag, min(2 * na, 0.9))
    r_px = float(np.exp(uniform(generator, *np.log(RANGE_BLUR_LR_PX))))
    dz = r_px * lo.pixel_um / math.tan(math.asin(na))
    return SimulationSpec(lo, hi, (0.0, max(dz, 1.0) * 2), peak=None), dz


def real_specimens(hr: torch.Tensor, side: int) -> list[torch.Tensor]:
    """Non-overlapping side x side crops of a (training) HR image, to be used as specimens for the optics."""
    ny, nx = hr.shape[-2] // side, hr.shape[-1] // side
    return [hr[:, i * side : (i + 1) * side, j * side : (j + 1) * side] for i in range(ny) for j in range(nx)]


def procedural_specimen(index: int, seed: int, size: int) -> torch.Tensor:
    """A (3, size, size) specimen; its kind (plant, fundus, fibres) cycles with `index`."""
    from .specimens import SPECIMENS

    kinds = list(SPECIMENS.values())
    return to_tensor(kinds[index % len(kinds)](size, seed))


class MicroscopePatches:
    """Simulated microscope pairs: seeded procedural specimens through the x5-defocus/x10 optics of simulate.py.

    Each patch draws a specimen, a defocus |dz| in MICRO_DEFOCUS_UM (either sign) and a photon count, and
    simulates a region MICRO_MARGIN wider than the patch so the PSF never sees the crop's edge. With
    optics="range" it draws the objective too (RANGE_OBJECTIVES), the defocus by its blur in low-res pixels, and
    200-5000 photons or none; the margin then follows the PSF drawn.
    """

    def __init__(self, seeds=range(MICRO_POOL), size: int = 256,
                 peak_range: tuple[float, float] | None = MICRO_PEAK_RANGE, real: list[torch.Tensor] = (),
                 encoding: DegradationSpec | None = None, optics: str = "x5") -> None:
        from .simulate import SimulationSpec

        if optics not in ("x5", "range"):
            raise MdeblurError(f"microscope optics {optics!r}: use x5 or range")
        self.optics = optics
        self.pool = [procedural_specimen(s, s, size) for s in seeds] + list(real)
        self.spec = SimulationSpec()
        self.peak_range = peak_range  # None: noise-free
        self.encoding = encoding  # None: the LR stays float; else stored and normalised as a user's file

    def sample(self, patch_lr: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        from .simulate import simulate_pair

        g, s = generator, self.spec.scale
        p_hr = patch_lr * s
        src = self.pool[int(torch.randint(len(self.pool), (), generator=g))]
        spec, m, dz, peak = self._draw_optics(g)
        side = p_hr + 2 * m
        if min(src.shape[-2:]) < side:
            raise MdeblurError(f"simulated specimens are {src.shape[-1]} px; patch {patch_lr} is too large for them")
        y = int(torch.randint(src.shape[-2] - side + 1, (), generator=g))
        x = int(torch.randint(src.shape[-1] - side + 1, (), generator=g))
        dz = float(dz if chance(g, 0.5) else -dz)
        lr, hr, _ = simulate_pair(src[:, y : y + side, x : x + side], replace(spec, peak=peak), g, dz_um=dz)
        hr = hr[:, m : m + p_hr, m : m + p_hr]
        lr = lr[:, m // s : m // s + patch_lr, m // s : m // s + patch_lr]
        lr_clear = downscale(hr, s).clamp(0, 1)
        if self.encoding is not None:
            lr, (lr_clear, hr), _ = random_encoding(lr, (lr_clear, hr), self.encoding, g)
        return lr, lr_clear, hr

    def _draw_optics(self, g: torch.Generator):
        """(spec, margin in HR px, |dz| um, photons or None) for one patch."""
        if self.optics == "x5":
            lo, hi = MICRO_DEFOCUS_UM
            dz = float(round(uniform(g, lo, hi)))  # whole um: the PSF cache stays small
            peak = None
            if self.peak_range is not None:
                plo, phi = np.log(self.peak_range)
                peak = float(np.exp(uniform(g, plo, phi)))
            return self.spec, MICRO_MARGIN, dz, peak
        from .simulate import cached_rgb_psfs

        spec, dz = range_optics(g)
        dz = max(1.0, float(round(dz)))  # whole um: the PSF cache stays small
        peak = None if chance(g, RANGE_CLEAN_PROB) else float(np.exp(uniform(g, *np.log(RANGE_PEAK))))
        radius = cached_rgb_psfs(dz, spec.objective_lr, spec.objective_hr.pixel_um).shape[-1] // 2
        margin = -(-(radius + 1) // (2 * spec.scale)) * 2 * spec.scale  # a multiple of 2s covering the PSF
        return spec, max(margin, MICRO_MARGIN), dz, peak


def microscope_validation(count: int = MICRO_VAL_COUNT, size: int = 192,
                          encoding: DegradationSpec | None = None, optics: str = "x5") -> list[Pair]:
    """Fixed held-out simulated pairs (specimen seeds from MICRO_VAL_SEED; the eval stand-ins use 900000+),
    their LR stored and normalised as a user's file (`encoding`) where given. With optics="range", as many
    pairs again through drawn objectives (1000 photons)."""
    from .simulate import SimulationSpec, simulate_pair

    pairs = []
    for i in range(count * (2 if optics == "range" else 1)):
        seed = MICRO_VAL_SEED + i
        g = torch.Generator().manual_seed(seed)
        spec = SimulationSpec()
        if i >= count:
            spec, dz = range_optics(g)
            spec = replace(spec, defocus_um=(dz, dz), peak=1000.0)
        lr, hr, _ = simulate_pair(procedural_specimen(i, seed, size), spec, g)
        if encoding is not None:
            lr, (hr,), _ = random_encoding(lr, (hr,), encoding, g)
        pairs.append(Pair(name=f"micro_{seed}", lr=lr, hr=hr))
    return pairs


class PatchSampler:
    """Random (blurry LR, clear LR, HR) patches with flips and 90-degree rotations, seeded."""

    def __init__(self, sources: list[Pair], patch_lr: int, spec: DegradationSpec, seed: int,
                 zoom_prob: float = 0.5, zoom_max: float = 3.0, soft_prob: float = 0.0,
                 microscope_prob: float = 0.0, microscope_optics: str = "x5") -> None:
        s = spec.scale
        self.sources = [src for src in sources if min(src.hr.shape[-2:]) >= patch_lr * s]
        if not self.sources:
            raise MdeblurError(f"no training image is at least {patch_lr * s} px on each side (lower --patch)")
        areas = torch.tensor([float(src.hr.shape[-1] * src.hr.shape[-2]) for src in self.sources])
        self.weights = areas / areas.sum()
        self.patch_lr = patch_lr
        self.spec = spec
        self.zoom_prob, self.zoom_max, self.soft_prob = zoom_prob, zoom_max, soft_prob
        self.microscope_prob = microscope_prob
        self.microscope = None
        if microscope_prob > 0:  # procedural specimens and real training images through the x5/x10 optics
            real = [c for src in self.sources if src.lr is None
                    for c in real_specimens(src.hr, MICRO_REAL_SIDE)][:MICRO_REAL_MAX]
            self.microscope = MicroscopePatches(real=real, encoding=spec, optics=microscope_optics)
        if self.microscope is not None and s != self.microscope.spec.scale:
            raise MdeblurError(f"--microscope-prob needs scale {self.microscope.spec.scale} (x5 -> x10 optics)")
        self.generator = torch.Generator().manual_seed(seed)

    def _randint(self, high: int) -> int:
        return int(torch.randint(high, (), generator=self.generator))

    def sample(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        lr, lr_clear, hr = self._draw()
        k, flip = self._randint(4), self._randint(2)
        out = []
        for t in (lr, lr_clear, hr):
            t = torch.rot90(t, k, (1, 2))
            out.append(t.flip(2) if flip else t)
        return out[0], out[1], out[2]

    def _draw(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One (blurry LR, clear LR, HR) patch before flips and rotations."""
        g, s, p = self.generator, self.spec.scale, self.patch_lr
        if self.microscope is not None and chance(g, self.microscope_prob):
            return self.microscope.sample(p, g)
        src = self.sources[int(torch.multinomial(self.weights, 1, generator=g))]
        hr_full = src.hr
        if src.lr is not None:
            y = self._randint(hr_full.shape[-2] // s - p + 1)
            x = self._randint(hr_full.shape[-1] // s - p + 1)
            hr = hr_full[:, y * s : (y + p) * s, x * s : (x + p) * s]
            return src.lr[:, y : y + p, x : x + p], downscale(hr, s).clamp(0, 1), hr
        hr = self._crop_hr(hr_full, p * s)
        lr, lr_clear, hr, _ = random_degradation(hr, self.spec, g)
        return lr, lr_clear, hr

    def _crop_hr(self, hr_full: torch.Tensor, size: int) -> torch.Tensor:
        """A size x size crop; with probability zoom_prob a smaller region magnified, for smooth content."""
        g = self.generator
        side = size
        if chance(g, self.zoom_prob):
            side = max(8, round(size / uniform(g, 1, self.zoom_max)))
        y = self._randint(hr_full.shape[-2] - side + 1)
        x = self._randint(hr_full.shape[-1] - side + 1)
        crop = hr_full[:, y : y + side, x : x + side]
        if side != size:
            crop = F.interpolate(crop[None], size=(size, size), mode="bicubic", align_corners=False)[0].clamp(0, 1)
        if self.soft_prob and chance(g, self.soft_prob):
            crop = soften(crop, g)
        return crop

    def batch(self, size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        items = [self.sample() for _ in range(size)]
        return tuple(torch.stack(x) for x in zip(*items, strict=True))


SOFT_SIGMA_HR = (0.5, 3.0)  # intrinsic softness of "soft" content, HR px


def soften(hr: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Intrinsically soft content: the ground truth itself blurred (HR px), so sharpness is not assumed."""
    from .degrade import convolve, gaussian_kernel

    lo, hi = SOFT_SIGMA_HR
    sigma = uniform(generator, lo, hi)
    return convolve(hr, gaussian_kernel(sigma))
