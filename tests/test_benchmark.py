import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from mdeblur_cli.cli import app
from mdeblur_cli.data.eval import load_eval_set
from mdeblur_cli.errors import MdeblurError
from mdeblur_cli.evaluate.benchmark import bicubic_method, model_method, rl_method, run_benchmark
from mdeblur_cli.evaluate.figures import pick_regions
from mdeblur_cli.evaluate.psfs import parse_psf

runner = CliRunner()


def test_rl_beats_bicubic_on_the_protocol_it_knows():
    es = load_eval_set("reserved", limit=2)
    results, kept = run_benchmark(es.pairs, [bicubic_method(2), rl_method(2)], 2, y_channel=True, keep=1)
    by = {r["method"]: r for r in results}
    assert by["rl-sr"]["psnr"] > by["bicubic"]["psnr"] + 1
    assert {"psnr_y", "ssim_y", "seconds_per_mpix"} <= set(by["bicubic"])
    assert list(kept) == ["retina"] and kept["retina"]["rl-sr"].shape == (512, 512, 3)


def test_model_method_counts_parameters(tiny_model):
    es = load_eval_set("reserved", limit=1)
    es.pairs[0].lr = es.pairs[0].lr[:, :40, :40]
    es.pairs[0].hr = es.pairs[0].hr[:, :80, :80]
    results, _ = run_benchmark(es.pairs, [model_method("m", tiny_model, torch.device("cpu"))], 2)
    assert results[0]["params"] == sum(p.numel() for p in tiny_model.net.parameters())


def test_psf_specs(tmp_path):
    assert parse_psf("gaussian:1.5").sum().item() == pytest.approx(1)
    assert parse_psf("disk:2").shape[0] % 2 == 1
    np.save(tmp_path / "k.npy", np.ones((5, 5)))
    assert parse_psf(str(tmp_path / "k.npy")).sum().item() == pytest.approx(1)
    with pytest.raises(MdeblurError):
        parse_psf("gaussian:abc")
    with pytest.raises(MdeblurError):
        parse_psf("nothing")
    rgb = parse_psf("defocus:60")  # x5/NA 0.12: geometric radius 60 tan(asin 0.12) / 1.3 um = 5.6 LR px
    assert rgb.shape[0] == 3 and rgb.shape[1] == rgb.shape[2] >= 2 * 5 + 1
    assert torch.allclose(rgb.sum((1, 2)), torch.ones(3), atol=1e-5)
    assert parse_psf("defocus:120").shape[-1] > rgb.shape[-1]


def test_cli_rl_without_a_known_psf_searches_a_grid_and_says_so(tmp_path):
    from mdeblur_cli.data import skimage_image
    from mdeblur_cli.data.eval import centre_crop, fire_pairs
    from mdeblur_cli.formats.images import write_image

    # A paired folder (no PSF recorded) made with the FIRE protocol, Gaussian sigma 1.5 LR px.
    (pair,) = fire_pairs([("astro", centre_crop(skimage_image("astronaut"), 192, 4))], 1.5, 2)
    for sub, img in (("lr", pair.lr), ("hr", pair.hr)):
        (tmp_path / "d" / sub).mkdir(parents=True)
        write_image(tmp_path / "d" / sub / "a.png",
                    (img.clamp(0, 1).permute(1, 2, 0).numpy() * 65535 + 0.5).astype(np.uint16))
    out = tmp_path / "r.json"
    res = runner.invoke(app, ["benchmark", "--dataset", str(tmp_path / "d"), "--methods", "bicubic,rl-sr",
                              "--json", str(out)])
    assert res.exit_code == 0, res.output
    assert "grid" in res.output
    rep = json.loads(out.read_text())
    rl = rep["rl_psf"]
    assert rl["source"].startswith("grid search") and len(rl["grid"]) >= 10
    # Among the Gaussians the search peaks at the blur that made the data. (A PSF a little wider than the truth
    # can score higher overall: 30 RL iterations do not converge, and a wider PSF sharpens faster.)
    gaussians = [g for g in rl["grid"] if g["psf"].startswith("gaussian:")]
    assert max(gaussians, key=lambda g: g["psnr"])["psf"] in ("gaussian:1.25", "gaussian:1.5", "gaussian:1.75")
    best = max(g["psnr"] for g in rl["grid"])
    assert [g["psnr"] for g in rl["grid"] if g["psf"] == rl["psf"]] == [best]
    assert rep["results"][1]["psnr"] == pytest.approx(best, abs=1e-4)  # the row is the chosen grid point
    assert rep["results"][1]["psnr"] > rep["results"][0]["psnr"] + 1
    # A given PSF skips the search and is recorded as given.
    res = runner.invoke(app, ["benchmark", "--dataset", str(tmp_path / "d"), "--methods", "rl-sr",
                              "--psf", "defocus:30", "--json", str(out), "--overwrite"])
    assert res.exit_code == 0, res.output
    assert json.loads(out.read_text())["rl_psf"] == {"source": "--psf", "psf": "defocus:30"}


def test_regions_go_where_methods_differ():
    a = np.zeros((100, 100, 3), np.float32)
    b = a.copy()
    b[60:80, 10:30] = 1
    (y, x), _ = pick_regions([a, b], 20)
    assert abs(y - 60) <= 2 and abs(x - 10) <= 2


