"""Registration of real x5/x10 pairs: phase correlation, then ECC (Euclidean) refinement, crop and normalise."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ..errors import MdeblurError
from ..formats.images import from_float, match_stems, write_image
from ..formats.paths import check_output_folder
from . import read_rgb

MIN_CORRELATION = 0.6  # ECC correlation below this: the pair is rejected
MIN_OVERLAP = 0.5  # common field below this share of the LR image: rejected


@dataclass
class Alignment:
    """Maps low-res pixel (x, y) to the downscaled high-res image: [[c, -s, tx], [s, c, ty]]."""

    matrix: np.ndarray  # (2, 3) float32
    correlation: float

    @property
    def rotation_deg(self) -> float:
        return math.degrees(math.atan2(self.matrix[1, 0], self.matrix[0, 0]))

    @property
    def translation(self) -> tuple[float, float]:
        return float(self.matrix[0, 2]), float(self.matrix[1, 2])


def _gray(img: np.ndarray) -> np.ndarray:
    return (img.mean(2) if img.ndim == 3 else img).astype(np.float32)


def register(lr: np.ndarray, hr: np.ndarray, scale: int = 2) -> Alignment:
    """Estimate the Euclidean transform taking LR pixels onto the HR image downscaled by `scale`."""
    lr_g = _gray(lr)
    hr_g = cv2.resize(_gray(hr), (hr.shape[1] // scale, hr.shape[0] // scale), interpolation=cv2.INTER_AREA)
    h, w = min(lr_g.shape[0], hr_g.shape[0]), min(lr_g.shape[1], hr_g.shape[1])
    a, b = lr_g[:h, :w], hr_g[:h, :w]
    window = cv2.createHanningWindow((w, h), cv2.CV_64F)
    (dx, dy), _ = cv2.phaseCorrelate(a.astype(np.float64), b.astype(np.float64), window)
    criteria = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 200, 1e-6)
    best = None
    for sign in (1, -1):  # try both senses of the phase-correlation shift; keep the better fit
        warp = np.array([[1, 0, sign * dx], [0, 1, sign * dy]], np.float32)
        try:
            corr, warp = cv2.findTransformECC(a, hr_g, warp, cv2.MOTION_EUCLIDEAN, criteria, None, 5)
        except cv2.error:
            continue
        if best is None or corr > best.correlation:
            best = Alignment(warp, float(corr))
    if best is None:
        raise MdeblurError("registration did not converge")
    return best


def _largest_valid_box(valid: np.ndarray) -> tuple[int, int, int, int]:
    """Shrink the bounding box of a mask until every pixel inside is valid: (y0, y1, x0, x1)."""
    ys, xs = np.where(valid)
    if len(ys) == 0:
        raise MdeblurError("no common field of view")
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    while y1 > y0 and x1 > x0:
        box = valid[y0:y1, x0:x1]
        if box.all():
            return y0, y1, x0, x1
        bad = {"top": (~box[0]).sum(), "bottom": (~box[-1]).sum(), "left": (~box[:, 0]).sum(), "right": (~box[:, -1]).sum()}
        side = max(bad, key=bad.get)
        y0, y1, x0, x1 = y0 + (side == "top"), y1 - (side == "bottom"), x0 + (side == "left"), x1 - (side == "right")
    raise MdeblurError("no common field of view")


def apply_alignment(lr: np.ndarray, hr: np.ndarray, al: Alignment, scale: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """HR resampled onto the LR grid (x scale), both cropped to their common field, LR gain-matched to HR."""
    s = scale
    lin, t = al.matrix[:, :2].astype(np.float64), al.matrix[:, 2].astype(np.float64)
    # Output pixel u on the x s grid is LR pixel (u + 0.5) / s - 0.5; HRd pixel y is HR pixel (y + 0.5) s - 0.5.
    c = (0.5 * s - 0.5) * (np.ones(2) - lin @ np.ones(2)) + s * t
    m = np.hstack([lin, c[:, None]])
    size = (lr.shape[1] * s, lr.shape[0] * s)
    warped = cv2.warpAffine(hr, m, size, flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REFLECT)
    valid = cv2.warpAffine(np.ones(hr.shape[:2], np.uint8), m, size, flags=cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP)
    valid = cv2.erode(valid, np.ones((2 * s + 1, 2 * s + 1), np.uint8))
    lr_valid = valid.reshape(lr.shape[0], s, lr.shape[1], s).min((1, 3)) > 0
    y0, y1, x0, x1 = _largest_valid_box(lr_valid)
    lr_c = lr[y0:y1, x0:x1]
    hr_c = np.clip(warped[y0 * s : y1 * s, x0 * s : x1 * s], 0, 1).astype(np.float32)
    if lr_c.size < MIN_OVERLAP * lr.size:
        raise MdeblurError(f"common field is only {lr_c.size / lr.size:.0%} of the low-res image")
    hr_small = cv2.resize(hr_c, (lr_c.shape[1], lr_c.shape[0]), interpolation=cv2.INTER_AREA)
    gain = hr_small.mean((0, 1)) / np.maximum(lr_c.mean((0, 1)), 1e-6)  # exposure and white balance
    return np.clip(lr_c * gain, 0, 1).astype(np.float32), hr_c


def align_folder(lr_dir: Path, hr_dir: Path, out_dir: Path, scale: int = 2, overwrite: bool = False) -> list[dict]:
    """Register every pair with matching stems; write aligned lr/ and hr/ and a report (align.json).

    Each entry's status is aligned, rejected (registration not trusted) or error (unreadable file).
    """
    for d in (lr_dir, hr_dir):
        if not d.is_dir():
            raise MdeblurError(f"{d}: no such folder")
    if scale < 2:
        raise MdeblurError(f"--scale {scale}: use 2 or more (the magnification ratio)")
    lrs, hrs, common = match_stems(lr_dir, hr_dir)
    if not common:
        raise MdeblurError(f"{lr_dir}, {hr_dir}: no matching file stems")
    written = [out_dir / "lr", out_dir / "hr", out_dir / "align.json"]
    existing = [out_dir / sub / f"{stem}.png" for stem in common for sub in ("lr", "hr")] + [out_dir / "align.json"]
    check_output_folder(out_dir, written, [lr_dir, hr_dir], overwrite, existing, "OUT")
    report = []
    for stem in common:
        entry: dict = {"stem": stem}
        try:
            lr = read_rgb(lrs[stem])
            hr = read_rgb(hrs[stem])
            al = register(lr, hr, scale)
            entry.update(correlation=al.correlation, rotation_deg=al.rotation_deg, translation_lr_px=al.translation)
            if al.correlation < MIN_CORRELATION:
                raise MdeblurError(f"correlation {al.correlation:.2f} below {MIN_CORRELATION}")
            lr_c, hr_c = apply_alignment(lr, hr, al, scale)
            hr_small = cv2.resize(hr_c, (lr_c.shape[1], lr_c.shape[0]), interpolation=cv2.INTER_AREA)
            entry["residual_rms"] = float(np.sqrt(((lr_c - hr_small) ** 2).mean()))
            write_image(out_dir / "lr" / f"{stem}.png", from_float(lr_c, np.uint16))
            write_image(out_dir / "hr" / f"{stem}.png", from_float(hr_c, np.uint16))
            entry["status"] = "aligned"
        except MdeblurError as exc:
            unreadable = str(exc).startswith((str(lrs[stem]), str(hrs[stem])))
            entry.update(status="error" if unreadable else "rejected", reason=str(exc))
        report.append(entry)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "align.json").write_text(json.dumps(report, indent=2) + "\n")
    return report
