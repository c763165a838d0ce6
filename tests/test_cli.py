import numpy as np
import pytest
from typer.testing import CliRunner

from mdeblur_cli import __version__
from mdeblur_cli.cli import app
from mdeblur_cli.formats.images import read_image, write_image

from .conftest import TINY_TRAIN, smooth_image

runner = CliRunner()


def _png(path, h=40, w=48, dtype=np.uint8):
    img = smooth_image(h, w)
    write_image(path, (img * (255 if dtype == np.uint8 else 65535)).astype(dtype))
    return path


def test_version_and_help():
    res = runner.invoke(app, ["--version"])
    assert res.exit_code == 0 and __version__ in res.stdout
    for cmd in ("restore", "train"):
        res = runner.invoke(app, [cmd, "--help"])
        assert res.exit_code == 0 and "Examples" in res.stdout


def test_restore_one_file(tmp_path, tiny_weights):
    src = _png(tmp_path / "in.png", dtype=np.uint16)
    res = runner.invoke(app, ["restore", str(src), "-o", str(tmp_path / "out.tif"), "--weights", str(tiny_weights)])
    assert res.exit_code == 0, res.output
    out = read_image(tmp_path / "out.tif").pages[0]
    assert out.shape == (80, 96, 3) and out.dtype == np.uint16


def test_restore_batch_keeps_going_and_exits_2(tmp_path, tiny_weights):
    d = tmp_path / "in"
    d.mkdir()
    _png(d / "a.png")
    _png(d / "b.png")
    (d / "broken.png").write_bytes(b"junk")
    res = runner.invoke(app, ["restore", str(d), "--out-dir", str(tmp_path / "out"), "--weights", str(tiny_weights)])
    assert res.exit_code == 2
    assert "broken.png" in res.output and "Traceback" not in res.output
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a_x2.png", "b_x2.png"]


@pytest.mark.parametrize("content", [b"", b"\x89PNG\r\n\x1a\n\x00\x00", b"hello"])
def test_bad_single_input_one_line_exit_2_no_output(tmp_path, tiny_weights, content):
    src = tmp_path / "bad.png"
    src.write_bytes(content)
    out = tmp_path / "out.png"
    res = runner.invoke(app, ["restore", str(src), "-o", str(out), "--weights", str(tiny_weights)])
    assert res.exit_code == 2
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and "bad.png" in lines[0]
    assert not out.exists() and [p.name for p in tmp_path.iterdir() if p.name != "tiny.safetensors"] == ["bad.png"]


def test_overwrite_rules(tmp_path, tiny_weights):
    src = _png(tmp_path / "in.png")
    out = tmp_path / "out.png"
    out.write_bytes(b"keep")
    args = ["restore", str(src), "-o", str(out), "--weights", str(tiny_weights)]
    res = runner.invoke(app, args)
    assert res.exit_code == 2 and "--overwrite" in res.output and out.read_bytes() == b"keep"
    assert runner.invoke(app, [*args, "--overwrite"]).exit_code == 0
    res = runner.invoke(app, ["restore", str(src), "-o", str(src), "--overwrite", "--weights", str(tiny_weights)])
    assert res.exit_code == 2 and "input" in res.output


def test_glob_and_bad_options(tmp_path, tiny_weights):
    _png(tmp_path / "a.png")
    _png(tmp_path / "b.png")
    res = runner.invoke(app, ["restore", str(tmp_path / "*.png"), "--out-dir", str(tmp_path / "o"),
                              "--weights", str(tiny_weights)])
    assert res.exit_code == 0 and len(list((tmp_path / "o").iterdir())) == 2
    res = runner.invoke(app, ["restore", str(tmp_path / "a.png"), "-o", str(tmp_path / "x.png"), "--device", "cuda:7",
                              "--weights", str(tiny_weights)])
    assert res.exit_code == 2 and "device" in res.output
    res = runner.invoke(app, ["restore", str(tmp_path / "nope.png"), "-o", str(tmp_path / "x.png")])
    assert res.exit_code == 2 and "nope.png" in res.output


def test_train_cli_then_restore(tmp_path):
    data = tmp_path / "hr"
    data.mkdir()
    for i in range(2):
        _png(data / f"{i}.png", 96, 104)
    run = tmp_path / "run"
    res = runner.invoke(app, ["train", str(data), "--model", "unet-sr", "--preset", "tiny", "--iters", "4", "--batch-size", "2",
                              "--patch", "24", "--val-every", "2", "--device", "cpu", "--out", str(run)])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["restore", str(data / "0.png"), "-o", str(tmp_path / "r.png"),
                              "--weights", str(run / "best.safetensors")])
    assert res.exit_code == 0 and read_image(tmp_path / "r.png").pages[0].shape == (192, 208, 3)
    res = runner.invoke(app, ["train", str(data), "--init", str(run / "best.safetensors"), "--iters", "2",
                              "--batch-size", "2", "--patch", "24", "--val-every", "2", "--device", "cpu",
                              "--out", str(tmp_path / "tuned")])
    assert res.exit_code == 0, res.output
    assert "unet-sr" in res.output and (tmp_path / "tuned" / "best.safetensors").exists()


