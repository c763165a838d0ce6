"""The learned error head: conformal calibration, storage in the weights, one pass, tile invariance, fallback."""

import json

import numpy as np
import torch
from typer.testing import CliRunner

from mdeblur_cli.cli import app
from mdeblur_cli.restore.arrays import TrustRequest, restore_plane
from mdeblur_cli.restore.error_head import ErrorHead, HeadedNet, HeadTrust, crc_lambda, verdict
from mdeblur_cli.restore.trust import output_contrast
from mdeblur_cli.weights import load_model, store_error_head

runner = CliRunner()


def _headed(tiny_weights, lam=2.0):
    torch.manual_seed(0)
    head = ErrorHead(8, 2)
    store_error_head(tiny_weights, HeadTrust(head.eval(), lam, 0.95, "laplace", "test", "test", 20))
    return load_model(tiny_weights)


def test_conformal_band_covers_the_stated_share_where_the_error_law_is_known():
    rng = np.random.default_rng(0)

    def image():  # sigma known per pixel; |error| half-normal of that scale; the head predicts sigma * 0.3
        sigma = np.exp(rng.normal(-4, 1, 32 * 32))
        return np.abs(rng.normal(0, sigma)) / (0.3 * sigma)

    lam = crc_lambda([image() for _ in range(200)], 0.95)
    cover = np.mean([np.mean(image() <= lam) for _ in range(400)])
    assert abs(cover - 0.95) <= 0.02, cover
    assert abs(lam - 1.96 / 0.3) < 0.3  # the half-normal's 95% point over the head's under-estimate


def test_conformal_needs_enough_images_for_its_level():
    few = [np.full(10, 1.0) for _ in range(5)]  # 5 images cannot certify 95%: the band must cover all
    assert crc_lambda(few, 0.95) >= 1.0


def test_head_loads_from_the_weights_file_alone_and_gives_a_map_of_the_outputs_geometry(tiny_weights):
    model = _headed(tiny_weights, lam=3.0)
    assert model.head is not None and model.trust is model.head and model.trust.lam == 3.0
    meta = json.loads(json.dumps(model.provenance["error_head"]))
    assert meta["level"] == 0.95 and "conformal" in meta["guarantee"]
    img = (np.random.default_rng(1).random((40, 56, 3)) * 255).astype(np.uint8)
    req = TrustRequest(model.trust)
    restored = restore_plane(img, model.net, "rgb", trust=req)
    sd = req.maps[0]
    assert sd.shape == restored.shape == (80, 112, 3)
    assert np.isfinite(sd).all() and (sd >= 0).all()
    assert req.summaries[0]["map"] == "learned error head"


def test_head_map_is_the_same_across_tile_sizes(tiny_weights):
    from mdeblur_cli.restore.tiles import restore_float

    model = _headed(tiny_weights)
    headed = HeadedNet(model.net, model.head.head)
    img = np.random.default_rng(2).random((150, 170, 3)).astype(np.float32)
    a = restore_float(headed, img, tile=64, clip=False, out_channels=5)
    b = restore_float(headed, img, tile=512, clip=False, out_channels=5)
    assert np.abs(a - b).max() < 1e-4
    plain = restore_float(model.net, img, tile=64, clip=False)
    assert np.abs(a[..., :3] - plain).max() < 1e-4  # the head changes nothing in the restored image


def test_weights_without_a_head_fall_back_to_the_sampling_map_and_say_so(tmp_path, tiny_weights):
    import cv2

    cv2.imwrite(str(tmp_path / "a.png"), (np.random.default_rng(3).random((32, 32)) * 255).astype(np.uint8))
    res = runner.invoke(app, ["restore", str(tmp_path / "a.png"), "-o", str(tmp_path / "o.tif"), "--weights",
                              str(tiny_weights), "--trust", "--report", str(tmp_path / "r.json")])
    assert res.exit_code == 0, res.output
    assert "sampling map" in res.output
    assert json.loads((tmp_path / "r.json").read_text())["records"][0]["map"] == "sampling"
    import tifffile

    desc = json.loads(tifffile.TiffFile(tmp_path / "o_trust.tif").shaped_metadata[0]["description"])
    assert desc["map"].startswith("sampling")
    _headed(tiny_weights)
    res = runner.invoke(app, ["restore", str(tmp_path / "a.png"), "-o", str(tmp_path / "o2.tif"), "--weights",
                              str(tiny_weights), "--trust"])
    assert res.exit_code == 0, res.output
    assert "learned error head map" in res.output
    desc = json.loads(tifffile.TiffFile(tmp_path / "o2_trust.tif").shaped_metadata[0]["description"])
    assert desc["map"] == "learned error head" and "conformal" in desc["band"]


