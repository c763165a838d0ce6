"""Seeded procedural brightfield specimens at the x10 sampling (0.65 um per pixel): plant tissue, fundus, fibres."""

from __future__ import annotations

import cv2
import numpy as np
from scipy.spatial import cKDTree

# Optical densities per unit stain (R, G, B), Beer-Lambert: transmitted = exp(-sum(c * od)).
SAFRANIN = np.array([0.08, 0.95, 0.55])  # red: lignified cell walls, nuclei
FAST_GREEN = np.array([0.75, 0.12, 0.45])  # blue-green: cytoplasm, cellulose
HAEMATOXYLIN = np.array([0.65, 0.85, 0.25])  # purple: nuclei, debris
LAMP = np.array([1.0, 0.97, 0.9])  # warm halogen illumination


def smooth_field(shape: tuple[int, int], rng: np.random.Generator, scale_px: float) -> np.ndarray:
    """Smooth random field in [0, 1] with features of about `scale_px`."""
    h, w = shape
    small = rng.random((max(2, int(h / scale_px) + 2), max(2, int(w / scale_px) + 2))).astype(np.float32)
    big = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
    big = cv2.GaussianBlur(big, (0, 0), scale_px / 4)
    return (big - big.min()) / max(float(big.max() - big.min()), 1e-6)


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0, 1)
    return x * x * (3 - 2 * x)


def _transmit(od: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    h, w = od.shape[:2]
    vignette = 1 - 0.12 * smooth_field((h, w), rng, max(h, w) / 1.5)[..., None]
    return np.clip(np.exp(-od) * LAMP * vignette, 0, 1).astype(np.float32)


def plant_tissue(size: int = 512, seed: int = 0) -> np.ndarray:
    """A stained plant-tissue section like a pine-cone slice: polygonal cells, thick walls, nuclei, tears."""
    rng = np.random.default_rng(seed)
    h = w = size
    cell = rng.uniform(30, 60)  # mean cell diameter in px (20-40 um)
    # Jittered grid seeds, with a smooth warp so cell size varies across the section.
    ys, xs = np.mgrid[-1 : h / cell + 1, -1 : w / cell + 1]
    pts = np.stack([ys.ravel(), xs.ravel()], 1) * cell + rng.normal(0, 0.28 * cell, (ys.size, 2))
    stretch = rng.uniform(0.7, 1.3)
    pts[:, 1] *= stretch
    tree = cKDTree(pts)
    gy, gx = np.mgrid[0:h, 0:w].astype(np.float32)
    warp = (smooth_field((h, w), rng, size / 3) - 0.5) * cell * 0.8
    q = np.stack([(gy + warp).ravel(), ((gx - warp) * stretch).ravel()], 1)
    dist, idx = tree.query(q, k=2)
    d1, d2 = dist[:, 0].reshape(h, w), dist[:, 1].reshape(h, w)
    owner = idx[:, 0].reshape(h, w)
    thickness = rng.uniform(2.0, 5.0) * (0.7 + 0.6 * smooth_field((h, w), rng, size / 4))
    wall = 1 - _smoothstep((d2 - d1 - thickness) / 1.5 + 0.5)
    gradient = 0.55 + 0.9 * smooth_field((h, w), rng, size / 1.2)  # stain intensity gradient
    per_cell = rng.uniform(0.05, 0.35, len(pts))[owner]
    grain = cv2.GaussianBlur(rng.normal(0, 1, (h, w)).astype(np.float32), (0, 0), 1.2) * 0.08
    od = (wall * rng.uniform(1.0, 1.8))[..., None] * SAFRANIN * gradient[..., None]
    od += ((per_cell + grain) * (1 - wall))[..., None] * FAST_GREEN * gradient[..., None]
    # Nuclei: an ellipse near the seed of some cells.
    nuclei = np.zeros((h, w), np.float32)
    for py, px in pts[rng.random(len(pts)) < 0.45]:
        cy, cx = py + rng.normal(0, 0.1 * cell), px / stretch + rng.normal(0, 0.1 * cell)
        if -cell < cy < h + cell and -cell < cx < w + cell:
            ax = (int(cell * rng.uniform(0.1, 0.18)), int(cell * rng.uniform(0.08, 0.15)))
            cv2.ellipse(nuclei, (int(cx), int(cy)), ax, rng.uniform(0, 180), 0, 360, 1.0, -1, cv2.LINE_AA)
    nuclei = cv2.GaussianBlur(nuclei, (0, 0), 0.8)
    od += (nuclei * rng.uniform(0.8, 1.4))[..., None] * HAEMATOXYLIN
    # Tears (no tissue) and debris.
    tissue = np.ones((h, w), np.float32)
    if rng.random() < 0.6:
        ang = rng.uniform(0, 2 * np.pi) + np.cumsum(rng.normal(0, 0.25, 24))
        steps = np.stack([np.cos(ang), np.sin(ang)], 1) * size / 24
        pts_t = np.cumsum(steps, 0) + rng.uniform(0, size, 2)
        cv2.polylines(tissue, [pts_t.astype(np.int32)], False, 0.0, int(rng.uniform(3, 12)), cv2.LINE_AA)
        tissue = cv2.GaussianBlur(tissue, (0, 0), 1.0)
    od *= tissue[..., None]
    for _ in range(rng.integers(0, 6)):
        blob = np.zeros((h, w), np.float32)
        cv2.circle(blob, tuple(int(v) for v in rng.uniform(0, size, 2)), int(rng.uniform(1, 4)), 1.0, -1, cv2.LINE_AA)
        od += cv2.GaussianBlur(blob, (0, 0), 0.7)[..., None] * HAEMATOXYLIN * rng.uniform(1, 3)
    return _transmit(od, rng)


def _draw_aa(canvas: np.ndarray, draw, supersample: int = 4) -> np.ndarray:
    """Draw on a supersampled uint8 mask and area-average it down, for antialiased strokes."""
    h, w = canvas.shape
    big = np.zeros((h * supersample, w * supersample), np.uint8)
    draw(big, supersample)
    return cv2.resize(big.astype(np.float32) / 255, (w, h), interpolation=cv2.INTER_AREA)


def fundus(size: int = 512, seed: int = 0) -> np.ndarray:
    """A fundus-like field: orange-red background, darker macula, branching vessel trees."""
    rng = np.random.default_rng(seed)
    h = w = size

    def branches(big: np.ndarray, k: int) -> None:
        stack = [(rng.uniform(0, w) * k, rng.uniform(0, h) * k, rng.uniform(0, 2 * np.pi), rng.uniform(6, 12) * k, 0)
                 for _ in range(rng.integers(4, 8))]
        while stack:
            x, y, ang, width, depth = stack.pop()
            for _ in range(int(rng.uniform(15, 40))):
                ang += rng.normal(0, 0.15)
                nx, ny = x + np.cos(ang) * 6 * k, y + np.sin(ang) * 6 * k
                cv2.line(big, (int(x), int(y)), (int(nx), int(ny)), 255, max(1, int(width)), cv2.LINE_AA)
                x, y = nx, ny
            if depth < 6 and width > 1.0 * k:
                for sign in (-1, 1):
                    stack.append((x, y, ang + sign * rng.uniform(0.3, 0.9), width * rng.uniform(0.6, 0.8), depth + 1))

    vessels = _draw_aa(np.zeros((h, w), np.float32), branches)
    vessels = cv2.GaussianBlur(vessels, (0, 0), 0.7)
    yy, xx = np.mgrid[0:h, 0:w] / size
    cy, cx = rng.uniform(0.3, 0.7, 2)
    macula = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * rng.uniform(0.05, 0.12) ** 2))
    base = np.array([0.95, 0.42, 0.22]) * (0.85 + 0.25 * smooth_field((h, w), rng, size / 2))[..., None]
    base = base * (1 - 0.35 * macula)[..., None]
    vessel_rgb = np.array([0.55, 0.12, 0.08])
    img = base * (1 - 0.75 * vessels[..., None]) + vessel_rgb * 0.75 * vessels[..., None]
    grain = cv2.GaussianBlur(rng.normal(0, 1, (h, w)).astype(np.float32), (0, 0), 2.0)[..., None] * 0.015
    return np.clip(img + grain, 0, 1).astype(np.float32)


