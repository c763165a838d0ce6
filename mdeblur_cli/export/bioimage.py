"""A BioImage Model Zoo package of a generator (rdf.yaml format 0.5): for deepImageJ/Fiji, ilastik and bioimageio.

The zip holds rdf.yaml, ONNX and TorchScript weights, a test input and its expected output (a crop of a
non-reserved scikit-image photograph), a cover, the model card (README.md), the licence and the citation.

What the package declares, so that a runtime restores as `mdeblur restore --normalize percentile` does:
- input (batch, channel: 3, y, x), float32, y and x at least 2 contexts + 8 and multiples of 8;
- preprocessing: `scale_range` with the weights' percentiles, jointly over channel, y and x;
- output (batch, channel: 3, y, x) at twice the size (axis scale 0.5), in the normalised units (0..1 for the
  percentile span); a halo of twice the model's context per side for tiled runtimes.
"""

from __future__ import annotations

import json
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import torch

from ..errors import MdeblurError
from ..weights import LoadedModel, sha256

FORMAT_VERSION = "0.5.4"
TEST_SIDE = 128
EPS = 1e-6  # scale_range's default eps, applied the same way to make the expected test output
# The paper's text here carries no DOI: a search link leads to it without inventing one.
PAPER_URL = "https://scholar.google.com/scholar?q=M-Deblurgan+optical+microscope+depth+of+field+super-resolution"
MIT = """MIT License

Copyright (c) 2026 the mdeblur developers

Permission is hereby granted, free of charge, to any person obtaining a copy
of this software and associated documentation files (the "Software"), to deal
in the Software without restriction, including without limitation the rights
to use, copy, modify, merge, publish, distribute, sublicense, and/or sell
copies of the Software, and to permit persons to whom the Software is
furnished to do so, subject to the following conditions:

The above copyright notice and this permission notice shall be included in all
copies or substantial portions of the Software.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER
LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE
SOFTWARE.
"""
ARCH_NAMES = {"mdeblurgan": "the M-Deblurgan generator",
              "unet-sr": "the U-Net + SR baseline of the M-Deblurgan paper (a U-Net in series with the SR module)"}
PAPER = ("M-Deblurgan: a generative adversarial network that improves the resolution and the depth of field of "
         "optical microscope images together (deblurring encoder-decoder, optimal-approximation module, x2 SR module)")


def _yaml(value, indent: int = 0) -> str:
    """A small YAML writer for dicts, lists and scalars (strings double-quoted as JSON, valid YAML 1.2)."""
    pad = " " * indent
    if isinstance(value, dict):
        lines = []
        for k, v in value.items():
            if isinstance(v, (dict, list)) and v:
                lines.append(f"{pad}{k}:\n{_yaml(v, indent + 2)}")
            else:
                lines.append(f"{pad}{k}: {_scalar(v)}")
        return "\n".join(lines)
    if isinstance(value, list):
        lines = []
        for v in value:
            if isinstance(v, (dict, list)) and v:
                body = _yaml(v, indent + 2)
                lines.append(f"{pad}- {body.lstrip()}")
            else:
                lines.append(f"{pad}- {_scalar(v)}")
        return "\n".join(lines)
    return pad + _scalar(value)


def _scalar(v) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, (dict, list)):
        return "{}" if isinstance(v, dict) else "[]"
    return json.dumps(str(v))


def test_image() -> np.ndarray:
    """The package's test input: a 128x128 RGB crop of scikit-image's astronaut (not a reserved image), float32."""
    from skimage import data

    return data.astronaut()[96 : 96 + TEST_SIDE, 200 : 200 + TEST_SIDE].astype(np.float32)


def scale_range(x: np.ndarray, percentiles: tuple[float, float]) -> np.ndarray:
    """bioimageio's scale_range over (channel, y, x): (x - p_lo) / (p_hi - p_lo + eps)."""
    lo, hi = np.percentile(x, percentiles)
    return ((x - lo) / (hi - lo + EPS)).astype(np.float32)