def test_cli_json_shape_and_figure(tmp_path, tiny_weights):
    out = tmp_path / "r.json"
    fig = tmp_path / "f.png"
    res = runner.invoke(app, ["benchmark", "--dataset", "reserved", "--limit", "1", "--methods", "bicubic,mdeblurgan",
                              "--weights", str(tiny_weights), "--json", str(out), "--figure", str(fig),
                              "--figure-images", "1", "--markdown", str(tmp_path / "r.md")])
    assert res.exit_code == 0, res.output
    rep = json.loads(out.read_text())
    assert rep["dataset"] == "reserved" and rep["stand_in"] is False and rep["protocol"]["name"] == "FIRE"
    row = rep["results"][1]
    assert {"method", "psnr", "psnr_std", "ssim", "ssim_std", "params", "seconds_per_mpix", "n_images"} <= set(row)
    assert row["n_images"] == 1 and fig.exists() and "| mdeblurgan |" in (tmp_path / "r.md").read_text()
    assert row["weights"] == str(tiny_weights) and rep["results"][0]["weights"] is None  # which file was scored


def test_cli_stand_in_notice_and_bad_method(tmp_path):
    res = runner.invoke(app, ["benchmark", "--dataset", "fire", "--limit", "1", "--methods", "bicubic",
                              "--data-root", str(tmp_path)])
    assert res.exit_code == 0 and "STAND-IN" in res.output
    res = runner.invoke(app, ["benchmark", "--methods", "magic"])
    assert res.exit_code == 2 and "magic" in res.output and "rl-sr" in res.output  # the valid ones named


def test_plot_params_without_matplotlib_fails_before_writing(tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib now raises ImportError
    out = tmp_path / "r.json"
    res = runner.invoke(app, ["benchmark", "--dataset", "reserved", "--limit", "1", "--methods", "bicubic",
                              "--json", str(out), "--plot-params", str(tmp_path / "p.png")])
    assert res.exit_code == 2
    assert "mdeblur[plot]" in res.output  # the extra's name survives the console's markup
    assert not out.exists() and not (tmp_path / "p.png").exists()


def test_cli_self_ensemble_rows_are_named_plus(tmp_path, tiny_weights):
    out = tmp_path / "r.json"
    res = runner.invoke(app, ["benchmark", "--dataset", "reserved", "--limit", "1", "--methods", "mdeblurgan",
                              "--weights", str(tiny_weights), "--self-ensemble", "--json", str(out)])
    assert res.exit_code == 0, res.output
    rows = json.loads(out.read_text())["results"]
    assert [r["method"] for r in rows] == ["mdeblurgan+"] and rows[0]["params"] > 0


def test_bad_psf_error_is_printed_verbatim(tmp_path):
    # rich would turn ':abc:' into an emoji; the one-line error must show the user's text as typed.
    out = tmp_path / "r.json"
    res = runner.invoke(app, ["benchmark", "--dataset", "reserved", "--limit", "1", "--methods", "rl-sr",
                              "--psf", "gaussian:abc", "--json", str(out)])
    assert res.exit_code == 2 and not out.exists()
    assert "--psf gaussian:abc: not a number after 'gaussian:'" in res.output


def test_inputs_enter_as_files_and_are_scored_against_the_clean_truth():
    from mdeblur_cli.evaluate.benchmark import INPUT_CONDITIONS, prepare_inputs

    es = load_eval_set("reserved", limit=2)
    for p in es.pairs:
        p.lr, p.hr = p.lr[:, :64, :64], p.hr[:, :128, :128]
    rows = {}
    for name in ("float", "16", "8", "dim12", "jpeg90", "poisson1000"):
        prepared = prepare_inputs(es.pairs, INPUT_CONDITIONS[name])
        a, b = prepared[0].to_truth
        # mapped back, the normalised input is the file's content in the truth's units
        back = prepared[0].lr * a + b
        tol = {"float": 1e-5, "16": 1e-4, "8": 3e-3, "dim12": 3e-4}.get(name, 0.2)
        assert (back - es.pairs[0].lr).abs().max() < tol, name
        rows[name] = run_benchmark(prepared, [bicubic_method(2)], 2)[0][0]["psnr"]
    assert rows["float"] >= rows["16"] >= rows["8"] > rows["jpeg90"] and rows["poisson1000"] < rows["8"]
    assert abs(rows["dim12"] - rows["16"]) < 1.0  # dimming is undone in the score, not rewarded or punished
    again = prepare_inputs(es.pairs, INPUT_CONDITIONS["poisson1000"])
    assert torch.equal(again[0].lr, prepare_inputs(es.pairs, INPUT_CONDITIONS["poisson1000"])[0].lr)  # seeded


def test_cli_names_the_input_and_robustness_gives_one_table(tmp_path):
    out = tmp_path / "r.json"
    res = runner.invoke(app, ["benchmark", "--dataset", "reserved", "--limit", "1", "--methods", "bicubic",
                              "--json", str(out)])
    assert res.exit_code == 0, res.output
    rep = json.loads(out.read_text())
    assert rep["input"]["name"] == "8" and "8-bit" in rep["input"]["description"]
    md = tmp_path / "rob.md"
    args = ["benchmark", "--dataset", "reserved", "--limit", "1", "--methods", "bicubic,rl-sr", "--robustness",
            "--markdown", str(md), "--json", str(out)]
    kept = out.read_text()
    res = runner.invoke(app, args)  # an earlier report is not replaced silently
    assert res.exit_code == 2 and "--overwrite" in res.output and out.read_text() == kept and not md.exists()
    res = runner.invoke(app, [*args, "--overwrite"])
    assert res.exit_code == 0, res.output
    table = md.read_text()
    assert "8-bit JPEG q90" in table and "Poisson 1000" in table and table.count("| rl-sr |") == 1
    assert len(json.loads(out.read_text())["robustness"]) == 6
    res = runner.invoke(app, ["benchmark", "--dataset", "reserved", "--input-depth", "7"])
    assert res.exit_code == 2 and "--input-depth" in res.output
