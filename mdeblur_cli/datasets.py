"""Training data: built-in scikit-image sources, HR-only folders and paired lr/ + hr/ folders."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .degrade import DegradationSpec, downscale, random_degradation, random_encoding
from .draws import chance, uniform
from .errors import MdeblurError
from .io import list_images, match_stems, read_image, to_float

# scikit-image's bundled images reserved for evaluation: never trained on.
RESERVED = ("retina", "immunohistochemistry", "cell", "microaneurysms")
# Bundled, natural or textured images (no synthetic test patterns); cat duplicates chelsea.
TRAIN_SOURCES = (
    "astronaut", "brick", "camera", "chelsea", "clock", "coffee", "coins", "colorwheel", "grass",
    "gravel", "hubble_deep_field", "logo", "moon", "page", "rocket", "text",
)
VAL_FRACTION = 0.2  # right-most share of each training image held out for validation


def as_rgb(img: np.ndarray) -> np.ndarray:
    """Float (H, W[, C]) to (H, W, 3): gray repeated, alpha composited on white."""
    if img.ndim == 2:
        return np.repeat(img[..., None], 3, axis=2)
    if img.shape[2] == 4:
        a = img[..., 3:4]
        return img[..., :3] * a + (1 - a)
    return img


def read_rgb(path: str | Path) -> np.ndarray:
    """An image file's first plane as float32 RGB (H, W, 3) in [0, 1] (gray repeated, alpha on white)."""
    return as_rgb(to_float(read_image(path).pages[0]))


def skimage_image(name: str) -> np.ndarray:
    """A bundled scikit-image picture as float32 RGB (H, W, 3) in [0, 1]."""
    import skimage.data

    arr = getattr(skimage.data, name)()
    if arr.dtype == bool:
        arr = arr.astype(np.uint8) * 255
    return as_rgb(to_float(arr))


def to_tensor(img: np.ndarray) -> torch.Tensor:
    """(H, W, C) float array to a (C, H, W) tensor."""
    return torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1))).float()


@dataclass
class PairedImage:
    """A real pair: blurry low-res input and its high-res target, both (C, H, W)."""

    lr: torch.Tensor
    hr: torch.Tensor
    name: str = ""


def load_sources(root: str | Path | None, scale: int) -> tuple[list[torch.Tensor] | list[PairedImage], str]:
    """HR tensors (builtin or HR-only folder) or pairs (lr/ + hr/ folder), and a description."""
    if root is None or str(root) == "builtin":
        return [to_tensor(skimage_image(n)) for n in TRAIN_SOURCES], "scikit-image bundled images (reserved excluded)"
    root = Path(root)
    if not root.is_dir():
        raise MdeblurError(f"{root}: not a folder")
    if (root / "lr").is_dir() and (root / "hr").is_dir():
        return load_pairs(root, scale), f"paired folder {root}"
    files = list_images(root, recursive=True)
    if not files:
        raise MdeblurError(f"{root}: no images found (expected image files, or lr/ and hr/ folders)")
    images = [img for f in files if (img := _readable(f)) is not None]
    if not images:
        raise MdeblurError(f"{root}: none of its {len(files)} images could be read")
    return [to_tensor(img) for img in images], f"HR-only folder {root}"


def _readable(path: Path) -> np.ndarray | None:
    """An image as float RGB, or None with a warning: one unreadable file does not stop training."""
    import warnings

    try:
        return read_rgb(path)
    except MdeblurError as exc:
        warnings.warn(f"skipped: {exc}", UserWarning, stacklevel=2)
        return None


