"""Comparison figures (like the paper's Figure 5) and the PSNR-vs-parameters plot (Figure 7)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch

from ..errors import MdeblurError

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
        shown_input = [] if "bicubic" in item["outputs"] else [("input (bicubic)", item["input"])]
        columns = [*shown_input, *item["outputs"].items(), ("ground truth", item["truth"])]
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
    from ..formats.images import write_image

    write_image(path, fig)


def require_matplotlib():
    """matplotlib.pyplot on the Agg backend, or a clear error naming the extra that installs it."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise MdeblurError("--plot-params needs matplotlib: pip install 'mdeblur[plot]'") from None
    return plt


def params_plot(results: list[dict], title: str, path: Path) -> None:
    """PSNR against parameter count for the learned methods (needs matplotlib: pip install 'mdeblur[plot]')."""
    plt = require_matplotlib()
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
    from ..data.degrade import upscale_bicubic

    return upscale_bicubic(lr, scale).permute(1, 2, 0).numpy()


PLOT_COLOURS = [(31, 119, 180), (214, 39, 40), (44, 160, 44), (148, 103, 189), (255, 127, 14)]


def training_curve(runs: dict[str, list[dict]], path: Path, width: int = 640, height: int = 400) -> None:
    """Validation PSNR against epoch for one or more runs (like the paper's Figure 6), drawn with OpenCV."""
    series = {name: ([float(r.get("epoch") or r["iter"]) for r in rows], [float(r["val_psnr"]) for r in rows])
              for name, rows in runs.items() if rows}
    img = np.full((height, width, 3), 255, np.uint8)
    left, right, top, bottom = 60, 20, 20, 45
    if series:
        xs = [x for xv, _ in series.values() for x in xv]
        ys = [y for _, yv in series.values() for y in yv]
        x0, x1 = 0.0, max(max(xs), 1e-6)
        y0, y1 = min(ys) - 0.2, max(ys) + 0.2

        def px(x: float, y: float) -> tuple[int, int]:
            return (int(left + (x - x0) / (x1 - x0) * (width - left - right)),
                    int(height - bottom - (y - y0) / (y1 - y0) * (height - top - bottom)))

        font = cv2.FONT_HERSHEY_SIMPLEX
        for i in range(5):
            yv = y0 + (y1 - y0) * i / 4
            cv2.line(img, px(x0, yv), px(x1, yv), (225, 225, 225), 1)
            cv2.putText(img, f"{yv:.2f}", (5, px(x0, yv)[1] + 4), font, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
            xv = x0 + (x1 - x0) * i / 4
            cv2.putText(img, f"{xv:.{0 if x1 - x0 >= 8 else 2}f}", (px(xv, y0)[0] - 8, height - bottom + 16), font, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
        cv2.rectangle(img, px(x0, y1), px(x1, y0), (0, 0, 0), 1)
        xlabel = "epoch" if all(r.get("epoch") for rows in runs.values() for r in rows) else "iteration"
        cv2.putText(img, xlabel, (width // 2 - 20, height - 8), font, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
        cv2.putText(img, "val PSNR (dB)", (5, 14), font, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
        for k, (name, (xv, yv)) in enumerate(series.items()):
            colour = PLOT_COLOURS[k % len(PLOT_COLOURS)][::-1]
            pts = np.array([px(x, y) for x, y in zip(xv, yv, strict=True)], np.int32)
            cv2.polylines(img, [pts], False, colour, 2, cv2.LINE_AA)
            for pt in pts:  # a run validated once is a point, not an invisible line
                cv2.circle(img, (int(pt[0]), int(pt[1])), 3, colour, -1, cv2.LINE_AA)
            cv2.putText(img, name, (left + 10, top + 18 + 18 * k), font, 0.45, colour, 1, cv2.LINE_AA)
    from ..formats.images import write_image

    write_image(path, img[..., ::-1].copy())


def benchmark_figure(evalset, results: list[dict], kept: dict, count: int, path: Path) -> None:
    """`mdeblur benchmark --figure`: the first `count` images, each method's kept output and its PSNR."""
    items = []
    for p in evalset.pairs[:count]:
        psnrs = {r["method"]: r["per_image"][p.name]["psnr"] for r in results}
        items.append({"name": f"{p.name} ({'stand-in' if evalset.stand_in else 'real'})",
                      "input": preview_input(p.lr, 2), "outputs": kept[p.name],
                      "truth": p.hr.permute(1, 2, 0).numpy(), "psnr": psnrs})
    comparison_figure(items, path)
