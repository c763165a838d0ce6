"""Trust maps: geometry, tile invariance, suspect verdicts, the stored calibration, bad inputs (not timed)."""

import json

import numpy as np
import pytest
import tifffile
import torch
from typer.testing import CliRunner

from mdeblur_cli.cli import app
from mdeblur_cli.evaluate.trust_bench import NoiseAmplifier
from mdeblur_cli.restore.arrays import TrustRequest, restore_array, restore_stack
from mdeblur_cli.restore.trust import TrustModel, mad_sigma, noise_sigma
from mdeblur_cli.weights import LoadedModel, load_model, save_weights, set_provenance

runner = CliRunner()


def _flat_noise(seed=0, side=96):
    rng = np.random.default_rng(seed)
    return np.clip(np.rint(128 + rng.normal(0, 6, (side, side))), 0, 255).astype(np.uint8)


def test_mad_sigma_finds_the_noise_it_is_given():
    rng = np.random.default_rng(1)
    img = 0.5 + rng.normal(0, 0.03, (256, 256, 3))
    assert abs(mad_sigma(img) - 0.03) < 0.003
    assert noise_sigma(np.full((64, 64, 3), 0.5), quant_step=1 / 255) == pytest.approx(1 / 255 / np.sqrt(12), rel=1e-6)


def test_map_has_the_outputs_geometry_and_is_finite(tiny_model):
    img = (np.random.default_rng(0).random((40, 56, 3)) * 255).astype(np.uint8)
    req = TrustRequest(TrustModel())
    out = restore_stack(img, "YXS", tiny_model, channels="rgb", trust=req)
    sd = req.maps[0]
    assert sd.shape == out.shape and sd.dtype == np.float32
    assert np.isfinite(sd).all() and (sd >= 0).all() and sd.max() > 0
    stack = (np.random.default_rng(1).random((2, 3, 32, 40)) * 4000).astype(np.uint16)
    req = TrustRequest(TrustModel())
    out = restore_stack(stack, "ZCYX", tiny_model, trust=req)
    assert req.maps[0].shape == out.shape and len(req.summaries) == 6


def test_map_is_the_same_across_tile_sizes(tiny_model):
    img = (np.random.default_rng(2).random((150, 170)) * 255).astype(np.uint8)
    maps = []
    for tile in (64, 1024):
        req = TrustRequest(TrustModel())
        restore_stack(img, "YX", tiny_model, tile=tile, trust=req)
        maps.append(req.maps[0])
    assert np.abs(maps[0] - maps[1]).max() <= 1e-3 * max(1.0, float(maps[1].max()))


def test_flat_noise_through_a_noise_amplifier_is_suspect_and_through_a_smoother_is_not():
    flat = _flat_noise()
    verdicts = {}
    for gain in (12.0, -0.9):  # -0.9: mostly the local mean, a smoothing 'network'
        req = TrustRequest(TrustModel())
        restore_stack(flat, "YX", LoadedModel(NoiseAmplifier(gain), "planted"), trust=req)
        verdicts[gain] = req.summaries[0]
    assert verdicts[12.0]["suspect"] and not verdicts[-0.9]["suspect"]
    assert verdicts[12.0]["doubtful_share"] > 5 * max(verdicts[-0.9]["doubtful_share"], 1e-3)


def test_the_calibration_written_into_the_weights_is_read_back_and_applied(tmp_path, tiny_net, tiny_model):
    path = tmp_path / "w.safetensors"
    save_weights(path, tiny_net, "mdeblurgan", {"data": "test"})
    before = torch.cat([p.flatten() for p in load_model(path).net.parameters()])
    img = (np.random.default_rng(3).random((48, 48, 3)) * 255).astype(np.uint8)
    maps = []
    for scale in (1.0, 3.0):
        set_provenance(path, "trust", TrustModel([0.0, 1.0, 0.0], scale, "test").to_dict())
        model = load_model(path)
        assert model.trust.scale == scale
        req = TrustRequest(model.trust)
        restore_stack(img, "YXS", model, channels="rgb", trust=req)
        maps.append(req.maps[0])
    assert np.allclose(maps[1], 3 * maps[0], rtol=1e-5, atol=1e-6)
    assert torch.equal(before, torch.cat([p.flatten() for p in load_model(path).net.parameters()]))
    assert np.array_equal(restore_array(img, load_model(path)), restore_array(img, tiny_model))


def test_cli_writes_the_map_the_summary_and_the_report(tmp_path, tiny_weights):
    import cv2

    cv2.imwrite(str(tmp_path / "a.png"), (np.random.default_rng(4).random((40, 48)) * 255).astype(np.uint8))
    cv2.imwrite(str(tmp_path / "b.png"), _flat_noise(side=40))
    out = tmp_path / "r"
    res = runner.invoke(app, ["restore", str(tmp_path / "a.png"), str(tmp_path / "b.png"), "--out-dir", str(out),
                              "--weights", str(tiny_weights), "--trust", "--report", str(out / "report.json")])
    assert res.exit_code == 0, res.output
    with tifffile.TiffFile(out / "a_x2_trust.tif") as t:
        assert t.series[0].shape == (80, 96) and t.series[0].dtype == np.float32
        assert "predicted error standard deviation" in t.pages[0].description
    rep = json.loads((out / "report.json").read_text())
    assert rep["inputs"] == 2 and {r["trust_map"] for r in rep["records"]} == {str(out / "a_x2_trust.tif"),
                                                                              str(out / "b_x2_trust.tif")}
    assert "suspect" in res.output
    again = runner.invoke(app, ["restore", str(tmp_path / "a.png"), "-o", str(tmp_path / "c.png"), "--weights",
                                str(tiny_weights), "--fail-on-suspect"])
    assert again.exit_code == 2 and "needs --trust" in again.output and not (tmp_path / "c.png").exists()