def load_pairs(root: Path, scale: int) -> list[PairedImage]:
    """Pairs from lr/ and hr/ with matching stems; HR must be exactly scale x LR."""
    lrs, hrs, common = match_stems(root / "lr", root / "hr")
    if not common:
        raise MdeblurError(f"{root}: no matching stems between lr/ and hr/")
    pairs = []
    for stem in common:
        lr_img, hr_img = _readable(lrs[stem]), _readable(hrs[stem])
        if lr_img is None or hr_img is None:
            continue
        lr, hr = to_tensor(lr_img), to_tensor(hr_img)
        if hr.shape[1] != scale * lr.shape[1] or hr.shape[2] != scale * lr.shape[2]:
            raise MdeblurError(
                f"{hrs[stem]}: HR is {hr.shape[2]}x{hr.shape[1]} but must be {scale}x the LR "
                f"{lr.shape[2]}x{lr.shape[1]} of {lrs[stem]}"
            )
        pairs.append(PairedImage(lr, hr, stem))
    if not pairs:
        raise MdeblurError(f"{root}: none of its {len(common)} pairs could be read")
    return pairs


def split_columns(
    t: torch.Tensor, fraction: float = VAL_FRACTION, multiple: int = 4, min_val: int = 32
) -> tuple[torch.Tensor, torch.Tensor]:
    """Split (C, H, W) into a left training part and a right validation strip at least `min_val` wide."""
    w = t.shape[-1]
    cut = min(int(round(w * (1 - fraction))), w - min_val) // multiple * multiple
    return t[..., :cut], t[..., cut:]


MICRO_POOL = 24  # procedural specimens (seeds 0..23) simulated for the microscope share of training
MICRO_VAL_SEED = 50_000  # held-out specimen seeds for validation; both ranges below TRAIN_SEED_LIMIT
MICRO_VAL_COUNT = 4  # held-out simulated pairs in the validation set
MICRO_MARGIN = 40  # HR px simulated around a patch: covers the widest training defocus PSF (radius 37)
MICRO_DEFOCUS_UM = (10.0, 120.0)  # |dz| range of the training share (the pinecones stand-in uses 30-120)
MICRO_PEAK_RANGE = (300.0, 3000.0)  # photons at white
MICRO_REAL_SIDE = 256  # HR side of the real training-image crops also put through the optics
MICRO_REAL_MAX = 48  # at most this many such crops


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
    simulates a region MICRO_MARGIN wider than the patch so the PSF never sees the crop's edge.
    """

    def __init__(self, seeds=range(MICRO_POOL), size: int = 256,
                 peak_range: tuple[float, float] | None = MICRO_PEAK_RANGE, real: list[torch.Tensor] = (),
                 encoding: DegradationSpec | None = None) -> None:
        from .simulate import SimulationSpec

        self.pool = [procedural_specimen(s, s, size) for s in seeds] + list(real)
        self.spec = SimulationSpec()
        self.peak_range = peak_range  # None: noise-free
        self.encoding = encoding  # None: the LR stays float; else stored and normalised as a user's file

    def sample(self, patch_lr: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        from .simulate import simulate_pair

        g, s, m = generator, self.spec.scale, MICRO_MARGIN
        p_hr = patch_lr * s
        src = self.pool[int(torch.randint(len(self.pool), (), generator=g))]
        side = p_hr + 2 * m
        if min(src.shape[-2:]) < side:
            raise MdeblurError(f"simulated specimens are {src.shape[-1]} px; patch {patch_lr} is too large for them")
        y = int(torch.randint(src.shape[-2] - side + 1, (), generator=g))
        x = int(torch.randint(src.shape[-1] - side + 1, (), generator=g))
        lo, hi = MICRO_DEFOCUS_UM
        dz = round(uniform(g, lo, hi))  # whole um: the PSF cache stays small
        dz = float(dz if chance(g, 0.5) else -dz)
        peak = None
        if self.peak_range is not None:
            plo, phi = np.log(self.peak_range)
            peak = float(np.exp(uniform(g, plo, phi)))
        lr, hr, _ = simulate_pair(src[:, y : y + side, x : x + side], replace(self.spec, peak=peak), g, dz_um=dz)
        hr = hr[:, m : m + p_hr, m : m + p_hr]
        lr = lr[:, m // s : m // s + patch_lr, m // s : m // s + patch_lr]
        lr_clear = downscale(hr, s).clamp(0, 1)
        if self.encoding is not None:
            lr, (lr_clear, hr), _ = random_encoding(lr, (lr_clear, hr), self.encoding, g)
        return lr, lr_clear, hr


def microscope_validation(count: int = MICRO_VAL_COUNT, size: int = 192,
                          encoding: DegradationSpec | None = None) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Fixed held-out simulated pairs (specimen seeds from MICRO_VAL_SEED; the eval stand-ins use 900000+),
    their LR stored and normalised as a user's file (`encoding`) where given."""
    from .simulate import SimulationSpec, simulate_pair

    pairs = []
    for i in range(count):
        seed = MICRO_VAL_SEED + i
        g = torch.Generator().manual_seed(seed)
        lr, hr, _ = simulate_pair(procedural_specimen(i, seed, size), SimulationSpec(), g)
        if encoding is not None:
            lr, (hr,), _ = random_encoding(lr, (hr,), encoding, g)
        pairs.append((lr, hr))
    return pairs