def fibres(size: int = 512, seed: int = 0) -> np.ndarray:
    """Stained fibres (like a connective-tissue or textile smear) on a bright background."""
    rng = np.random.default_rng(seed)
    h = w = size
    od = np.zeros((h, w, 3))
    for stain in (FAST_GREEN, SAFRANIN, HAEMATOXYLIN):

        def curves(big: np.ndarray, k: int) -> None:
            for _ in range(rng.integers(15, 40)):
                p0 = rng.uniform(-0.2, 1.2, 2) * size
                pts = [p0]
                ang = rng.uniform(0, 2 * np.pi)
                for _ in range(60):
                    ang += rng.normal(0, 0.08)
                    pts.append(pts[-1] + 8 * np.array([np.cos(ang), np.sin(ang)]))
                arr = (np.array(pts) * k).astype(np.int32)
                cv2.polylines(big, [arr], False, int(rng.uniform(120, 255)), max(1, int(rng.uniform(1.0, 3.5) * k)),
                              cv2.LINE_AA)

        od += _draw_aa(np.zeros((h, w), np.float32), curves)[..., None] * stain * rng.uniform(0.5, 1.2)
    grain = cv2.GaussianBlur(rng.normal(0, 1, (h, w)).astype(np.float32), (0, 0), 1.5)
    od += np.clip(grain, 0, None)[..., None] * 0.05 * FAST_GREEN
    return _transmit(od, rng)


SPECIMENS = {"plant": plant_tissue, "fundus": fundus, "fibres": fibres}
