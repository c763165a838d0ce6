import csv

import numpy as np
import pytest

from mdeblur_cli.errors import MdeblurError
from mdeblur_cli.formats.images import write_image
from mdeblur_cli.train.config import TrainConfig
from mdeblur_cli.train.loop import train
from mdeblur_cli.train.schedule import learning_rate_at
from mdeblur_cli.weights import load_model, read_metadata

from .conftest import smooth_image


def _hr_folder(root, n=3, size=96):
    root.mkdir()
    for i in range(n):
        write_image(root / f"img{i}.png", (smooth_image(size, size + 8, seed=i) * 255).astype(np.uint8))
    return root


def _tiny(tmp_path, data, **kw):
    return TrainConfig(**{"data": str(data), "iters": 6, "batch_size": 2, "patch": 24, "val_every": 3, "threads": 1,
                          "device": "cpu", "preset": "tiny", "out": str(tmp_path / "run"), **kw})


def test_learning_rate_schedule_is_the_papers_shape():
    cfg = TrainConfig(iters=200, learning_rate=1e-4, final_learning_rate=1e-7)
    assert learning_rate_at(cfg, 0) == learning_rate_at(cfg, 149) == 1e-4
    assert learning_rate_at(cfg, 175) < 1e-4
    assert learning_rate_at(cfg, 200) == pytest.approx(1e-7)


def test_train_on_hr_folder_writes_weights_and_logs(tmp_path):
    data = _hr_folder(tmp_path / "hr")
    best = train(_tiny(tmp_path, data))
    run = tmp_path / "run"
    for name in ("best.safetensors", "last.safetensors", "train.log", "metrics.csv", "config.json"):
        assert (run / name).exists(), name
    rows = list(csv.DictReader(open(run / "metrics.csv")))
    assert [int(r["iter"]) for r in rows] == [3, 6]
    meta = read_metadata(run / "best.safetensors")
    assert meta["provenance"]["val_psnr"] == pytest.approx(best["psnr"])
    assert "HR-only folder" in meta["provenance"]["data"]
    assert load_model(run / "last.safetensors").scale == 2


def test_paired_folder_size_is_checked(tmp_path):
    root = tmp_path / "pairs"
    (root / "lr").mkdir(parents=True)
    (root / "hr").mkdir()
    write_image(root / "lr" / "a.png", np.zeros((40, 40), np.uint8))
    write_image(root / "hr" / "a.png", np.zeros((70, 80), np.uint8))
    with pytest.raises(MdeblurError, match="must be 2x"):
        train(_tiny(tmp_path, root))


def test_empty_folder_is_an_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(MdeblurError, match="no images"):
        train(_tiny(tmp_path, tmp_path / "empty"))


def test_log_mse_weights_patches_by_their_own_error():
    """log-mse: zero when exact, the mean of log1p(MSE_i/eps), and a smooth (low-error) patch pulls harder."""
    import torch

    from mdeblur_cli.train.losses import LOG_MSE_EPS, Losses

    losses = Losses(TrainConfig(pixel_loss="log-mse"), None, None)
    target = torch.rand(2, 3, 8, 8)
    assert losses.pixel(target, target).item() == 0.0
    err = torch.zeros_like(target)
    err[0] += 1e-3  # a smooth patch, nearly right
    err[1] += 1e-1  # a textured patch, far off
    pred = (target + err).requires_grad_()
    value = losses.pixel(pred, target)
    mse = err.pow(2).flatten(1).mean(1)
    assert value.item() == pytest.approx(torch.log1p(mse / LOG_MSE_EPS).mean().item(), rel=1e-5)
    value.backward()
    g = pred.grad.flatten(1).abs().sum(1)
    assert g[0] > g[1]  # under plain MSE the far-off patch's gradient is 100x larger
    assert Losses(TrainConfig(), None, None).pixel(pred, target).item() == pytest.approx(mse.mean().item(), rel=1e-5)


def test_unknown_pixel_loss_is_an_error(tmp_path):
    with pytest.raises(MdeblurError, match="^--pixel-loss l1: use mse or log-mse$"):  # no stray quote
        TrainConfig(pixel_loss="l1", out=str(tmp_path / "run"))


def test_config_round_trips_through_toml(tmp_path):
    from mdeblur_cli.data.degrade import DegradationSpec
    from mdeblur_cli.train.config import config_from_toml, config_to_toml

    cfg = TrainConfig(data="/data/x", model="unet-sr", preset="tiny", iters=123, epochs=4, learning_rate=3e-4,
                      ema=0.99, pixel_loss="log-mse", vgg19_weights="v.pth", init="w.safetensors", threads=2,
                      degradation=DegradationSpec(noise_prob=0.25, percentiles=(1.0, 99.0)))
    path = tmp_path / "c.toml"
    path.write_text(config_to_toml(cfg))
    assert config_from_toml(path, {}) == cfg
    assert config_from_toml(path, {"iters": 7, "seed": None}) == TrainConfig(**{**cfg.__dict__, "iters": 7})


