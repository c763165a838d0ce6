import numpy as np
import pytest
import torch

from mdeblur_cli.errors import MdeblurError
from mdeblur_cli.restore.arrays import restore_array
from mdeblur_cli.restore.tiles import restore_float, windows

from .conftest import smooth_image


@pytest.mark.parametrize("tile", [64, 96])
def test_tiled_equals_whole_image(tiny_net, tile):
    img = smooth_image(250, 283)
    whole = restore_float(tiny_net, img, tile=4096)
    calls = []
    tiled = restore_float(tiny_net, img, tile=tile, progress=lambda done, total: calls.append(total))
    assert whole.shape == (500, 566, 3)
    assert calls and calls[0] >= 4  # really tiled
    assert np.abs(whole - tiled).max() <= 1e-3


def test_unet_tiles_on_its_own_grid():
    """U-Net + SR pools four times: its windows start on multiples of 16 (not M-Deblurgan's 8), so tiled equals
    whole for it too."""
    from mdeblur_cli.models import build_model
    from mdeblur_cli.restore.tiles import Grid

    from .conftest import TINY_UNET

    torch.manual_seed(0)
    net = build_model("unet-sr", TINY_UNET).eval()
    grid = Grid.of(net)
    assert grid.multiple == 16 and all(w.y0 % 16 == 0 and w.x0 % 16 == 0 for w in windows(400, 336, 64, grid))
    img = smooth_image(250, 283)
    assert np.abs(restore_float(net, img, tile=4096) - restore_float(net, img, tile=64)).max() <= 1e-3


@pytest.mark.parametrize("shape,dtype", [
    ((33, 41), np.uint16), ((33, 41, 1), np.uint8), ((33, 41, 3), np.uint8), ((33, 41, 4), np.uint16),
    ((33, 41, 3), np.float32),
])
def test_restore_array_keeps_dtype_and_channels(tiny_model, shape, dtype):
    arr = smooth_image(33, 41, c=shape[2] if len(shape) == 3 else 1)
    arr = arr if len(shape) == 3 else arr[..., 0]
    if dtype == np.uint8:
        arr = (arr * 255).round().astype(np.uint8)
    elif dtype == np.uint16:
        arr = (arr * 65535).round().astype(np.uint16)
    out = restore_array(arr, tiny_model)
    assert out.dtype == dtype
    assert out.shape == (66, 82, *shape[2:])


def test_alpha_is_upscaled_separately(tiny_model):
    rgba = smooth_image(32, 32, c=4)
    rgba[..., 3] = 1.0
    rgba[:16, :, 3] = 0.0
    out = restore_array(rgba, tiny_model, alpha=True)
    assert np.allclose(out[:24, :, 3], 0, atol=0.02) and np.allclose(out[40:, :, 3], 1, atol=0.02)


def test_float_range_is_mapped_back(tiny_model):
    arr = smooth_image(24, 24)[..., 0] * 4000 + 100
    out = restore_array(arr, tiny_model)
    assert out.dtype == np.float32
    assert 0 < out.mean() and abs(out.mean() - arr.mean()) < 0.1 * arr.mean()


def test_half_precision_refused_on_cpu(tiny_model):
    with pytest.raises(MdeblurError, match="CUDA"):
        restore_array(np.zeros((16, 16), np.uint8), tiny_model, precision="bf16")


def test_oom_retries_with_smaller_tiles(tiny_net, monkeypatch):
    import mdeblur_cli.restore.tiles as r

    calls = []
    real = r.restore_tensor

    def flaky(model, read, shape, out, tile, *args, **kwargs):
        calls.append(tile)
        if tile > 64:
            raise torch.cuda.OutOfMemoryError("simulated")
        return real(model, read, shape, out, tile, *args, **kwargs)

    monkeypatch.setattr(r, "restore_tensor", flaky)
    out = r.restore_float(tiny_net, smooth_image(100, 100), tile=256)
    assert calls == [256, 128, 64] and out.shape == (200, 200, 3)


class _Bicubic(torch.nn.Module):
    """A stand-in network that only upsamples: restoring through it shows what the intensity mapping does."""

    scale = 2

    def forward(self, x):
        return torch.nn.functional.interpolate(x, scale_factor=2, mode="bicubic", align_corners=False), x


def _bicubic():
    from mdeblur_cli.weights import LoadedModel

    return LoadedModel(_Bicubic(), "bicubic")


