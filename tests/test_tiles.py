"""The tile engine, tested once for every path (in memory, streamed bands, Dask chunks, slides): the Blend
accumulator takes windows in any order and hands back finished rows; seams, edges and its memory bound."""

import random

import numpy as np
import pytest
import torch

from mdeblur_cli.restore.tiles import Blend, Grid, Window, windows

S = 2


def _fake_outputs(wins, channels=3, seed=0):
    """A smooth 'network output' per window: a known field sampled at each window's output pixels, plus a
    per-window error in the discarded context (which must not reach the result)."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    for w in wins:
        yy, xx = torch.meshgrid(torch.arange(w.y0 * S, w.y1 * S, dtype=torch.float32),
                                torch.arange(w.x0 * S, w.x1 * S, dtype=torch.float32), indexing="ij")
        field = torch.stack([torch.sin(yy / 37 + c) * torch.cos(xx / 23 - c) for c in range(channels)], -1)
        out[w] = field + 1e-3 * torch.rand(field.shape, generator=g)
    return out


def _field(h, w, channels=3):
    yy, xx = np.mgrid[0 : h * S, 0 : w * S].astype(np.float32)
    return np.stack([np.sin(yy / 37 + c) * np.cos(xx / 23 - c) for c in range(channels)], -1)


def _collect(blend, items, shape):
    out = np.full(shape, np.nan, np.float32)
    handed = []
    for win, y in items:
        for row, rows in blend.add(win, y):
            handed.append(row)
            out[row - blend.region[0] : row - blend.region[0] + rows.shape[0]] = rows
    return out, handed


@pytest.mark.parametrize("order", ["raster", "shuffled", "reversed"])
def test_blend_takes_windows_in_any_order_and_covers_every_pixel(order):
    h, w, grid = 200, 264, Grid(8, 16)
    wins = list(windows(h, w, 64, grid))
    assert len(wins) >= 9
    ys = _fake_outputs(wins)
    items = [(win, ys[win]) for win in wins]
    if order == "shuffled":
        random.Random(0).shuffle(items)
    elif order == "reversed":
        items = items[::-1]
    blend = Blend((0, h * S, 0, w * S), (h, w), wins, S, grid)
    got, handed = _collect(blend, items, (h * S, w * S, 3))
    assert blend.done and not np.isnan(got).any()
    assert handed == sorted(handed)  # finished rows come out top first
    assert np.abs(got - _field(h, w)).max() < 2e-3  # weights sum to one: the field comes back, no seam


def test_any_region_of_the_output_equals_that_region_of_the_whole():
    """What a Dask chunk or a slide tile does: blend only the windows over one region."""
    h, w, grid = 200, 264, Grid(8, 16)
    wins = list(windows(h, w, 64, grid))
    ys = _fake_outputs(wins)
    whole, _ = _collect(Blend((0, h * S, 0, w * S), (h, w), wins, S, grid), [(x, ys[x]) for x in wins],
                        (h * S, w * S, 3))
    for r0, r1, c0, c1 in [(0, 128, 0, 128), (130, 400, 250, 528), (77, 91, 3, 500)]:
        blend = Blend((r0, r1, c0, c1), (h, w), wins, S, grid)
        mine = [x for x in wins if x.y0 * S < r1 and x.y1 * S > r0 and x.x0 * S < c1 and x.x1 * S > c0]
        part, _ = _collect(blend, [(x, ys[x]) for x in mine], (r1 - r0, c1 - c0, 3))
        assert blend.done and np.array_equal(part, whole[r0:r1, c0:c1])


def test_raster_order_keeps_about_one_window_row_in_memory():
    h, w, grid = 600, 200, Grid(8, 16)
    wins = list(windows(h, w, 64, grid))
    rows = sorted({x.y0 for x in wins})
    assert len(rows) >= 6
    ys = _fake_outputs(wins)
    blend = Blend((0, h * S, 0, w * S), (h, w), wins, S, grid)
    alive = []
    for win in wins:
        list(blend.add(win, ys[win]))
        alive.append(sum(a.shape[0] for a in blend.acc.values()))
    window_rows = max(x.y1 - x.y0 for x in wins) * S
    assert max(alive) <= window_rows  # never more than one window's height of accumulated rows


def test_image_edges_get_no_ramp_and_gray_is_the_channel_mean():
    """A single window covering the whole image is handed back as it is (weights one at every edge)."""
    grid = Grid(8, 16)
    win = Window(0, 40, 0, 56)
    y = torch.rand(80, 112, 3)
    blend = Blend((0, 80, 0, 112), (40, 56), [win], S, grid, gray=True)
    ((row, got),) = list(blend.add(win, y))
    assert row == 0 and got.shape == (80, 112, 1)
    assert np.allclose(got[..., 0], y.numpy().mean(2), atol=1e-7)


def test_the_context_of_inner_edges_never_reaches_the_output():
    h, w, grid = 128, 256, Grid(8, 16)
    wins = list(windows(h, w, 64, grid))
    assert len(wins) > 1
    ys = _fake_outputs(wins)
    for win in wins:  # garbage over the discarded context of every inner edge
        ctx = grid.context * S
        if win.x0 > 0:
            ys[win][:, :ctx] = 1e6
        if win.x1 < w:
            ys[win][:, -ctx:] = 1e6
    got, _ = _collect(Blend((0, h * S, 0, w * S), (h, w), wins, S, grid), [(x, ys[x]) for x in wins],
                      (h * S, w * S, 3))
    assert np.abs(got - _field(h, w)).max() < 2e-3
