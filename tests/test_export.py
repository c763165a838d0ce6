"""Exports for other runtimes match torch within 1e-4 on two different input sizes."""

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from mdeblur_cli.cli import app
from mdeblur_cli.export import RestoredImage

runner = CliRunner()
SIZES = [(1, 3, 48, 64), (2, 3, 80, 40)]  # multiples of 8, neither the traced 64x64


def _reference(model, x):
    with torch.inference_mode():
        return RestoredImage(model.eval())(x).numpy()


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