def test_simulate_explain_and_datasets_list(tmp_path):
    res = runner.invoke(app, ["simulate", "--explain"])
    assert res.exit_code == 0 and "depth of field" in res.stdout and "1.300 um" in res.stdout
    res = runner.invoke(app, ["datasets", "list", "--data-root", str(tmp_path)])
    assert res.exit_code == 0 and "STAND-IN" in res.stdout and "pinecones" in res.stdout


def test_simulated_dataset_trains(tmp_path):
    sim = tmp_path / "sim"
    res = runner.invoke(app, ["simulate", "plant", str(sim), "--count", "2", "--size", "128", "--defocus", "30:40"])
    assert res.exit_code == 0, res.output
    assert len(list((sim / "lr").iterdir())) == 2 and len(list((sim / "meta").iterdir())) == 2
    assert read_image(sim / "hr" / "plant_000000.png").pages[0].shape == (128, 128, 3)
    res = runner.invoke(app, ["train", str(sim), "--model", "unet-sr", "--preset", "tiny", "--iters", "2", "--batch-size", "2",
                              "--patch", "16", "--val-every", "2", "--device", "cpu", "--out", str(tmp_path / "run")])
    assert res.exit_code == 0, res.output
    assert "paired folder" in res.output and (tmp_path / "run" / "best.safetensors").exists()


def test_pairs_align_cli(tmp_path):
    from .test_pairs import synthetic_pair

    lr, hr, _, _ = synthetic_pair()
    write_image(tmp_path / "x5" / "a.png", (lr * 255).astype(np.uint8))
    write_image(tmp_path / "x10" / "a.png", (hr * 255).astype(np.uint8))
    res = runner.invoke(app, ["pairs", "align", str(tmp_path / "x5"), str(tmp_path / "x10"), str(tmp_path / "out")])
    assert res.exit_code == 0 and "aligned" in res.output
    assert (tmp_path / "out" / "align.json").exists()


def test_restore_shards_files_across_torchrun_ranks(tmp_path, tiny_weights, monkeypatch):
    for i in range(3):
        _png(tmp_path / "in" / f"{i}.png")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    res = runner.invoke(app, ["restore", str(tmp_path / "in"), "--out-dir", str(tmp_path / "out"),
                              "--weights", str(tiny_weights)])
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["1_x2.png"]


def test_restore_self_ensemble(tmp_path, tiny_weights):
    src = _png(tmp_path / "in.png")
    outs = []
    for flag in ([], ["--self-ensemble"]):
        dst = tmp_path / f"out{len(flag)}.png"
        res = runner.invoke(app, ["restore", str(src), "-o", str(dst), "--weights", str(tiny_weights), *flag])
        assert res.exit_code == 0, res.output
        outs.append(read_image(dst).pages[0].astype(np.int32))
    assert outs[1].shape == outs[0].shape == (80, 96, 3)
    assert np.abs(outs[1] - outs[0]).max() > 0  # the tiny model is not equivariant, so the average differs


@pytest.mark.parametrize("args,message", [
    (["--percentiles", "5"], "LO,HI"), (["--percentiles", "90,10"], "LO < HI"), (["--normalize", "zscore"], "--normalize"),
    (["--normalize", "range", "--percentiles", "1,99"], "no effect"),
])
def test_normalisation_options_are_checked(tmp_path, tiny_weights, args, message):
    src = _png(tmp_path / "in.png", dtype=np.uint16)
    out = tmp_path / "out.tif"
    res = runner.invoke(app, ["restore", str(src), "-o", str(out), "--weights", str(tiny_weights), *args])
    assert res.exit_code == 2 and message in res.output and not out.exists()


def test_restore_prints_the_intensity_mapping(tmp_path, tiny_weights):
    src = _png(tmp_path / "in.png", dtype=np.uint16)
    res = runner.invoke(app, ["restore", str(src), "-o", str(tmp_path / "o.tif"), "--weights", str(tiny_weights),
                              "--percentiles", "1,99"])
    assert res.exit_code == 0 and "percentiles 1-99%" in res.output and "inverted after" in res.output