class PatchSampler:
    """Random (blurry LR, clear LR, HR) patches with flips and 90-degree rotations, seeded."""

    def __init__(self, sources: list, patch_lr: int, spec: DegradationSpec, seed: int,
                 zoom_prob: float = 0.5, zoom_max: float = 3.0, soft_prob: float = 0.0,
                 microscope_prob: float = 0.0) -> None:
        s = spec.scale
        self.sources = [src for src in sources if min(hr_of(src).shape[-2:]) >= patch_lr * s]
        if not self.sources:
            raise MdeblurError(f"no training image is at least {patch_lr * s} px on each side (lower --patch)")
        areas = torch.tensor([float(hr_of(src).shape[-1] * hr_of(src).shape[-2]) for src in self.sources])
        self.weights = areas / areas.sum()
        self.patch_lr = patch_lr
        self.spec = spec
        self.zoom_prob, self.zoom_max, self.soft_prob = zoom_prob, zoom_max, soft_prob
        self.microscope_prob = microscope_prob
        self.microscope = None
        if microscope_prob > 0:  # procedural specimens and real training images through the x5/x10 optics
            real = [c for src in self.sources if not isinstance(src, PairedImage)
                    for c in real_specimens(src, MICRO_REAL_SIDE)][:MICRO_REAL_MAX]
            self.microscope = MicroscopePatches(real=real, encoding=spec)
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
        hr_full = hr_of(src)
        if isinstance(src, PairedImage):
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


def hr_of(src) -> torch.Tensor:
    return src.hr if isinstance(src, PairedImage) else src


# ---------------------------------------------------------------- evaluation datasets

EVAL_CROP = 512  # HR side of evaluation crops, as the paper's FIRE crops
FIRE_SIGMA = 1.5  # default Gaussian sigma (low-res px) of the FIRE protocol here


@dataclass
class BenchPair:
    """One test image: blurry low-res input, ground truth, and the true PSF where known."""

    name: str
    lr: torch.Tensor  # (C, H, W)
    hr: torch.Tensor  # (C, H*s, W*s)
    psf: torch.Tensor | None = None
    to_truth: tuple[float, float] = (1.0, 0.0)  # (a, b): a method's output y in lr's units is a*y + b in hr's
    to_file: tuple[float, float] = (1.0, 0.0)  # (a, b): lr's (normalised) units to the file's raw [0, 1] float units


@dataclass
class EvalSet:
    """Test pairs plus what a results table must say about them."""

    name: str
    pairs: list[BenchPair]
    stand_in: bool
    source: str
    protocol: dict


def data_roots(data_root: str | Path | None = None) -> list[Path]:
    """Where real data sets are looked for: --data-root, $MDEBLUR_DATA, then the user data folder."""
    import os

    from platformdirs import user_data_dir

    roots = [data_root, os.environ.get("MDEBLUR_DATA"), user_data_dir("mdeblur")]
    return [Path(r) for r in roots if r]