def _card(info: dict, name: str, context: int) -> str:
    prov = info.get("provenance", {})
    lo, hi = info["normalization"]["percentiles"]
    trained = [f"- Training data: {prov['data']}." if "data" in prov else "- Training data: not recorded."]
    deg = prov.get("degradation", {})
    if deg:
        trained.append("- Degradations in training: " + ", ".join(
            f"{k.replace('_', ' ')} {v}" for k, v in deg.items() if isinstance(v, (int, float, list)))[:600] + ".")
    lines = [f"# {name}", "",
             f"{ARCH_NAMES.get(info['arch'], info['arch']).capitalize()}, exported by mdeblur "
             f"{info['mdeblur_version']}: joint defocus deblurring and x{info['scale']} super-resolution of optical "
             "microscope images.", "",
             "## Use", "",
             f"- Input: float32 (batch, 3, y, x); y and x multiples of {info['multiple']}, at least the declared "
             "minimum. A gray image goes in as the same plane in all three channels; average the three outputs.",
             f"- Preprocessing (declared in rdf.yaml): the {lo:g} and {hi:g} percentiles of the image map to 0 and 1, "
             "jointly over channel, y and x. (`mdeblur restore` maps 8-bit images by /255 instead, so 8-bit "
             "results differ a little from it.)",
             "- Output: (batch, 3, 2y, 2x), in the same normalised units; map it back with the input's percentiles "
             "to get intensities.",
             f"- Tiling: the declared halo ({context * info['scale']} output pixels, the network's context) lets a "
             "runtime tile large images. Runtimes pad the image border by the halo, so a few border pixels differ "
             "from `mdeblur restore`, which runs the network up to the border.", "",
             "## Training and limits", "", *trained,
             "- Not trained on your microscope. Compare against bicubic on your data, and inspect flat regions "
             "contrast-stretched for invented texture (`mdeblur restore --trust` maps where to doubt the output).",
             "- Not for quantitative intensity measurements without validation.", "",
             "## Validation", "",
             "The test input is a crop of scikit-image's astronaut photograph; the expected output was made by the "
             "PyTorch model and both weight formats reproduce it (mdeblur's tests run bioimageio.core's test_model). "
             "mdeblur's README gives PSNR/SSIM on held-out and reserved images.", "",
             "## Cite", "", PAPER, ""]
    return "\n".join(lines)


def _cover(x: np.ndarray, y: np.ndarray, path: Path) -> None:
    import cv2

    up = cv2.resize(x, (y.shape[1], y.shape[0]), interpolation=cv2.INTER_NEAREST)
    both = np.concatenate([up, y], axis=1)
    both = np.clip(both * 255, 0, 255).astype(np.uint8)
    cv2.imwrite(str(path), cv2.cvtColor(both, cv2.COLOR_RGB2BGR))  # input (enlarged) | output, 1:2


