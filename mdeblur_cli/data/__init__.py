"""Images as training and evaluation read them: one pair type, and the readers both sides share.

`data.train` samples training patches; `data.eval` builds the named evaluation sets.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..errors import MdeblurError
from ..formats.images import match_stems, read_image, to_float

# scikit-image's bundled images reserved for evaluation: never trained on.
RESERVED = ("retina", "immunohistochemistry", "cell", "microaneurysms")
TRAIN_SEED_LIMIT = 100_000  # procedural specimens below this seed may be trained on; evaluation uses seeds above


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




@dataclass(kw_only=True)
class Pair:
    """One image and its truth, each (C, H, W): the blurry low-res `lr` and the high-res `hr` (`lr` is None for a
    training image whose input is simulated per patch). Evaluation pairs may carry the true PSF, and the unit maps
    of an input condition."""

    name: str
    hr: torch.Tensor
    lr: torch.Tensor | None = None
    psf: torch.Tensor | None = None
    to_truth: tuple[float, float] = (1.0, 0.0)  # (a, b): a method's output y in lr's units is a*y + b in hr's
    to_file: tuple[float, float] = (1.0, 0.0)  # (a, b): lr's (normalised) units to the file's raw [0, 1] float units


def _readable(path: Path) -> np.ndarray | None:
    """An image as float RGB, or None with a warning: one unreadable file does not stop training."""
    import warnings

    try:
        return read_rgb(path)
    except MdeblurError as exc:
        warnings.warn(f"skipped: {exc}", UserWarning, stacklevel=2)
        return None


def load_pairs(root: Path, scale: int) -> list[Pair]:
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
        pairs.append(Pair(name=stem, lr=lr, hr=hr))
    if not pairs:
        raise MdeblurError(f"{root}: none of its {len(common)} pairs could be read")
    return pairs
