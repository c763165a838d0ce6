"""Comparison figures (like the paper's Figure 5) and the PSNR-vs-parameters plot (Figure 7)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch

from .errors import MdeblurError

PANEL = 256  # panel side in the figure, px
RED, BLUE = (220, 40, 40), (40, 90, 230)


def pick_regions(outputs: list[np.ndarray], size: int, count: int = 2) -> list[tuple[int, int]]:
    """Top-left corners of `count` non-overlapping size x size windows where the methods differ most."""
    stack = np.stack([o.mean(2) if o.ndim == 3 else o for o in outputs])
    spread = stack.std(0).astype(np.float32)
    score = cv2.boxFilter(spread, -1, (size, size), normalize=True, borderType=cv2.BORDER_CONSTANT)
    h, w = spread.shape
    half = size // 2
    corners = []
    for _ in range(count):
        valid = np.full_like(score, -np.inf)
        valid[half : h - size + half + 1, half : w - size + half + 1] = score[half : h - size + half + 1,
                                                                            half : w - size + half + 1]
        cy, cx = np.unravel_index(int(np.argmax(valid)), valid.shape)
        y, x = int(cy - half), int(cx - half)
        corners.append((y, x))
        score[max(0, y - half) : y + size + half, max(0, x - half) : x + size + half] = -np.inf
    return corners


def _to_uint8(img: np.ndarray) -> np.ndarray:
    img = np.clip(img, 0, 1)
    img = np.repeat(img[..., None], 3, 2) if img.ndim == 2 else img
    return (img * 255 + 0.5).astype(np.uint8)


def _label(panel: np.ndarray, text: str) -> np.ndarray:
    bar = np.full((22, panel.shape[1], 3), 255, np.uint8)
    cv2.putText(bar, text, (4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    return np.concatenate([bar, panel], 0)


def comparison_figure(images: list[dict], path: Path) -> None:
    """images: [{'name', 'input' (HR-size preview), 'outputs': {method: HxWx3}, 'truth', 'psnr': {method: dB}}]."""
    rows = []
    for item in images:
        columns = [("input (bicubic)", item["input"]), *item["outputs"].items(), ("ground truth", item["truth"])]
        h, w = item["truth"].shape[:2]
        size = max(16, min(h, w) // 6)
        regions = pick_regions(list(item["outputs"].values()), size)
        col_panels = []
        for name, img in columns:
            full = _to_uint8(img).copy()
            for (y, x), colour in zip(regions, (RED, BLUE), strict=False):
                cv2.rectangle(full, (x, y), (x + size - 1, y + size - 1), colour, max(1, w // 256))
            scale = PANEL / max(h, w)
            full = cv2.resize(full, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
            full = cv2.copyMakeBorder(full, 0, PANEL - full.shape[0], 0, PANEL - full.shape[1], cv2.BORDER_CONSTANT,
                                      value=(255, 255, 255))
            zooms = []
            for (y, x), colour in zip(regions, (RED, BLUE), strict=False):
                z = cv2.resize(_to_uint8(img[y : y + size, x : x + size]), (PANEL, PANEL), interpolation=cv2.INTER_NEAREST)
                zooms.append(cv2.copyMakeBorder(z[3:-3, 3:-3], 3, 3, 3, 3, cv2.BORDER_CONSTANT, value=colour))
            psnr = item["psnr"].get(name)
            label = f"{name} {psnr:.2f} dB" if psnr is not None else name
            col_panels.append(_label(np.concatenate([full, *zooms], 0), label))
        row = np.concatenate([np.pad(p, ((0, 0), (0, 4), (0, 0)), constant_values=255) for p in col_panels], 1)
        rows.append(_label(row, item["name"]))
    width = max(r.shape[1] for r in rows)
    fig = np.concatenate([np.pad(r, ((0, 8), (0, width - r.shape[1]), (0, 0)), constant_values=255) for r in rows], 0)
    from .io import write_image

    write_image(path, fig)


def params_plot(results: list[dict], title: str, path: Path) -> None:
    """PSNR against parameter count for the learned methods (needs matplotlib: pip install 'mdeblur[plot]')."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise MdeblurError("--plot-params needs matplotlib: pip install 'mdeblur[plot]'") from None
    learned = [r for r in results if r.get("params")]
    if not learned:
        raise MdeblurError("--plot-params: no learned method in --methods")
    fig, ax = plt.subplots(figsize=(5, 3.6), dpi=120)
    for r in learned:
        ax.scatter(r["params"] / 1e6, r["psnr"], s=40)
        ax.annotate(r["method"], (r["params"] / 1e6, r["psnr"]), textcoords="offset points", xytext=(6, 4))
    ax.set_xlabel("parameters (millions)")
    ax.set_ylabel("PSNR (dB)")
    ax.set_title(title, fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def preview_input(lr: torch.Tensor, scale: int) -> np.ndarray:
    """The low-res input shown at the output size (bicubic), (H, W, C)."""
    from .degrade import upscale_bicubic

    return upscale_bicubic(lr, scale).permute(1, 2, 0).numpy()