def test_verdict_flags_structure_marked_as_invented():
    rng = np.random.default_rng(4)
    out = np.repeat(rng.normal(0.5, 0.05, (64, 64, 1)), 3, axis=2).astype(np.float32)  # texture of contrast ~0.05
    sd = np.full((64, 64), 0.01, np.float32)
    yes, no = np.full((64, 64), 2.0, np.float32), np.full((64, 64), -2.0, np.float32)
    img = out[::2, ::2]  # an input that holds the same texture
    assert verdict(sd, yes, img, out, 0.002)["suspect"]  # structure, marked invented
    assert not verdict(sd, no, img, out, 0.002)["suspect"]  # structure the head believes
    assert not verdict(sd, yes, img, out * 0 + 0.5, 0.002)["suspect"]  # no structure shown: nothing to doubt
    assert output_contrast(out).mean() > 0.02


def test_verdict_flags_contrast_the_input_cannot_support():
    """A flat noisy input restored to texture ten times its noise is suspect whatever the head says; the same
    input restored flat, or sharpened no more than a restorer may, is not."""
    rng = np.random.default_rng(5)
    img = rng.normal(0.5, 0.002, (32, 32, 3)).astype(np.float32)
    sd, no = np.full((64, 64), 0.01, np.float32), np.full((64, 64), -2.0, np.float32)
    blobs = np.repeat(rng.normal(0.5, 0.02, (64, 64, 1)), 3, axis=2).astype(np.float32)
    assert verdict(sd, no, img, blobs, 0.002)["suspect"]
    assert not verdict(sd, no, img, np.full((64, 64, 3), 0.5, np.float32), 0.002)["suspect"]
    up = np.repeat(np.repeat(img, 2, 0), 2, 1)
    assert not verdict(sd, no, img, 0.5 + 1.5 * (up - 0.5), 0.002)["suspect"]


def test_head_map_on_cluster_local_equals_the_in_process_map(tmp_path, tiny_weights):
    """`--trust --cluster local` writes the same learned map (and the same verdict) as an in-process run; a worker
    runs torch on one thread, so sums may round differently in the last bits."""
    import cv2
    import tifffile

    _headed(tiny_weights)
    src = tmp_path / "in"
    src.mkdir()
    for i in range(2):
        cv2.imwrite(str(src / f"a{i}.png"), (np.random.default_rng(10 + i).random((40, 48, 3)) * 255).astype(np.uint8))
    for where, extra in (("local", ["--cluster", "local", "--workers", "1"]), ("here", [])):
        res = runner.invoke(app, ["restore", str(src), "--out-dir", str(tmp_path / where), "--weights",
                                  str(tiny_weights), "--trust", "--report", str(tmp_path / f"{where}.json"), *extra])
        assert res.exit_code == 0, res.output
    for i in range(2):
        a = tifffile.imread(tmp_path / "local" / f"a{i}_x2_trust.tif")
        b = tifffile.imread(tmp_path / "here" / f"a{i}_x2_trust.tif")
        assert a.shape == b.shape == (80, 96, 3)
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-3)
    rec = {r["input"]: r for r in json.loads((tmp_path / "here.json").read_text())["records"]}
    for r in json.loads((tmp_path / "local.json").read_text())["records"]:
        assert r["map"] == rec[r["input"]]["map"] == "learned error head"
        assert r["suspect"] == rec[r["input"]]["suspect"]