def test_training_runs_are_not_replaced_and_resume_from_anywhere(tmp_path, hr_folder, monkeypatch):
    import mdeblur_cli.train.loop as t

    (hr_folder / "broken.png").write_bytes(b"junk")  # one unreadable file is skipped with a warning
    monkeypatch.chdir(tmp_path)
    args = ["train", "hr", *TINY_TRAIN, "--out", "run"]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    assert "warning: skipped:" in res.output and "broken.png" in res.output  # one line, not a source location
    weights = (tmp_path / "run" / "best.safetensors").read_bytes()
    again = runner.invoke(app, args)  # the default would replace the run: refused
    assert again.exit_code == 2 and "--overwrite" in again.output
    assert (tmp_path / "run" / "best.safetensors").read_bytes() == weights
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # the run stored its data path absolute: it resumes from any folder
    res = runner.invoke(app, ["train", "--resume", str(tmp_path / "run"), "--iters", "4"])
    assert res.exit_code == 0, res.output
    assert "at iteration 2" in " ".join(res.output.split())
    assert int(t.read_metrics(tmp_path / "run")[-1]["iter"]) == 4  # --iters extended the run
    res = runner.invoke(app, ["train", "--resume", str(tmp_path / "run"), "--iters", "3"])
    assert res.exit_code == 2 and "done 4 iterations" in " ".join(res.output.split())
    res = runner.invoke(app, ["train", "--resume", str(tmp_path / "run"), "--iters", "6", "--batch-size", "4"])
    assert res.exit_code == 2 and "--batch-size 4 (the run has 2) would change it" in " ".join(res.output.split())
    same = runner.invoke(app, ["train", "--resume", str(tmp_path / "run"), "--iters", "5", "--batch-size", "2",
                               "--model", "unet-sr", "--patch", "24"])  # the run's own values: accepted
    assert same.exit_code == 0, same.output
    assert int(t.read_metrics(tmp_path / "run")[-1]["iter"]) == 5
    monkeypatch.chdir(tmp_path)
    res = runner.invoke(app, ["train", "hr", *TINY_TRAIN, "--out", "run"])  # a run is there: resume it
    assert res.exit_code == 2 and "--resume run" in " ".join(res.output.split())
    res = runner.invoke(app, ["train", "--resume", "run", "--iters", "9", "--print-config"])
    assert res.exit_code == 0 and "iters = 9" in res.output and "# init = (not set)" in res.output
    res = runner.invoke(app, ["train", "hr", "--init", "run/best.safetensors", "--preset", "small", "--out", "ft"])
    assert res.exit_code == 2 and "drop --preset" in res.output
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "config.toml").write_text("")  # a run killed before its first checkpoint
    res = runner.invoke(app, ["train", "hr", *TINY_TRAIN, "--out", "half"])
    assert res.exit_code == 2 and "before its first checkpoint" in " ".join(res.output.split())
    curves = tmp_path / "curves.png"
    res = runner.invoke(app, ["runs", "compare", str(tmp_path / "run"), str(tmp_path / "run"), "-o", str(curves)])
    assert res.exit_code == 0 and read_image(curves).pages[0].ndim == 3
    res = runner.invoke(app, ["runs", "compare", str(tmp_path / "run"), "-o", str(curves)])
    assert res.exit_code == 2 and "--overwrite" in res.output
    res = runner.invoke(app, ["runs", "compare", str(elsewhere), "-o", str(tmp_path / "none.png")])
    assert res.exit_code == 2 and "no metrics.csv" in res.output and not (tmp_path / "none.png").exists()


def test_train_options_come_from_the_config_with_its_defaults():
    from mdeblur_cli.train.config import OPTION_HELP, TrainConfig

    res = runner.invoke(app, ["train", "--help"], env={"COLUMNS": "300", "TERMINAL_WIDTH": "300"})  # one line each
    text = " ".join(res.output.split())
    assert res.exit_code == 0
    for name in OPTION_HELP:
        assert "--" + name.replace("_", "-") in text, name
    default = TrainConfig()
    for name in ("iters", "batch_size", "patch", "model", "learning_rate"):
        assert f"[default: {getattr(default, name)}]" in text, name


def test_the_command_line_starts_without_torch():
    """`mdeblur --help` and the commands' option lists are built without importing torch (2-3 s of start-up)."""
    import subprocess
    import sys

    code = ("import sys; from typer.main import get_command; from mdeblur_cli.cli import app; "
            "get_command(app); print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_print_config_runs_without_torch(tmp_path):
    """`mdeblur train --print-config` checks and prints the config without importing torch, as --help does."""
    import subprocess
    import sys

    code = ("import sys; from mdeblur_cli.cli import app; from typer.testing import CliRunner; "
            "r = CliRunner().invoke(app, ['train', 'builtin', '--model', 'unet-sr', '--preset', 'tiny', "
            "'--print-config']); print(r.exit_code, 'torch' in sys.modules, 'preset = \"tiny\"' in r.output)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["0", "False", "True"]


def test_the_config_knows_every_architecture_and_preset_without_torch():
    from mdeblur_cli.models import ARCHS
    from mdeblur_cli.train.config import ARCH_PRESETS

    assert {k: tuple(a.presets) for k, a in ARCHS.items()} == ARCH_PRESETS