def centre_crop(img: np.ndarray, size: int, multiple: int) -> np.ndarray:
    """Centre crop to at most `size`, each side a multiple of `multiple`."""
    h, w = (min(size, d) // multiple * multiple for d in img.shape[:2])
    y, x = (img.shape[0] - h) // 2, (img.shape[1] - w) // 2
    return img[y : y + h, x : x + w]


def grid_crops(img: np.ndarray, size: int) -> list[np.ndarray]:
    """Non-overlapping size x size crops on a centred grid."""
    ny, nx = img.shape[0] // size, img.shape[1] // size
    oy, ox = (img.shape[0] - ny * size) // 2, (img.shape[1] - nx * size) // 2
    return [img[oy + i * size : oy + (i + 1) * size, ox + j * size : ox + (j + 1) * size]
            for i in range(ny) for j in range(nx)]


def fire_pairs(named: list[tuple[str, np.ndarray]], sigma_px: float, scale: int) -> list[BenchPair]:
    """HR float images through the FIRE protocol."""
    from .degrade import fire_protocol, gaussian_kernel

    pairs = []
    for name, img in named:
        hr = to_tensor(img)
        lr, _ = fire_protocol(hr, sigma_px, scale)
        pairs.append(BenchPair(name, lr, hr, gaussian_kernel(sigma_px)))
    return pairs


def _protocol(sigma_px: float, scale: int) -> dict:
    return {"name": "FIRE", "downscale": f"antialiased bicubic /{scale}", "blur": "gaussian",
            "sigma_lr_px": sigma_px, "noise": None}


def find_fire(roots: list[Path]) -> list[Path]:
    """FIRE release images (Images/*.jpg) under any root, directly or in a FIRE/ folder."""
    for root in roots:
        for cand in (root / "FIRE" / "Images", root / "Images"):
            files = sorted(cand.glob("*.jpg")) if cand.is_dir() else []
            if files:
                return files
    return []


def load_eval_set(name: str, data_root: str | Path | None = None, sigma_px: float = FIRE_SIGMA, scale: int = 2,
                  limit: int | None = None) -> EvalSet:
    """A named evaluation set ('reserved', 'fire', 'micro') or a folder (paired lr/+hr/, or HR-only)."""
    m = 2 * scale
    if name == "reserved":
        named = [(n, centre_crop(skimage_image(n), EVAL_CROP, m)) for n in RESERVED]
        es = EvalSet(name, fire_pairs(named, sigma_px, scale), False,
                     "scikit-image reserved images (retina, immunohistochemistry, cell, microaneurysms), centre crops",
                     _protocol(sigma_px, scale))
    elif name == "fire":
        files = find_fire(data_roots(data_root))
        if files:
            named = [(f"{f.stem}_{i}", c) for f in files[: limit or len(files)]
                     for i, c in enumerate(grid_crops(read_rgb(f), EVAL_CROP))]
            es = EvalSet(name, fire_pairs(named, sigma_px, scale), False, f"FIRE at {files[0].parent}",
                         _protocol(sigma_px, scale))
        else:
            crops = grid_crops(skimage_image("retina"), EVAL_CROP)
            es = EvalSet(name, fire_pairs([(f"retina_{i}", c) for i, c in enumerate(crops)], sigma_px, scale), True,
                         "STAND-IN: scikit-image 'retina' fundus photograph in 512 px crops (FIRE not found)",
                         _protocol(sigma_px, scale))
    elif name == "pinecones":
        es = pinecones_eval_set(data_root, scale)
    elif name == "micro":
        named = [(n, centre_crop(skimage_image(n), EVAL_CROP, m)) for n in ("immunohistochemistry", "cell")]
        es = EvalSet(name, fire_pairs(named, sigma_px, scale), False,
                     "real microscopy bundled with scikit-image (immunohistochemistry, cell)", _protocol(sigma_px, scale))
    else:
        es = folder_eval_set(Path(name), sigma_px, scale)
    es.pairs = es.pairs[:limit] if limit else es.pairs
    return es


def folder_eval_set(root: Path, sigma_px: float, scale: int) -> EvalSet:
    """A folder: paired lr/ + hr/ used as they are, or HR images put through the FIRE protocol."""
    if not root.is_dir():
        raise MdeblurError(f"{root}: not a dataset name ({', '.join(EVAL_SETS)}) nor a folder")
    if (root / "lr").is_dir() and (root / "hr").is_dir():
        pairs = [BenchPair(q.name, q.lr, q.hr) for q in load_pairs(root, scale)]
        return EvalSet(str(root), pairs, False, f"paired folder {root}", {"name": "paired lr/ + hr/ images", "psf": "unknown"})
    files = list_images(root, recursive=True)
    if not files:
        raise MdeblurError(f"{root}: no images found")
    named = [(f.stem, centre_crop(read_rgb(f), 4096, 2 * scale)) for f in files]
    return EvalSet(str(root), fire_pairs(named, sigma_px, scale), False, f"HR-only folder {root}",
                   _protocol(sigma_px, scale))


PINECONE_SEED0 = 900_000  # stand-in specimen seeds; training uses seeds below TRAIN_SEED_LIMIT
TRAIN_SEED_LIMIT = 100_000
PINECONE_COUNT = 6


def find_pinecones(roots: list[Path]) -> Path | None:
    """A real PINE CONES folder (lr/ x5 and hr/ x10 images) under any root."""
    for root in roots:
        for cand in (root / "pinecones", root / "PINE_CONES", root / "pine_cones"):
            if (cand / "lr").is_dir() and (cand / "hr").is_dir():
                return cand
    return None


def pinecones_eval_set(data_root: str | Path | None, scale: int) -> EvalSet:
    """Real x5/x10 pine-cone pairs where found; else procedural plant tissue through the x5-defocus/x10 physics."""
    from .simulate import SimulationSpec, lr_psf, simulate_pair
    from .specimens import plant_tissue

    real = find_pinecones(data_roots(data_root))
    if real is not None:
        pairs = [BenchPair(q.name, q.lr, q.hr) for q in load_pairs(real, scale)]
        return EvalSet("pinecones", pairs, False, f"PINE CONES at {real}", {"name": "paired x5/x10", "psf": "unknown"})
    spec = SimulationSpec()
    pairs = []
    for i in range(PINECONE_COUNT):
        seed = PINECONE_SEED0 + i
        specimen = to_tensor(plant_tissue(EVAL_CROP, seed))
        lr, hr, meta = simulate_pair(specimen, spec, torch.Generator().manual_seed(seed))
        pairs.append(BenchPair(f"plant_{seed}", lr, hr, lr_psf(meta)))
    protocol = {"name": "x5-defocus/x10 physics", "objective_lr": "x5/NA 0.12", "objective_hr": "x10/NA 0.25",
                "defocus_um": list(spec.defocus_um), "peak_photons": spec.peak, "read_sigma": spec.read_sigma}
    return EvalSet("pinecones", pairs, True,
                   "STAND-IN: procedural plant-tissue sections through the x5-defocus/x10 optics (PINE CONES not found)",
                   protocol)


EVAL_SETS = ("reserved", "fire", "micro", "pinecones")


def list_datasets(data_root: str | Path | None = None) -> list[dict]:
    """For each named set: whether real data was found, where, and how many images."""
    roots = data_roots(data_root)
    fire = find_fire(roots)
    pine = find_pinecones(roots)
    return [
        {"name": "fire", "real": bool(fire), "where": str(fire[0].parent) if fire else None,
         "images": len(fire) if fire else len(grid_crops(skimage_image("retina"), EVAL_CROP)),
         "stand_in": None if fire else "scikit-image retina in 512 px crops"},
        {"name": "pinecones", "real": pine is not None, "where": str(pine) if pine else None,
         "images": len(list_images(pine / "hr")) if pine else PINECONE_COUNT,
         "stand_in": None if pine else "procedural plant tissue, x5-defocus/x10 physics"},
        {"name": "micro", "real": True, "where": "scikit-image", "images": 2, "stand_in": None},
        {"name": "reserved", "real": True, "where": "scikit-image", "images": len(RESERVED), "stand_in": None},
    ]
