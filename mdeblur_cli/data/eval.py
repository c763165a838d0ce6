"""Evaluation sets: the reserved images, FIRE (or its stand-in), PINE CONES (or its simulated stand-in), the
bundled microscopy, and any folder; each says what it is and by which protocol it was degraded."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..errors import MdeblurError
from ..formats.images import list_images
from . import RESERVED, Pair, load_pairs, read_rgb, skimage_image, to_tensor

EVAL_CROP = 512  # HR side of evaluation crops, as the paper's FIRE crops
FIRE_SIGMA = 1.5  # default Gaussian sigma (low-res px) of the FIRE protocol here


@dataclass
class EvalSet:
    """Test pairs plus what a results table must say about them."""

    name: str
    pairs: list[Pair]
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


def fire_pairs(named: list[tuple[str, np.ndarray]], sigma_px: float, scale: int) -> list[Pair]:
    """HR float images through the FIRE protocol."""
    from .degrade import fire_protocol, gaussian_kernel

    pairs = []
    for name, img in named:
        hr = to_tensor(img)
        lr, _ = fire_protocol(hr, sigma_px, scale)
        pairs.append(Pair(name=name, lr=lr, hr=hr, psf=gaussian_kernel(sigma_px)))
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
    elif name == "defocus":
        es = defocus_eval_set(scale)
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
        pairs = load_pairs(root, scale)
        return EvalSet(str(root), pairs, False, f"paired folder {root}", {"name": "paired lr/ + hr/ images", "psf": "unknown"})
    files = list_images(root, recursive=True)
    if not files:
        raise MdeblurError(f"{root}: no images found")
    named = [(f.stem, centre_crop(read_rgb(f), 4096, 2 * scale)) for f in files]
    return EvalSet(str(root), fire_pairs(named, sigma_px, scale), False, f"HR-only folder {root}",
                   _protocol(sigma_px, scale))


PINECONE_SEED0 = 900_000  # stand-in specimen seeds; training uses seeds below TRAIN_SEED_LIMIT
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
        pairs = load_pairs(real, scale)
        return EvalSet("pinecones", pairs, False, f"PINE CONES at {real}", {"name": "paired x5/x10", "psf": "unknown"})
    spec = SimulationSpec()
    pairs = []
    for i in range(PINECONE_COUNT):
        seed = PINECONE_SEED0 + i
        specimen = to_tensor(plant_tissue(EVAL_CROP, seed))
        lr, hr, meta = simulate_pair(specimen, spec, torch.Generator().manual_seed(seed))
        pairs.append(Pair(name=f"plant_{seed}", lr=lr, hr=hr, psf=lr_psf(meta)))
    protocol = {"name": "x5-defocus/x10 physics", "objective_lr": "x5/NA 0.12", "objective_hr": "x10/NA 0.25",
                "defocus_um": list(spec.defocus_um), "peak_photons": spec.peak, "read_sigma": spec.read_sigma}
    return EvalSet("pinecones", pairs, True,
                   "STAND-IN: procedural plant-tissue sections through the x5-defocus/x10 optics (PINE CONES not found)",
                   protocol)


DEFOCUS_UM = 50.0  # the defocus set: a dry 5x/0.12 objective 50 um out of focus (geometric blur 4.6 LR px)
DEFOCUS_PHOTONS, DEFOCUS_READ = 2000.0, 0.002
DEFOCUS_SEED0 = 950_000


def defocus_eval_set(scale: int) -> EvalSet:
    """Real in-focus images (the reserved ones, never trained on) through the simulator's physical optics: the
    x5/NA 0.12 objective defocused by DEFOCUS_UM against x10/NA 0.25 in focus, 2x2 binning, Poisson-Gaussian
    noise; each pair carries its true low-res PSF for Richardson-Lucy."""
    from .simulate import SimulationSpec, lr_psf, simulate_pair

    spec = SimulationSpec(defocus_um=(DEFOCUS_UM, DEFOCUS_UM), peak=DEFOCUS_PHOTONS, read_sigma=DEFOCUS_READ)
    pairs = []
    for i, n in enumerate(RESERVED):
        hr = to_tensor(centre_crop(skimage_image(n), EVAL_CROP, 2 * scale))
        lr, truth, meta = simulate_pair(hr, spec, torch.Generator().manual_seed(DEFOCUS_SEED0 + i), dz_um=DEFOCUS_UM)
        pairs.append(Pair(name=n, lr=lr, hr=truth, psf=lr_psf(meta)))
    protocol = {"name": "physical defocus", "objective_lr": "x5/NA 0.12", "objective_hr": "x10/NA 0.25",
                "defocus_um": [DEFOCUS_UM, DEFOCUS_UM], "binning": scale, "peak_photons": DEFOCUS_PHOTONS,
                "read_sigma": DEFOCUS_READ, "psf": "scalar pupil defocus PSF, one per colour (0.61, 0.54, 0.47 um)"}
    return EvalSet("defocus", pairs, False, "scikit-image reserved images (real; never trained on), centre crops, "
                   "through the simulator's optics", protocol)


EVAL_SETS = ("reserved", "fire", "micro", "pinecones", "defocus")


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
        {"name": "defocus", "real": True, "where": "scikit-image reserved images, simulated optics",
         "images": len(RESERVED), "stand_in": None},
    ]
