"""mdeblur adapt: the forward model (a PSF file and the same optics as options agree; stacks and calibration),
the noise estimate, a short run with the tiny preset that writes weights, a report and a trust calibration and
resumes after a kill, and one-line errors for bad inputs."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tifffile
import torch
from typer.testing import CliRunner

from mdeblur_cli.cli import app
from mdeblur_cli.data import to_tensor
from mdeblur_cli.data.forward import Camera, ForwardModel
from mdeblur_cli.data.psf import read_psf
from mdeblur_cli.data.simulate import RGB_WAVELENGTHS_UM, SimulationSpec, defocus_psf
from mdeblur_cli.formats.images import write_image

from .conftest import smooth_image

runner = CliRunner()
PX = 0.25  # um per PSF pixel


def _psf(dz=50.0, radius=60):
    return np.mean([defocus_psf(dz, 0.12, w, PX, radius_px=radius) for w in RGB_WAVELENGTHS_UM], 0)


def _imagej_psf(path, psf):
    tifffile.imwrite(path, np.rint(100 + psf / psf.max() * 3000).astype(np.uint16), imagej=True,
                     resolution=(1 / PX, 1 / PX), metadata={"unit": "um"})


def test_a_psf_file_and_the_same_optics_as_options_make_the_same_pairs(tmp_path):
    _imagej_psf(tmp_path / "psf.tif", _psf())
    spec = SimulationSpec(defocus_um=(50, 50), peak=None)
    measured = read_psf(tmp_path / "psf.tif", spec.objective_hr.pixel_um, spec.scale)
    assert measured.pixel_um == pytest.approx(PX) and measured.defocus_um == (0.0,)
    img = to_tensor(np.repeat(smooth_image(192, 192, c=1, seed=3), 3, axis=2))
    by_options, hr_a, _ = ForwardModel(spec, camera=Camera("float")).simulate(img, torch.Generator(), 50.0, gray=True)
    by_file, hr_b, _ = ForwardModel(spec, measured, Camera("float")).simulate(img, torch.Generator(), 0.0, gray=True)
    assert torch.equal(hr_a, hr_b)
    from mdeblur_cli.data.simulate import simulate_pair

    lr_sim, hr_sim, _ = simulate_pair(img, spec, torch.Generator(), dz_um=50.0)  # mdeblur simulate's own pair
    assert torch.equal(hr_sim.mean(0, keepdim=True).expand(3, -1, -1), hr_a)
    assert np.array_equal(lr_sim.mean(0).numpy(), by_options)
    assert np.sqrt(np.mean((by_options - by_file) ** 2)) < 3e-3  # resampling and centring only
    assert np.abs(by_options - by_file).max() < 1.5e-2


def test_a_bead_stack_maps_planes_to_defocus_with_ome_or_imagej_calibration(tmp_path):
    stack = np.stack([_psf(dz, 30) for dz in (-20.0, -10.0, 0.0, 10.0, 20.0)])
    stack = np.rint(stack / stack.max() * 4000).astype(np.uint16)
    tifffile.imwrite(tmp_path / "ij.tif", stack, imagej=True, resolution=(1 / PX, 1 / PX),
                     metadata={"unit": "um", "spacing": 10.0, "axes": "ZYX"})
    tifffile.imwrite(tmp_path / "b.ome.tif", stack, ome=True, metadata={
        "axes": "ZYX", "PhysicalSizeX": PX, "PhysicalSizeY": PX, "PhysicalSizeZ": 10.0})
    for name in ("ij.tif", "b.ome.tif"):
        m = read_psf(tmp_path / name, 0.65, 2)
        assert m.defocus_um == (-20.0, -10.0, 0.0, 10.0, 20.0) and m.pixel_um == pytest.approx(PX)
        assert all(abs(p.sum() - 1) < 1e-5 for p in m.planes + m.planes_lr)
        peaks = [float(p.max()) for p in m.planes]
        assert peaks[2] > peaks[1] > peaks[0] and peaks[2] > peaks[3] > peaks[4]  # the focus is the sharpest


def test_the_noise_estimate_finds_photons_and_read_noise_within_20_percent():
    from mdeblur_cli.data import noise

    rng = np.random.default_rng(0)
    yy = np.linspace(0, 1, 512)[:, None]
    structure = 0.5 + 0.4 * np.sin(np.arange(512)[None] / 9.0) * np.cos(np.arange(512)[:, None] / 13.0)
    base = np.concatenate([0.05 + 0.9 * yy * np.ones((1, 256)), structure[:, :256]], 1)
    for photons, read in ((1000.0, 0.01), (300.0, 0.02)):
        x = rng.poisson(base * photons) / photons + rng.normal(0, read, base.shape)
        a, b = noise.fit_poisson_gaussian(*noise.block_stats(x))
        assert 1 / a == pytest.approx(photons, rel=0.2) and np.sqrt(b) == pytest.approx(read, rel=0.2)


def _infocus(folder, n=2, side=256):
    folder.mkdir(parents=True)
    for i in range(n):
        write_image(folder / f"spec{i}.png", np.rint(smooth_image(side, side, seed=i) * 255).astype(np.uint8))
    return folder


def _adapt_cmd(*args):
    return [sys.executable, "-m", "mdeblur_cli", "adapt", *map(str, args)]


def test_a_short_adapt_writes_weights_report_and_trust_and_resumes_after_a_kill(tmp_path, tiny_weights):
    infocus = _infocus(tmp_path / "infocus")
    _imagej_psf(tmp_path / "psf.tif", _psf(20.0, 24))
    run = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(_adapt_cmd(infocus, "--out", run, "--psf", tmp_path / "psf.tif", "--minutes", "0.5",
                                       "--init", tiny_weights, "--device", "cpu"),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
    t = time.time()
    while not (run / "fit" / "state.pt").exists():
        assert proc.poll() is None, proc.stdout.read().decode()
        assert time.time() - t < 120
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (run / "report.json").exists()
    res = subprocess.run(_adapt_cmd("--resume", run), capture_output=True, text=True, env=env)
    assert res.returncode == 0, res.stdout + res.stderr
    rep = json.loads((run / "report.json").read_text())
    assert set(rep["methods"]) == {"bicubic", "rl", "initial", "adapted"}
    assert all(np.isfinite(m["psnr"]) for m in rep["methods"].values())
    assert 0 < rep["trust"]["coverage_after"] <= 1 and rep["forward_model"]["psf_sha256"]
    assert (run / "report.md").is_file() and (run / "report.png").is_file()
    from mdeblur_cli.weights import load_model

    model = load_model(run)  # the run folder is accepted as weights
    assert model.provenance["adapt"]["forward_model"]["psf_planes"] == 1
    assert model.head is not None and "split conformal" in model.trust.calibrated_on  # the head fitted by train, recalibrated
    out = tmp_path / "restored.png"
    res = runner.invoke(app, ["restore", str(infocus / "spec0.png"), "-o", str(out), "--weights", str(run),
                              "--device", "cpu"])
    assert res.exit_code == 0 and out.is_file()


@pytest.mark.parametrize("case", ["negative psf", "zero psf", "psf larger than the image", "empty infocus",
                                  "like without images", "like with mixed bit depths", "out holds another run"])
def test_bad_adapt_inputs_are_one_line_and_exit_2(tmp_path, tiny_weights, case):
    infocus = _infocus(tmp_path / "infocus", n=1, side=192)
    args = [str(infocus), "--out", str(tmp_path / "run"), "--init", str(tiny_weights), "--minutes", "0.2"]
    psf = _psf(20.0, 16)
    if case == "negative psf":
        tifffile.imwrite(tmp_path / "p.tif", (psf - psf.max() / 2).astype(np.float32), imagej=True,
                         resolution=(4.0, 4.0), metadata={"unit": "um"})
        args += ["--psf", str(tmp_path / "p.tif")]
    elif case == "zero psf":
        tifffile.imwrite(tmp_path / "p.tif", np.zeros((33, 33), np.float32))
        args += ["--psf", str(tmp_path / "p.tif"), "--psf-pixel-size", "0.25"]
    elif case == "psf larger than the image":
        _imagej_psf(tmp_path / "p.tif", _psf(200.0, 400))
        args += ["--psf", str(tmp_path / "p.tif")]
    elif case == "empty infocus":
        (tmp_path / "empty").mkdir()
        args[0] = str(tmp_path / "empty")
    elif case == "like without images":
        (tmp_path / "like").mkdir()
        (tmp_path / "like" / "notes.txt").write_text("no image")
        args += ["--like", str(tmp_path / "like")]
    elif case == "like with mixed bit depths":
        (tmp_path / "like").mkdir()
        write_image(tmp_path / "like" / "a.png", np.full((64, 64), 100, np.uint8))
        tifffile.imwrite(tmp_path / "like" / "b.tif", np.full((64, 64), 40000, np.uint16))
        args += ["--like", str(tmp_path / "like")]
    else:
        (tmp_path / "run").mkdir()
        (tmp_path / "run" / "adapt.json").write_text("{}")
    res = runner.invoke(app, ["adapt", *args])
    assert res.exit_code == 2, res.output
    assert res.output.startswith("error:") and len(res.output.strip().splitlines()) <= 2, res.output
    assert not (tmp_path / "run" / "report.json").exists()


def test_objectives_that_do_not_parse_or_do_not_make_x2_are_one_line_and_exit_2(tmp_path):
    from typer.testing import CliRunner

    from mdeblur_cli.cli import app

    for args, want in ((["--objective-lr", "5x"], "give MAGNIFICATION/NA"),
                       (["--objective-lr", "5x/0.12", "--objective-hr", "20x/0.4"], "twice the blurry one's")):
        out = tmp_path / f"run{len(args)}"
        res = CliRunner().invoke(app, ["adapt", "--specimens", "plant", "--out", str(out), "--minutes", "1", *args])
        assert res.exit_code == 2, res.output
        assert want in res.output and len([ln for ln in res.output.splitlines() if ln.strip()]) == 1