def test_fail_on_suspect_exits_3(tmp_path, tiny_weights, monkeypatch):
    """A planted noise amplifier on a flat noise field: suspect, so --fail-on-suspect exits 3 (outputs kept)."""
    import cv2

    import mdeblur_cli.scale.batch as batch

    cv2.imwrite(str(tmp_path / "n.png"), _flat_noise(side=48))
    monkeypatch.setattr(batch, "load_model", lambda *a, **k: LoadedModel(NoiseAmplifier(), "planted"))
    res = runner.invoke(app, ["restore", str(tmp_path / "n.png"), "-o", str(tmp_path / "o.png"), "--weights",
                              str(tiny_weights), "--trust", "--fail-on-suspect"])
    assert res.exit_code == 3, res.output
    assert (tmp_path / "o.png").exists() and (tmp_path / "o_trust.tif").exists() and "SUSPECT" in res.output


def test_trust_with_a_bad_input_fails_like_any_restore(tmp_path, tiny_weights):
    (tmp_path / "bad.png").write_bytes(b"not an image")
    before = sorted(p.name for p in tmp_path.iterdir())
    res = runner.invoke(app, ["restore", str(tmp_path / "bad.png"), "-o", str(tmp_path / "o.png"), "--weights",
                              str(tiny_weights), "--trust"])
    assert res.exit_code == 2
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and "bad.png" in lines[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_benchmark_trust_prints_the_calibration_and_detection_tables(tmp_path):
    res = runner.invoke(app, ["benchmark", "--dataset", "reserved", "--trust", "--limit", "1", "--json",
                              str(tmp_path / "t.json")])
    assert res.exit_code == 0, res.output
    assert "gradient baseline" in res.output and "planted model" in res.output
    rep = json.loads((tmp_path / "t.json").read_text())
    assert [r["kind"] for r in rep["calibration"]] == ["8", "jpeg90", "poisson1000", "defocus"]
    assert all(-1 <= r["spearman"] <= 1 and 0 <= r["coverage"] <= 1 for r in rep["calibration"])
    assert all(r["images"] == 1 for r in rep["calibration"])
    flat = next(d for d in rep["detection"] if d["image"] == "flat noise field")
    assert flat["planted_suspect"] and not flat["good_suspect"]
    assert {d["planted"] for d in rep["detection"]} == {"noise amplifier", "texture inventor"}


def test_trust_maps_never_collide_and_skip_existing_needs_both_files(tmp_path, tiny_weights):
    import cv2

    src = tmp_path / "in"
    src.mkdir()
    img = (np.random.default_rng(5).random((32, 40)) * 255).astype(np.uint8)
    cv2.imwrite(str(src / "cam.png"), img)
    cv2.imwrite(str(src / "cam.tif"), img)  # cam_x2.png and cam_x2.tif: one map name, cam_x2_trust.tif
    res = runner.invoke(app, ["restore", str(src), "--out-dir", str(tmp_path / "o"), "--weights", str(tiny_weights),
                              "--trust"])
    assert res.exit_code == 2 and "trust map" in res.output and not (tmp_path / "o").exists()
    (src / "cam.tif").unlink()
    out = tmp_path / "o"
    args = ["restore", str(src), "--out-dir", str(out), "--weights", str(tiny_weights), "--trust"]
    assert runner.invoke(app, args).exit_code == 0
    (out / "cam_x2.png").unlink()  # as if stopped between the map and the output
    res = runner.invoke(app, [*args, "--skip-existing", "--report", str(tmp_path / "r.json")])
    assert res.exit_code == 0 and (out / "cam_x2.png").exists(), res.output
    res = runner.invoke(app, [*args, "--skip-existing", "--report", str(tmp_path / "r2.json")])
    rep = json.loads((tmp_path / "r2.json").read_text())
    assert "skipping 1" in res.output and rep["inputs"] == 1 and rep["skipped"] == 1


def test_a_stacks_verdict_agrees_with_its_share(tiny_model):
    from mdeblur_cli.restore.trust import SUSPECT_SHARE, combine

    planes = [{"doubtful_share": s, "suspect": s > SUSPECT_SHARE, "median_error": 1.0} for s in (0.0, 0.0, 0.025)]
    image = combine(planes, [np.ones((4, 4), np.float32)])
    assert image["suspect"] == (image["doubtful_share"] > SUSPECT_SHARE) and image["suspect_planes"] == 1