def test_epochs_load_the_data_once_and_set_the_iterations(tmp_path, monkeypatch):
    import mdeblur_cli.train.loop as t

    calls = []
    real = t.load_sources
    monkeypatch.setattr(t, "load_sources", lambda *a: calls.append(a) or real(*a))
    data = _hr_folder(tmp_path / "hr")
    cfg = _tiny(tmp_path, data, epochs=1)
    train(cfg)
    sources, _ = real(str(data), 2)
    want = t.iters_per_epoch(t.split_sources(sources, 2)[0], cfg)
    assert len(calls) == 1 and want > 1
    assert int(t.read_metrics(tmp_path / "run")[-1]["iter"]) == want
    assert cfg.epochs == 1 and cfg.iters == 6  # the caller's config is not changed


def test_every_shipped_config_parses():
    from pathlib import Path

    from mdeblur_cli.train.config import config_from_toml

    root = Path(__file__).resolve().parent.parent / "configs"
    configs = sorted(root.rglob("*.toml"))
    assert len(configs) >= 19
    for path in configs:
        cfg = config_from_toml(path, {})
        assert cfg.init is None or cfg.init_sha256 is not None or path.stem.startswith("finetune"), path


def test_init_is_checked_against_its_sha256_and_recorded(tmp_path):
    from mdeblur_cli.models import build_model
    from mdeblur_cli.weights import save_weights, sha256

    from .conftest import TINY_MDEBLURGAN

    parent = tmp_path / "parent.safetensors"
    save_weights(parent, build_model("mdeblurgan", TINY_MDEBLURGAN), "mdeblurgan", {})
    data = _hr_folder(tmp_path / "hr")
    with pytest.raises(MdeblurError, match="not the parent the config names"):
        train(_tiny(tmp_path, data, init=str(parent), init_sha256="0" * 64))
    train(_tiny(tmp_path, data, init=str(parent), iters=3))
    want = sha256(parent)
    assert read_metadata(tmp_path / "run" / "best.safetensors")["provenance"]["init_sha256"] == want
    written = (tmp_path / "run" / "config.toml").read_text()
    assert f'init_sha256 = "{want}"' in written and 'preset = "tiny"' in written  # the network the file holds
    with pytest.raises(MdeblurError, match="64 hex digits"):
        TrainConfig(init=str(parent), init_sha256="abc")
    with pytest.raises(MdeblurError, match="init .* is not given"):
        TrainConfig(init_sha256=want)
    assert TrainConfig(init=str(parent), init_sha256=want.upper()).init_sha256 == want


def test_degradation_keys_and_values_are_checked(tmp_path):
    from mdeblur_cli.train.config import config_from_toml

    path = tmp_path / "c.toml"
    path.write_text("iters = 5\n\n[degradation]\nbits8_prb = 0.1\n")
    with pytest.raises(MdeblurError, match="unknown \\[degradation\\] keys bits8_prb"):
        config_from_toml(path, {})
    path.write_text("iters = 5\n\n[degradation]\nbits8_prob = 1.5\n")
    with pytest.raises(MdeblurError, match="bits8_prob = 1.5"):
        config_from_toml(path, {})


def test_bad_values_in_a_config_file_are_named(tmp_path):
    from mdeblur_cli.train.config import config_from_toml

    path = tmp_path / "c.toml"
    for body, message in (('[degradation]\nprotocol_prob = "high"\n', "protocol_prob = 'high': must be a number"),
                          ("[degradation]\npeak_range = [0, 5000]\n", "low end must be above 0"),
                          ('iters = "many"\n', "iters = 'many': must be a whole number")):
        path.write_text(body)
        with pytest.raises(MdeblurError, match=message):
            config_from_toml(path, {})


def test_a_fine_tuned_run_resumes_without_its_parent_and_overwrite_starts_both_logs_afresh(tmp_path):
    import shutil

    from mdeblur_cli.models import build_model
    from mdeblur_cli.weights import save_weights

    from .conftest import TINY_MDEBLURGAN

    parent = tmp_path / "parent.safetensors"
    save_weights(parent, build_model("mdeblurgan", TINY_MDEBLURGAN), "mdeblurgan", {})
    data = _hr_folder(tmp_path / "hr")
    train(_tiny(tmp_path, data, init=str(parent), iters=3))
    parent.unlink()  # the parent is gone (or overwritten): the run's own weights and state carry on
    from mdeblur_cli.train.config import config_from_toml

    cfg = config_from_toml(tmp_path / "run" / "config.toml", {"iters": 6})
    train(cfg, resume=True)
    assert int(read_metrics_rows(tmp_path / "run")[-1]["iter"]) == 6
    shutil.copy(tmp_path / "run" / "train.log", tmp_path / "old.log")
    train(_tiny(tmp_path, data, iters=3))  # afresh in the same folder (the CLI asks for --overwrite first)
    log = (tmp_path / "run" / "train.log").read_text()
    assert "resumed" not in log and "iter 6 " not in log and "iter 3 " in log


def read_metrics_rows(run):
    from mdeblur_cli.train.runlog import read_metrics

    return read_metrics(run)
