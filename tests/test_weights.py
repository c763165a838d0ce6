import json

import pytest
import torch

from mdeblur_cli.errors import MdeblurError
from mdeblur_cli.models import build_model
from mdeblur_cli.weights import SHIPPED, SHIPPED_DIR, load_model, read_metadata, save_weights, sha256

from .conftest import TINY_MDEBLURGAN, TINY_UNET


@pytest.mark.parametrize("arch,cfg", [("mdeblurgan", TINY_MDEBLURGAN), ("unet-sr", TINY_UNET)])
def test_round_trip_rebuilds_from_file_alone(tmp_path, arch, cfg):
    model = build_model(arch, cfg).eval()
    path = tmp_path / "m.safetensors"
    save_weights(path, model, arch, {"iterations": 3})
    loaded = load_model(path)
    x = torch.rand(1, 3, 24, 24)
    with torch.no_grad():
        assert torch.equal(model(x)[0], loaded.net(x)[0])
    assert loaded.arch == arch and loaded.provenance["iterations"] == 3 and not loaded.net.training
    meta = read_metadata(path)
    assert meta["arch"] == arch and meta["config"]["scale"] == 2 and meta["provenance"]["iterations"] == 3


def test_corrupt_and_foreign_files(tmp_path):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x00" * 100)
    with pytest.raises(MdeblurError, match="bad.safetensors"):
        load_model(bad)
    from safetensors.torch import save_file

    foreign = tmp_path / "foreign.safetensors"
    save_file({"w": torch.zeros(2)}, str(foreign))
    with pytest.raises(MdeblurError, match="not an mdeblur weights file"):
        load_model(foreign)


def test_mismatched_tensors_are_reported(tmp_path):
    model = build_model("mdeblurgan", TINY_MDEBLURGAN)
    path = tmp_path / "m.safetensors"
    save_weights(path, model, "mdeblurgan")
    from safetensors import safe_open
    from safetensors.torch import save_file

    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
        state = {k: f.get_tensor(k) for k in f.keys()}
    meta["config"] = json.dumps({**TINY_MDEBLURGAN, "width": 12})
    save_file(state, str(path), metadata=meta)
    with pytest.raises(MdeblurError, match="do not match") as err:
        load_model(path)
    msg = str(err.value)  # one whole line that names the tensor and both shapes, not a cut-off first line
    assert "\n" not in msg and msg.endswith(")") and "shape [" in msg and "the architecture needs [" in msg
    meta["config"] = json.dumps({**TINY_MDEBLURGAN, "width": 10**6})  # a corrupt config: refused before allocating
    save_file(state, str(path), metadata=meta)
    with pytest.raises(MdeblurError, match="do not match"):
        load_model(path)


def test_unknown_name():
    with pytest.raises(MdeblurError, match="shipped"):
        load_model("no-such-model")


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_weights_match_manifest(name):
    path = SHIPPED_DIR / f"{name}.safetensors"
    if not path.exists():
        pytest.skip(f"{name} not shipped in this checkout")
    manifest = json.loads((SHIPPED_DIR / "manifest.json").read_text())
    assert manifest[name]["sha256"] == sha256(path)
    model = load_model(name)
    with torch.no_grad():
        sr, _ = model.net(torch.rand(1, 3, 20, 20))
    assert sr.shape == (1, 3, 40, 40) and torch.isfinite(sr).all()
