"""Exports for other runtimes match torch within 1e-4 on two different input sizes."""

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from mdeblur_cli.cli import app
from mdeblur_cli.export.networks import RestoredImage

runner = CliRunner()
SIZES = [(1, 3, 48, 64), (2, 3, 80, 40)]  # multiples of 8, neither the traced 64x64


def _reference(model, x):
    with torch.inference_mode():
        return RestoredImage(model.net.eval())(x).numpy()


def test_torchscript_export_matches_torch(tmp_path, tiny_weights):
    from mdeblur_cli.weights import load_model

    out = tmp_path / "m.pt"
    res = runner.invoke(app, ["export", "--weights", str(tiny_weights), "--format", "torchscript", "-o", str(out)])
    assert res.exit_code == 0, res.output
    extra = {"mdeblur.json": ""}
    loaded = torch.jit.load(str(out), _extra_files=extra)
    assert json.loads(extra["mdeblur.json"])["scale"] == 2
    model = load_model(tiny_weights)
    for shape in SIZES:
        x = torch.rand(*shape)
        got = loaded(x).detach().numpy()
        assert got.shape == (shape[0], 3, 2 * shape[2], 2 * shape[3])
        assert np.abs(got - _reference(model, x)).max() <= 1e-4
    again = runner.invoke(app, ["export", "--weights", str(tiny_weights), "--format", "torchscript", "-o", str(out)])
    assert again.exit_code == 2 and "--overwrite" in again.output


def test_onnx_export_matches_torch(tmp_path, tiny_weights):
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    from mdeblur_cli.weights import load_model

    out = tmp_path / "m.onnx"
    res = runner.invoke(app, ["export", "--weights", str(tiny_weights), "--format", "onnx", "-o", str(out)])
    assert res.exit_code == 0, res.output
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    meta = json.loads(session.get_modelmeta().custom_metadata_map["mdeblur"])
    assert meta["scale"] == 2 and meta["normalization"]["percentiles"]
    model = load_model(tiny_weights)
    for shape in SIZES:
        x = torch.rand(*shape)
        got = session.run(None, {"input": x.numpy()})[0]
        assert got.shape == (shape[0], 3, 2 * shape[2], 2 * shape[3])
        assert np.abs(got - _reference(model, x)).max() <= 1e-4


def test_bad_format_is_one_line(tmp_path, tiny_weights):
    res = runner.invoke(app, ["export", "--weights", str(tiny_weights), "--format", "tflite", "-o", str(tmp_path / "m")])
    assert res.exit_code == 2 and "--format tflite" in res.output and not (tmp_path / "m").exists()


def test_bioimageio_package_holds_what_runtimes_need(tmp_path, tiny_weights):
    """The zip has rdf.yaml, both weights, test tensors that the weights reproduce, the card, licence, citation."""
    import zipfile

    pytest.importorskip("onnx")
    out = tmp_path / "model.zip"
    res = runner.invoke(app, ["export", "--weights", str(tiny_weights), "--format", "bioimageio", "-o", str(out)])
    assert res.exit_code == 0, res.output
    with zipfile.ZipFile(out) as z:
        names = set(z.namelist())
        z.extractall(tmp_path / "pkg")
    assert {"rdf.yaml", "weights.onnx", "weights_torchscript.pt", "test_input.npy", "test_output.npy", "README.md",
            "LICENSE", "CITATION.cff", "cover.png"} <= names
    pkg = tmp_path / "pkg"
    raw, expected = np.load(pkg / "test_input.npy"), np.load(pkg / "test_output.npy")
    assert raw.shape == (1, 3, 128, 128) and expected.shape == (1, 3, 256, 256)
    rdf = (pkg / "rdf.yaml").read_text()
    assert "scale_range" in rdf and "sha256" in rdf and "halo" in rdf
    from mdeblur_cli.export.bioimage import scale_range
    from mdeblur_cli.weights import load_model

    x = scale_range(raw, load_model(tiny_weights).percentiles)
    traced = torch.jit.load(str(pkg / "weights_torchscript.pt"))
    assert np.abs(traced(torch.from_numpy(x)).detach().numpy() - expected).max() <= 1e-4
    bad = runner.invoke(app, ["export", "--weights", str(tiny_weights), "--format", "bioimageio", "-o",
                              str(tmp_path / "model.onnx")])
    assert bad.exit_code == 2 and "zip" in bad.output and not (tmp_path / "model.onnx").exists()


def test_bioimageio_package_validates_with_the_bioimageio_tools(tmp_path, tiny_weights):
    """bioimageio.spec validates the rdf, and bioimageio.core runs both weights on the test tensors."""
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    spec = pytest.importorskip("bioimageio.spec")
    core = pytest.importorskip("bioimageio.core")
    out = tmp_path / "model.zip"
    assert runner.invoke(app, ["export", "--weights", str(tiny_weights), "--format", "bioimageio", "-o",
                               str(out)]).exit_code == 0
    descr = spec.load_description(out, perform_io_checks=True)
    assert not isinstance(descr, spec.InvalidDescr), descr.validation_summary.format()
    summary = core.test_model(out)
    assert summary.status == "passed", summary.format()


def test_the_format_follows_the_file_name_and_a_mismatch_is_refused(tmp_path, tiny_weights):
    res = runner.invoke(app, ["export", "--weights", str(tiny_weights), "-o", str(tmp_path / "m.pt")])
    assert res.exit_code == 0 and "torchscript" in res.output
    for fmt, name in (("onnx", "m.zip"), ("torchscript", "m.onnx"), (None, "m.bin")):
        args = ["export", "--weights", str(tiny_weights), "-o", str(tmp_path / name)] + (["--format", fmt] if fmt else [])
        bad = runner.invoke(app, args)
        assert bad.exit_code == 2 and name in bad.output and not (tmp_path / name).exists(), bad.output


def test_unet_exports_take_its_16_pixel_grid_and_its_package_validates(tmp_path):
    """U-Net + SR pools four times: its exports declare multiples of 16, and they run there."""
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    from mdeblur_cli.models import build_model
    from mdeblur_cli.weights import load_model, save_weights

    torch.manual_seed(0)
    path = tmp_path / "unet.safetensors"
    save_weights(path, build_model("unet-sr", {"width": 4, "sr_width": 8}), "unet-sr", {"data": "test"})
    res = runner.invoke(app, ["export", "--weights", str(path), "-o", str(tmp_path / "u.onnx")])
    assert res.exit_code == 0 and "multiples of 16" in res.output, res.output
    session = ort.InferenceSession(str(tmp_path / "u.onnx"), providers=["CPUExecutionProvider"])
    model = load_model(path)
    for shape in ((1, 3, 48, 80), (1, 3, 112, 32)):
        x = torch.rand(*shape)
        assert np.abs(session.run(None, {"input": x.numpy()})[0] - _reference(model, x)).max() <= 1e-4
    spec = pytest.importorskip("bioimageio.spec")
    core = pytest.importorskip("bioimageio.core")
    assert runner.invoke(app, ["export", "--weights", str(path), "-o", str(tmp_path / "u.zip")]).exit_code == 0
    assert "step: 16" in __import__("zipfile").ZipFile(tmp_path / "u.zip").read("rdf.yaml").decode()
    assert not isinstance(spec.load_description(tmp_path / "u.zip"), spec.InvalidDescr)
    summary = core.test_model(tmp_path / "u.zip")
    assert summary.status == "passed", summary.format()