@pytest.mark.parametrize("mode", ["auto", "percentile", "range", "none"])
def test_normalisation_is_undone_exactly_into_the_input_scale(mode):
    scene = smooth_image(40, 48, c=1)[..., 0]
    arr = np.rint(100 + scene * 4100).astype(np.uint16)  # 12-bit data over a camera offset of 100
    out = restore_array(arr, _bicubic(), normalize=mode)
    ref = torch.nn.functional.interpolate(torch.from_numpy(arr.astype(np.float32))[None, None], scale_factor=2,
                                          mode="bicubic", align_corners=False)[0, 0].numpy()
    assert out.dtype == np.uint16
    assert np.abs(out.astype(np.float64) - np.clip(np.rint(ref), 0, 65535)).max() <= 1  # rounding only
    assert out.min() > 50 and np.median(out) > 100  # the offset is kept, not clipped to 0


def test_percentile_output_is_clipped_only_at_the_dtypes_limits():
    arr = np.zeros((32, 32), np.float32)
    arr[8:24, 8:24] = 5000.0  # a float image far outside [0, 1]
    out = restore_array(arr, _bicubic(), normalize="percentile")
    assert out.dtype == np.float32 and out.max() > 5000  # bicubic overshoot survives: no clip to [0, 1]
    u8 = restore_array((arr > 0).astype(np.uint8) * 255, _bicubic(), normalize="percentile")
    assert u8.min() == 0 and u8.max() == 255


def test_none_feeds_floats_as_they_are_and_keeps_them():
    arr = (smooth_image(24, 24) * 3.9 + 0.2).astype(np.float32)
    out = restore_array(arr, _bicubic(), normalize="none")
    assert out.max() > 3.5 and out.min() < 0.5  # not cut at 1


def test_restore_uses_the_percentiles_recorded_in_the_weights(tmp_path, tiny_net):
    from mdeblur_cli.weights import load_model, save_weights

    path = tmp_path / "m.safetensors"
    save_weights(path, tiny_net, "mdeblurgan", {"normalization": {"percentiles": [2.0, 98.0]}})
    assert load_model(path).percentiles == (2.0, 98.0)
    save_weights(path, tiny_net, "mdeblurgan", {"degradation": {"percentiles": [1.0, 99.5]}})  # phase-I files
    assert load_model(path).percentiles == (1.0, 99.5)
    assert load_model("mdeblurgan-x2").percentiles == (0.1, 99.9)


def test_windows_batch_by_shape_in_order():
    """CUDA runs several windows per pass: a batch holds one shape, and every window comes once, in order."""
    from mdeblur_cli.restore.tiles import Window, batches

    wins = [Window(0, 40, 0, 40), Window(0, 40, 30, 70), Window(0, 40, 60, 96), Window(30, 70, 0, 40),
            Window(30, 70, 30, 70)]
    groups = list(batches(wins, 2))
    assert [w for g in groups for w in g] == wins
    assert all(len({(w.y1 - w.y0, w.x1 - w.x0) for w in g}) == 1 and len(g) <= 2 for g in groups)
    assert len(groups) == 3


def test_several_windows_per_pass_give_the_same_image(tiny_net):
    """The CUDA batching, run on the CPU: windows three at a time give what one at a time gives."""
    from mdeblur_cli.restore.tiles import restore_tensor

    img = np.random.default_rng(3).random((160, 208, 3), np.float32)
    outs = []
    for batch in (1, 3):
        out = np.zeros((320, 416, 3), np.float32)
        restore_tensor(tiny_net, lambda w: img[w.y0 : w.y1, w.x0 : w.x1], img.shape, out, 64, torch.device("cpu"),
                       batch=batch)
        outs.append(out)
    assert np.abs(outs[0] - outs[1]).max() < 1e-5


def test_the_python_api_names_a_wrong_argument(tiny_model, tiny_net):
    with pytest.raises(TypeError, match="not the path"):
        restore_array("cells.png", tiny_model)
    with pytest.raises(TypeError, match="give what load_model returns"):
        restore_array(np.zeros((16, 16), np.uint8), tiny_net)


def test_the_device_is_resolved_once_along_a_restore(tmp_path, tiny_weights, monkeypatch):
    """`mdeblur restore` resolves --device at its boundary and passes a torch.device down: one resolution."""
    from typer.testing import CliRunner

    import mdeblur_cli.device as dev
    import mdeblur_cli.scale.batch as batch
    from mdeblur_cli.cli import app
    from mdeblur_cli.formats.images import write_image

    calls = []
    real = dev.resolve_device

    def counting(name="auto"):
        calls.append(name)
        return real(name)

    monkeypatch.setattr(dev, "resolve_device", counting)
    monkeypatch.setattr(batch, "resolve_device", counting)
    write_image(tmp_path / "a.png", np.rint(smooth_image(40, 48) * 255).astype(np.uint8))
    res = CliRunner().invoke(app, ["restore", str(tmp_path / "a.png"), "-o", str(tmp_path / "b.png"), "--weights",
                                   str(tiny_weights), "--device", "cpu"])
    assert res.exit_code == 0, res.output
    assert calls == ["cpu"]
