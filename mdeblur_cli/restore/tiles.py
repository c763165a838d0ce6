"""The tile engine: a network over an image of any size in overlapping windows on the network's own grid,
cross-faded so that tiled equals whole; batches of windows on CUDA, smaller tiles on out-of-memory."""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ..device import CPU, resolve_precision
from ..padding import edge_pad

MIN_TILE = 64
DEFAULT_TILE = 320  # balanced windows of 256-512 px run within 4% of each other on CPU, a whole 1024^2 pass 13% slower


@dataclass(frozen=True)
class Window:
    """One tile: input rows y0:y1 and columns x0:x1 (low-res px) and its blend weights."""

    y0: int
    y1: int
    x0: int
    x1: int


CONTEXT = 48  # low-res px of context read around each tile and discarded, for networks that do not say theirs
BLEND = 16  # low-res px over which neighbouring tiles cross-fade


@dataclass(frozen=True)
class Grid:
    """How a network is tiled, from its own declaration (see models/__init__.py): input sides and window
    origins on multiples of `multiple` (its downsampling grid), and `context` low-res px read around each tile
    and discarded (its reach)."""

    multiple: int = 8
    context: int = CONTEXT

    @classmethod
    def of(cls, net: nn.Module) -> Grid:
        """The network's declaration (every generator in models.ARCHS makes one); 8 and CONTEXT otherwise."""
        return cls(getattr(net, "multiple", 8), getattr(net, "context", None) or CONTEXT)

    def up(self, n: int) -> int:
        """n rounded up to the grid."""
        return -(-n // self.multiple) * self.multiple

    def tile(self, tile: int) -> int:
        """A tile side on the grid, at least MIN_TILE."""
        return max(MIN_TILE, tile // self.multiple * self.multiple)


def spans(size: int, tile: int, grid: Grid) -> list[tuple[int, int]]:
    """(start, end) of the windows along one side: as few as tiles of at most `tile` allow, all the same
    length, so that no window is mostly overlap (a fixed step would leave a last window that repeats most of
    its neighbour)."""
    margin, m = 2 * grid.context + BLEND, grid.multiple
    if size <= tile + margin:
        return [(0, size)]
    n = -(-(size - margin) // tile)  # windows needed
    step = grid.up(-(-(size - margin) // n))  # origins on the network's grid
    starts = [min(i * step, size - step - margin) // m * m for i in range(n)]
    return [(y0, min(size, y0 + step + margin)) for y0 in starts]


def windows(h: int, w: int, tile: int, grid: Grid = Grid()) -> Iterator[Window]:
    """Overlapping windows covering an (h, w) image whose sides are on the grid.

    Each window is a tile of at most `tile` plus the grid's context on both sides plus the blend; consecutive
    windows overlap by exactly the two contexts and the blend, so every output pixel is covered by weights that
    sum to one.
    """
    for y0, y1 in spans(h, tile, grid):
        for x0, x1 in spans(w, tile, grid):
            yield Window(y0, y1, x0, x1)


def edge_weights(n: int, start_inner: bool, end_inner: bool, pad: int, blend: int) -> np.ndarray:
    """1-D weights: 0 over the discarded context, a linear ramp, then 1; no ramp at image borders."""
    wgt = np.ones(n, np.float32)
    ramp = (np.arange(blend, dtype=np.float32) + 0.5) / blend
    if start_inner:
        wgt[:pad] = 0
        wgt[pad : pad + blend] = ramp
    if end_inner:
        wgt[n - pad :] = 0
        wgt[n - pad - blend : n - pad] = ramp[::-1]
    return wgt


CUDA_BATCH = 8  # windows of one shape per forward pass on CUDA; CPU runs one (4 per pass measured 0.65x)


def batches(wins: list[Window], size: int) -> Iterator[list[Window]]:
    """Consecutive windows of the same shape, at most `size` at a time (a batch must be one shape)."""
    group: list[Window] = []
    for win in wins:
        if group and (len(group) == size or (win.y1 - win.y0, win.x1 - win.x0) != (group[0].y1 - group[0].y0,
                                                                                    group[0].x1 - group[0].x0)):
            yield group
            group = []
        group.append(win)
    if group:
        yield group


def to_device(x: np.ndarray, device: torch.device) -> torch.Tensor:
    """A host array to the device: through pinned memory and an asynchronous copy on CUDA."""
    t = torch.from_numpy(np.ascontiguousarray(x))
    if device.type == "cuda":
        return t.pin_memory().to(device, non_blocking=True)
    return t.to(device)


def _forward(model: nn.Module, x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    ctx = torch.autocast("cuda", dtype=dtype) if dtype != torch.float32 else contextlib.nullcontext()
    with torch.inference_mode(), ctx:  # channels_last: +10-30% on CPU (oneDNN) and on CUDA (tensor cores)
        return model(x.contiguous(memory_format=torch.channels_last))[0].float()


def network_input(x: np.ndarray) -> np.ndarray:
    """(h, w, 1) gray or (h, w, 3) colour in network units -> (h, w, 3): gray goes in as three equal channels.
    Its way back is Blend(gray=True), which averages the blended output."""
    return np.repeat(x, 3, axis=2) if x.shape[2] == 1 else x


def forward_windows(
    model: nn.Module, read: Callable[[Window], np.ndarray], wins: list[Window], device: torch.device,
    dtype: torch.dtype = torch.float32, batch: int | None = None,
) -> Iterator[tuple[Window, torch.Tensor]]:
    """(window, its network output (h*s, w*s, 3) on the CPU) for each window, in order; `read(window)` gives the
    window's (h, w, 1 or 3) input. `batch`: windows per pass (None: CUDA_BATCH on CUDA, 1 on CPU)."""
    batch = batch or (CUDA_BATCH if device.type == "cuda" else 1)
    for group in batches(wins, batch):
        x = np.stack([network_input(read(win)).transpose(2, 0, 1) for win in group])
        ys = _forward(model, to_device(x, device), dtype).permute(0, 2, 3, 1).cpu()
        yield from zip(group, ys, strict=True)


class Blend:
    """The cross-fade accumulator of one output region: restored windows go in, in any order; finished rows come
    out, top first, as soon as every window that covers them has arrived.

    `region` is (r0, r1, c0, c1) in output px, `padded` the (H, W) of the input on the grid (the image's edges
    get no ramp), `wins` every window that will be added that overlaps the region. Rows are held in strips
    between consecutive window edges, allocated when first touched and freed when handed out, so a raster
    order of windows keeps about one window row in memory. With `gray`, finished rows are the channel mean.
    """

    def __init__(self, region: tuple[int, int, int, int], padded: tuple[int, int], wins: list[Window],
                 scale: int, grid: Grid, gray: bool = False, channels: int = 3) -> None:
        r0, r1, c0, c1 = region
        s = scale
        self.region, self.padded, self.scale, self.grid, self.gray, self.channels = region, padded, s, grid, gray, channels
        mine = [w for w in wins if w.y0 * s < r1 and w.y1 * s > r0 and w.x0 * s < c1 and w.x1 * s > c0]
        cuts = sorted({r0, r1} | {min(max(v * s, r0), r1) for w in mine for v in (w.y0, w.y1)})
        self.strips = list(itertools.pairwise(cuts))
        self.need = [sum(1 for w in mine if w.y0 * s < b and w.y1 * s > a) for a, b in self.strips]
        self.acc: dict[int, torch.Tensor] = {}
        self.total: dict[int, torch.Tensor] = {}
        self.next = 0  # first strip not yet handed out

    def add(self, win: Window, y: torch.Tensor) -> Iterator[tuple[int, np.ndarray]]:
        """Add one window's output (h*s, w*s, C); yield (first output row, rows) of each region row band that
        it finishes, in order (columns c0:c1; float32)."""
        r0, r1, c0, c1 = self.region
        s, (hp, wp), pad = self.scale, self.padded, self.grid.context * self.scale
        wy = edge_weights(y.shape[0], win.y0 > 0, win.y1 < hp, pad, BLEND * s)
        wx = edge_weights(y.shape[1], win.x0 > 0, win.x1 < wp, pad, BLEND * s)
        wgt = torch.from_numpy(wy[:, None] * wx[None, :])
        ox0, ox1 = max(win.x0 * s, c0), min(win.x1 * s, c1)
        cols = slice(ox0 - win.x0 * s, ox1 - win.x0 * s)
        for i, (a, b) in enumerate(self.strips):
            oy0, oy1 = max(win.y0 * s, a), min(win.y1 * s, b)
            if oy0 >= oy1 or ox0 >= ox1:
                continue
            if i not in self.acc:
                self.acc[i] = torch.zeros((b - a, c1 - c0, self.channels), dtype=torch.float32)
                self.total[i] = torch.zeros((b - a, c1 - c0), dtype=torch.float32)
            rows = slice(oy0 - win.y0 * s, oy1 - win.y0 * s)
            self.acc[i][oy0 - a : oy1 - a, ox0 - c0 : ox1 - c0].addcmul_(y[rows, cols], wgt[rows, cols][..., None])
            self.total[i][oy0 - a : oy1 - a, ox0 - c0 : ox1 - c0] += wgt[rows, cols]
            self.need[i] -= 1
        while self.next < len(self.strips) and self.need[self.next] == 0:
            i = self.next
            out = self.acc.pop(i).div_(self.total.pop(i)[..., None]).numpy()
            yield self.strips[i][0], out.mean(2, keepdims=True) if self.gray else out
            self.next += 1

    @property
    def done(self) -> bool:
        return self.next == len(self.strips)


def restore_tensor(
    model: nn.Module,
    read: Callable[[Window], np.ndarray],
    shape: tuple[int, int, int],
    out: np.ndarray,
    tile: int,
    device: torch.device,
    dtype: torch.dtype = torch.float32,
    progress: Callable[[int, int], None] | None = None,
    batch: int | None = None,
) -> None:
    """Restore an image given as a window reader into `out` (H*s, W*s, C), which may be a memmap: the
    in-memory path, one region for the whole image.

    `shape` is the (H, W, C) of the input, its sides already on the network's grid. `batch`: windows per pass
    (None: CUDA_BATCH on CUDA, 1 on CPU).
    """
    h, w, _ = shape
    s, grid = model.scale, Grid.of(model)
    wins = list(windows(h, w, tile, grid))
    blend = Blend((0, h * s, 0, w * s), (h, w), wins, s, grid, gray=out.shape[2] == 1,
                  channels=3 if out.shape[2] == 1 else out.shape[2])
    for done, (win, y) in enumerate(forward_windows(model, read, wins, device, dtype, batch), 1):
        for row, rows in blend.add(win, y):
            out[row : row + rows.shape[0]] = rows
        if progress is not None:
            progress(done, len(wins))


def _pad_reflect(img: np.ndarray, grid: Grid) -> np.ndarray:
    """Pad (H, W, C) at the bottom/right onto the grid, as the network would."""
    h, w = img.shape[:2]
    t = torch.from_numpy(img.transpose(2, 0, 1).copy())[None]
    ph, pw = grid.up(h) - h, grid.up(w) - w
    t = edge_pad(t, 0, pw, 0, ph)
    return t[0].numpy().transpose(1, 2, 0)


def restore_float(
    model: nn.Module, img: np.ndarray, tile: int = DEFAULT_TILE, device: torch.device = CPU,
    precision: str = "fp32", progress: Callable[[int, int], None] | None = None, clip: bool = True,
    out_channels: int | None = None,
) -> np.ndarray:
    """Restore a float32 (H, W, C) image, normalised to about [0, 1]: C = 3, or 1 for gray (three equal channels
    into the network, their mean out).

    Returns (H*s, W*s, C), clipped to [0, 1] unless `clip` is False (percentile-normalised data may pass it).
    `out_channels`: a network whose output has other channels than its input (a colour input only), such as the
    generator with its error head (restore/error_head.py).
    """
    dtype = resolve_precision(precision, device)
    model = model.to(device, memory_format=torch.channels_last)
    h, w = img.shape[:2]
    s, grid = model.scale, Grid.of(model)
    padded = _pad_reflect(img.astype(np.float32), grid)
    tile = grid.tile(tile)
    while True:
        out = np.zeros((padded.shape[0] * s, padded.shape[1] * s, out_channels or padded.shape[2]), np.float32)
        try:
            restore_tensor(model, lambda wi: padded[wi.y0 : wi.y1, wi.x0 : wi.x1], padded.shape, out, tile,
                           device, dtype, progress)
            break
        except torch.cuda.OutOfMemoryError:
            if tile <= MIN_TILE:
                raise
            torch.cuda.empty_cache()
            tile = grid.tile(tile // 2)
    out = out[: h * s, : w * s]
    return np.clip(out, 0, 1) if clip else out