def rdf(info: dict, name: str, files: dict[str, Path], context: int) -> dict:
    """The rdf.yaml content (format 0.5) for the files written beside it."""
    lo, hi = info["normalization"]["percentiles"]
    scale = info["scale"]
    channel = {"type": "channel", "channel_names": ["r", "g", "b"]}

    step = info["multiple"]
    smallest = -(-(2 * context + 8) // step) * step  # the output must exceed twice its halo

    def space(axis: str) -> dict:
        return {"type": "space", "id": axis, "size": {"min": smallest, "step": step}}

    def out_space(axis: str) -> dict:
        return {"type": "space", "id": axis, "size": {"tensor_id": "input", "axis_id": axis},
                "scale": 1 / scale, "halo": context * scale}

    def ref(key: str) -> dict:
        return {"source": files[key].name, "sha256": sha256(files[key])}

    return {
        "type": "model", "format_version": FORMAT_VERSION, "name": f"mdeblur {name}",
        "description": f"Joint defocus deblurring and x{scale} super-resolution of optical microscope images "
                       f"({ARCH_NAMES.get(info['arch'], info['arch'])}).",
        "version": info["mdeblur_version"],
        "authors": [{"name": "the mdeblur developers"}],
        "cite": [{"text": PAPER, "url": PAPER_URL}],
        "license": "MIT",
        "documentation": "README.md",
        "covers": [files["cover"].name],
        "attachments": [{"source": files["license"].name}, {"source": files["citation"].name}],
        "tags": ["super-resolution", "deblurring", "microscopy", "2d", "gan", "pytorch", "onnx"],
        "inputs": [{
            "id": "input", "description": "RGB or gray-as-RGB image, any intensity range",
            "axes": [{"type": "batch"}, channel, space("y"), space("x")],
            "test_tensor": ref("test_input"), "data": {"type": "float32"},
            "preprocessing": [{"id": "scale_range", "kwargs": {"axes": ["channel", "y", "x"], "min_percentile": lo,
                                                              "max_percentile": hi, "eps": EPS}}],
        }],
        "outputs": [{
            "id": "output", "description": f"restored image at x{scale}, in the normalised units of the input",
            "axes": [{"type": "batch"}, channel, out_space("y"), out_space("x")],
            "test_tensor": ref("test_output"), "data": {"type": "float32"},
        }],
        "weights": {
            "onnx": {"source": files["onnx"].name, "sha256": sha256(files["onnx"]), "opset_version": 17,
                     "parent": "torchscript"},
            "torchscript": {"source": files["torchscript"].name, "sha256": sha256(files["torchscript"]),
                            "pytorch_version": torch.__version__.split("+")[0]},
        },
    }


def export_bioimageio(model: LoadedModel, path: Path, name: str = "mdeblurgan-x2") -> dict:
    """Write the package's files into a zip at `path` (not atomically: `export` wraps this)."""
    from ..restore.tiles import Grid
    from .networks import RestoredImage, describe, export_onnx, export_torchscript

    info = describe(model)
    net = RestoredImage(model.net.cpu().eval()).eval()
    with tempfile.TemporaryDirectory(prefix="mdeblur-bioimageio-") as tmp:
        d = Path(tmp)
        files = {"onnx": d / "weights.onnx", "torchscript": d / "weights_torchscript.pt",
                 "test_input": d / "test_input.npy", "test_output": d / "test_output.npy", "cover": d / "cover.png",
                 "license": d / "LICENSE", "citation": d / "CITATION.cff"}
        example = torch.rand(1, 3, TEST_SIDE, TEST_SIDE)
        export_onnx(net, example, files["onnx"], info)
        export_torchscript(net, example, files["torchscript"], info)
        raw = test_image().transpose(2, 0, 1)[None]  # (1, 3, y, x), 0..255
        x = scale_range(raw, tuple(info["normalization"]["percentiles"]))
        with torch.inference_mode():
            y = net(torch.from_numpy(x)).numpy()
        np.save(files["test_input"], raw)
        np.save(files["test_output"], y)
        _cover(x[0].transpose(1, 2, 0), y[0].transpose(1, 2, 0), files["cover"])
        files["license"].write_text(MIT)
        files["citation"].write_text('cff-version: 1.2.0\nmessage: "If you use this model, cite the software and the '
                                     'M-Deblurgan paper (see README.md)."\ntype: software\ntitle: "mdeblur"\n'
                                     f'version: "{info["mdeblur_version"]}"\nauthors:\n  - name: "the mdeblur developers"\n')
        (d / "README.md").write_text(_card(info, name, Grid.of(model.net).context))
        (d / "rdf.yaml").write_text(_yaml(rdf(info, name, files, Grid.of(model.net).context)) + "\n")
        try:
            with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
                for f in sorted(d.iterdir()):
                    z.write(f, f.name)
        except OSError as exc:
            raise MdeblurError(f"{path}: cannot write ({exc.strerror or exc})") from None
    return info
