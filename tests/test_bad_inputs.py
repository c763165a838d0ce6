"""The bad-input corpus: every kind of bad file or option, across commands, gets one line, exit 2, no output.

Each case makes its own files in a fresh folder and names the words its one-line error must contain. The
folder is compared before and after: a refused command leaves nothing behind (no output, no temp file).
"""

import struct
import zlib

import numpy as np
import pytest
import tifffile
from typer.testing import CliRunner

from mdeblur_cli.cli import app
from mdeblur_cli.formats.images import write_image

from .conftest import TINY_TRAIN, smooth_image

runner = CliRunner()


def _png(path, h=24, w=24, dtype=np.uint8):
    img = smooth_image(h, w)
    write_image(path, np.rint(img * (255 if dtype == np.uint8 else 65535)).astype(dtype))
    return path


def _chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png_header(path, w, h):
    """A tiny PNG whose header declares w x h: a decompression bomb's first bytes."""
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
                     + _chunk(b"IDAT", zlib.compress(b"")) + _chunk(b"IEND", b""))
    return path


def _jpeg_header(path, w, h):
    """A JPEG whose start-of-frame declares w x h (nothing after it)."""
    sof = b"\xff\xc0" + struct.pack(">HBHHB", 11, 8, h, w, 1) + b"\x01\x11\x00"
    path.write_bytes(b"\xff\xd8" + b"\xff\xe0" + struct.pack(">H", 16) + b"JFIF\x00" + bytes(9) + sof + b"\xff\xd9")
    return path


def _write(path, data):
    path.write_bytes(data if isinstance(data, bytes) else data.encode())
    return path


def _mkdir(path):
    path.mkdir(parents=True, exist_ok=True)
    return path


def _nan_weights(tmp, weights):
    """The tiny weights with every tensor NaN, metadata intact: a diverged run."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    with safe_open(weights, framework="pt") as f:
        meta, state = f.metadata(), {k: f.get_tensor(k) * float("nan") for k in f.keys()}
    save_file(state, str(tmp / "nan.safetensors"), metadata=meta)
    return str(tmp / "nan.safetensors")


def _weights(tmp, tiny_weights):
    return str(tiny_weights)


# Each case: (id, builder(tmp, weights) -> argv, words the one error line must contain).
def _restore(*args):
    return lambda t, w: ["restore", *[a(t) if callable(a) else a for a in args], "--weights", w]


def _in(name):
    return lambda t: str(t / name)


def _make(fn):
    """A restore case whose input `fn(tmp)` makes, to be restored into tmp/out.png."""
    return lambda t, w: ["restore", str(fn(t)), "-o", str(t / "out.png"), "--weights", w]


CASES = [
    # restore: bad files
    ("empty file", _make(lambda t: _write(t / "e.png", b"")), ["e.png", "empty"]),
    ("truncated PNG", _make(lambda t: _write(t / "t.png", b"\x89PNG\r\n\x1a\n\x00\x00")),
     ["t.png", "not a readable PNG"]),
    ("text as PNG", _make(lambda t: _write(t / "x.png", "hello")), ["x.png", "not a readable"]),
    ("text as TIFF", _make(lambda t: _write(t / "x.tif", "hello")), ["x.tif", "not a readable TIFF"]),
    ("text as JPEG", _make(lambda t: _write(t / "x.jpg", "hello")), ["x.jpg", "not a readable"]),
    ("unknown type", _make(lambda t: _write(t / "x.xyz", "hello")), ["x.xyz", "unsupported file"]),
    ("missing file", _restore(_in("nope.png"), "-o", _in("out.png")), ["nope.png", "no such file"]),
    ("int16 TIFF", _make(lambda t: tifffile.imwrite(t / "i.tif", np.zeros((8, 8), np.int16)) or t / "i.tif"),
     ["i.tif", "int16", "uint8, uint16"]),
    ("uint32 TIFF", _make(lambda t: tifffile.imwrite(t / "u.tif", np.zeros((8, 8), np.uint32)) or t / "u.tif"),
     ["u.tif", "uint32"]),
    ("complex TIFF", _make(lambda t: tifffile.imwrite(t / "c.tif", np.zeros((8, 8), np.complex64)) or t / "c.tif"),
     ["c.tif", "complex64"]),
    ("bool TIFF", _make(lambda t: tifffile.imwrite(t / "b.tif", np.zeros((8, 8), bool)) or t / "b.tif"),
     ["b.tif", "mask"]),
    ("1x1 image", _make(lambda t: tifffile.imwrite(t / "p.tif", np.zeros((1, 1), np.uint8)) or t / "p.tif"),
     ["p.tif", "too small"]),
    ("PNG bomb header", _make(lambda t: _png_header(t / "bomb.png", 40000, 40000)), ["bomb.png", "exceed the limit"]),
    ("JPEG bomb header", _make(lambda t: _jpeg_header(t / "bomb.jpg", 60000, 60000)), ["bomb.jpg", "exceed the limit"]),
    ("over --max-pixels", lambda t, w: ["restore", str(_png(t / "a.png")), "-o", str(t / "o.png"), "--max-pixels",
                                        "100", "--weights", w], ["a.png", "--max-pixels"]),
    ("all-NaN float", _make(lambda t: tifffile.imwrite(t / "n.tif", np.full((8, 8), np.nan, np.float32))
                            or t / "n.tif"), ["n.tif", "no finite pixels"]),
    ("NaN float to PNG", lambda t, w: ["restore", str(t / "n.tif"), "-o", str(t / "o.png"), "--weights", w]
     if tifffile.imwrite(t / "n.tif", np.where(np.eye(8) > 0, np.nan, 0.5).astype(np.float32)) is None else [],
     ["o.png", "NaN"]),
    ("NaN weights", lambda t, w: ["restore", str(_png(t / "a.png")), "-o", str(t / "o.png"), "--weights",
                                  _nan_weights(t, w)], ["nan.safetensors", "NaN/Inf"]),
    ("folder restored into itself", lambda t, w: ["restore", str(_png(t / "a.png").parent), "--out-dir", str(t),
                                                  "--weights", w], ["output folder"]),
    # restore: outputs that cannot hold the result
    ("stack to PNG", _make(lambda t: tifffile.imwrite(t / "z.tif", np.zeros((3, 8, 8), np.uint8),
                                                      photometric="minisblack") or t / "z.tif"), ["out.png", "TIFF"]),
    ("16-bit to JPEG", lambda t, w: ["restore", str(_png(t / "a.png", dtype=np.uint16)), "-o", str(t / "o.jpg"),
                                     "--weights", w], ["o.jpg", "8 bits"]),
    ("float counts to PNG", lambda t, w: ["restore", str(t / "f.tif"), "-o", str(t / "o.png"), "--weights", w]
     if tifffile.imwrite(t / "f.tif", np.full((8, 8), 500, np.float32)) is None else [], ["o.png", "float"]),
    ("unknown output type", _restore(lambda t: str(_png(t / "a.png")), "-o", _in("o.xyz")), ["o.xyz", "unsupported"]),
    ("output folder is a file", lambda t, w: ["restore", str(_png(t / "a.png")), "--out-dir", str(t / "a.png"),
                                              "--weights", w], ["a.png", "is a file"]),
    ("writes over its input", _restore(lambda t: str(_png(t / "a.png")), "-o", _in("a.png")), ["a.png", "over an input"]),
    # restore: options
    ("--tile 0", _restore(lambda t: str(_png(t / "a.png")), "-o", _in("o.png"), "--tile", "0"), ["--tile"]),
    ("--tile -5", _restore(lambda t: str(_png(t / "a.png")), "-o", _in("o.png"), "--tile", "-5"), ["--tile"]),
    ("--normalize foo", _restore(lambda t: str(_png(t / "a.png")), "-o", _in("o.png"), "--normalize", "foo"),
     ["--normalize foo"]),
    ("--percentiles 5", _restore(lambda t: str(_png(t / "a.png")), "-o", _in("o.png"), "--percentiles", "5"),
     ["--percentiles"]),
    ("--percentiles 99,1", _restore(lambda t: str(_png(t / "a.png")), "-o", _in("o.png"), "--percentiles", "99,1"),
     ["--percentiles"]),
    ("--channels foo", _restore(lambda t: str(_png(t / "a.png")), "-o", _in("o.png"), "--channels", "foo"),
     ["--channels foo"]),
    ("--axes repeated", _restore(lambda t: str(_png(t / "a.png")), "-o", _in("o.png"), "--axes", "YYX"), ["YYX"]),
    ("--axes wrong length", _restore(lambda t: str(_png(t / "a.png")), "-o", _in("o.png"), "--axes", "TZYX"),
     ["a.png", "dimensions"]),
    ("--suffix escapes", _restore(lambda t: str(_png(t / "a.png")), "--out-dir", _in("o"), "--suffix", "/../../e"),
     ["--suffix"]),
    ("--device meta", _restore(lambda t: str(_png(t / "a.png")), "-o", _in("o.png"), "--device", "meta"),
     ["--device meta"]),
    ("--precision bf16 on CPU", _restore(lambda t: str(_png(t / "a.png")), "-o", _in("o.png"), "--device", "cpu",
                                         "--precision", "bf16"), ["--precision bf16"]),
    ("-o and --out-dir", _restore(lambda t: str(_png(t / "a.png")), "-o", _in("o.png"), "--out-dir", _in("d")),
     ["not both"]),
    ("neither -o nor --out-dir", _restore(lambda t: str(_png(t / "a.png"))), ["--out-dir"]),
    ("--overwrite and --skip-existing", _restore(lambda t: str(_png(t / "a.png")), "-o", _in("o.png"), "--overwrite",
                                                 "--skip-existing"), ["contradict"]),
    ("--max-pixels 0", _restore(lambda t: str(_png(t / "a.png")), "-o", _in("o.png"), "--max-pixels", "0"),
     ["--max-pixels"]),
    # weights
    ("weights missing", lambda t, w: ["restore", str(_png(t / "a.png")), "-o", str(t / "o.png"), "--weights",
                                      str(t / "none.safetensors")], ["none.safetensors", "not found"]),
    ("weights garbage", lambda t, w: ["restore", str(_png(t / "a.png")), "-o", str(t / "o.png"), "--weights",
                                      str(t / "g.safetensors")] if (t / "g.safetensors").write_bytes(b"junk" * 10)
     else [], ["g.safetensors", "not a valid safetensors"]),
    # train
    ("train --patch 0", lambda t, w: ["train", "builtin", "--patch", "0", "--out", str(t / "run")], ["--patch 0"]),
    ("train --batch-size 0", lambda t, w: ["train", "builtin", "--batch-size", "0", "--out", str(t / "run")],
     ["--batch-size 0"]),
    ("train --iters 0", lambda t, w: ["train", "builtin", "--iters", "0", "--out", str(t / "run")], ["--iters 0"]),
    ("train --ema 2", lambda t, w: ["train", "builtin", "--ema", "2", "--out", str(t / "run")], ["--ema 2"]),
    ("train --model foo", lambda t, w: ["train", "builtin", "--model", "foo", "--out", str(t / "run")], ["--model foo"]),
    ("train --pixel-loss foo", lambda t, w: ["train", "builtin", "--pixel-loss", "foo", "--out", str(t / "run")],
     ["--pixel-loss foo: use mse or log-mse"]),
    ("train missing data", lambda t, w: ["train", str(t / "nodata"), "--out", str(t / "run")], ["nodata", "not a folder"]),
    ("train --out inside data", lambda t, w: ["train", str(_png(t / "d" / "a.png", 64, 64).parent), "--out",
                                              str(t / "d" / "run")], ["input"]),
    ("train --resume not a run", lambda t, w: ["train", "--resume", str(t)], ["not a run directory"]),
    ("train --seed -1", lambda t, w: ["train", "builtin", "--seed", "-1", "--out", str(t / "run")], ["--seed -1"]),
    ("train batch beyond memory", lambda t, w: ["train", "builtin", "--batch-size", "100000", "--device", "cpu",
                                                "--out", str(t / "run")], ["--batch-size 100000", "GiB"]),
    ("train --init vs --model", lambda t, w: ["train", "builtin", "--init", w, "--model", "unet-sr", "--out",
                                              str(t / "run")], ["mdeblurgan", "--model"]),
    ("train --iters and --epochs", lambda t, w: ["train", "builtin", "--iters", "2", "--epochs", "1", "--out",
                                                 str(t / "run")], ["--iters or --epochs"]),
    # benchmark
    ("benchmark --json under a file", lambda t, w: ["benchmark", "--limit", "1", "--json", str(_png(t / "a.png") / "r.json")],
     ["a.png is a file"]),
    ("benchmark NaN image", lambda t, w: ["benchmark", "--dataset", str(t / "d"), "--methods", "bicubic"]
     if tifffile.imwrite(_mkdir(t / "d") / "n.tif", np.where(np.eye(64) > 0, np.nan, 0.5).astype(np.float32))
     is None else [], ["n.tif", "NaN/Inf"]),
    ("benchmark --limit 0", lambda t, w: ["benchmark", "--limit", "0"], ["--limit 0"]),
    ("benchmark --limit -1", lambda t, w: ["benchmark", "--limit", "-1"], ["--limit -1"]),
    ("benchmark --psf disk:0", lambda t, w: ["benchmark", "--methods", "rl-sr", "--psf", "disk:0", "--limit", "1"],
     ["--psf disk:0"]),
    ("benchmark NaN PSF", lambda t, w: ["benchmark", "--methods", "rl-sr", "--psf", str(t / "p.npy"), "--limit", "1"]
     if np.save(t / "p.npy", np.full((3, 3), np.nan)) is None else [], ["p.npy", "finite"]),
    ("benchmark object .npy", lambda t, w: ["benchmark", "--methods", "rl-sr", "--psf", str(t / "o.npy"), "--limit",
                                            "1"] if np.save(t / "o.npy", np.array([{}], dtype=object)) is None else [],
     ["o.npy", "numeric"]),
    ("benchmark --json exists", lambda t, w: ["benchmark", "--limit", "1", "--json", str(t / "r.json")]
     if (t / "r.json").write_text("{}") else [], ["r.json", "--overwrite"]),
    ("benchmark unknown method", lambda t, w: ["benchmark", "--methods", "magic", "--limit", "1"], ["magic"]),
    ("benchmark --input-depth 7", lambda t, w: ["benchmark", "--input-depth", "7"], ["--input-depth 7"]),
    # simulate
    ("simulate --size 0", lambda t, w: ["simulate", "plant", str(t / "s"), "--size", "0"], ["--size 0"]),
    ("simulate NA 2.0", lambda t, w: ["simulate", "plant", str(t / "s"), "--objective-lr", "5x/2.0"], ["NA 2"]),
    ("simulate --camera-pixel 0", lambda t, w: ["simulate", "plant", str(t / "s"), "--camera-pixel", "0"],
     ["--camera-pixel 0"]),
    ("simulate --noise -5", lambda t, w: ["simulate", "plant", str(t / "s"), "--noise", "-5"], ["--noise -5"]),
    ("simulate --defocus 5:1", lambda t, w: ["simulate", "plant", str(t / "s"), "--defocus", "5:1"], ["--defocus"]),
    ("simulate --size huge", lambda t, w: ["simulate", "plant", str(t / "s"), "--size", "100000000"], ["--size"]),
    ("simulate OUT under a file", lambda t, w: ["simulate", "plant", str(_png(t / "a.png") / "s"), "--count", "1",
                                                "--size", "64"], ["a.png is a file"]),
    # pairs align
    ("pairs OUT is a file", lambda t, w: ["pairs", "align", str(_png(t / "lr" / "a.png").parent),
                                          str(_png(t / "hr" / "a.png", 48, 48).parent), str(_png(t / "o.png"))],
     ["o.png is a file"]),
    ("pairs missing folder", lambda t, w: ["pairs", "align", str(t / "lr"), str(t / "hr"), str(t / "o")],
     ["lr", "no such folder"]),
    ("pairs OUT holds its inputs", lambda t, w: ["pairs", "align", str(_png(t / "lr" / "a.png").parent),
                                                 str(_png(t / "hr" / "a.png", 48, 48).parent), str(t)], ["input"]),
]


@pytest.mark.parametrize("name,build,words", CASES, ids=[c[0] for c in CASES])
def test_bad_input_corpus(tmp_path, tiny_weights, name, build, words):
    work = tmp_path / "w"
    work.mkdir()
    argv = build(work, _weights(work, tiny_weights))
    before = sorted(p.relative_to(work) for p in work.rglob("*"))
    res = runner.invoke(app, argv)
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert res.exit_code == 2, res.output
    assert len(lines) == 1 and "Traceback" not in res.output, res.output
    for word in words:
        assert word in lines[0], (word, lines[0])
    assert sorted(p.relative_to(work) for p in work.rglob("*")) == before  # nothing written, no temp files


def test_corpus_has_at_least_40_kinds():
    assert len(CASES) >= 40


def test_one_bad_file_in_a_batch_of_good_ones(tmp_path, tiny_weights):
    src = tmp_path / "in"
    src.mkdir()
    for name in ("a", "c"):
        _png(src / f"{name}.png")
    _png_header(src / "b.png", 40000, 40000)  # 65 bytes that declare 1.6 G pixels
    tifffile.imwrite(src / "d.tif", np.zeros((8, 8), np.int16))
    res = runner.invoke(app, ["restore", str(src), "--out-dir", str(tmp_path / "o"), "--weights", str(tiny_weights)])
    assert res.exit_code == 2 and "Traceback" not in res.output
    assert "b.png" in res.output and "d.tif" in res.output and "2 of 4 inputs failed" in res.output
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == ["a_x2.png", "c_x2.png"]


def test_unexpected_errors_are_one_line_unless_debug(tmp_path, tiny_weights, monkeypatch):
    import mdeblur_cli.restore.files as files

    def broken(*args, **kwargs):
        raise RuntimeError("a bug in the tool")

    src = tmp_path / "in"
    src.mkdir()
    _png(src / "a.png")
    _png(src / "b.png")
    monkeypatch.setattr(files, "restore_stack", broken)
    res = runner.invoke(app, ["restore", str(src), "--out-dir", str(tmp_path / "o"), "--weights", str(tiny_weights)])
    assert res.exit_code == 2 and "unexpected RuntimeError: a bug in the tool" in res.output
    assert res.output.count("--debug") == 2 and "Traceback" not in res.output
    res = runner.invoke(app, ["restore", str(src), "--out-dir", str(tmp_path / "o"), "--weights", str(tiny_weights),
                              "--debug"])
    assert isinstance(res.exception, RuntimeError)


def test_nan_and_inf_stay_where_they_were(tmp_path, tiny_weights):
    arr = (smooth_image(24, 24, c=1)[..., 0] * 1000).astype(np.float32)
    arr[3, 4], arr[10, 10], arr[20, 5] = np.nan, np.inf, -3e38
    tifffile.imwrite(tmp_path / "n.tif", arr)
    res = runner.invoke(app, ["restore", str(tmp_path / "n.tif"), "-o", str(tmp_path / "o.tif"), "--weights",
                              str(tiny_weights)])
    assert res.exit_code == 0 and "3 NaN/Inf" in res.output, res.output
    out = tifffile.imread(tmp_path / "o.tif")
    bad = np.zeros((48, 48), bool)
    for y, x in ((3, 4), (10, 10), (20, 5)):
        bad[2 * y : 2 * y + 2, 2 * x : 2 * x + 2] = True
    assert np.array_equal(np.isnan(out), bad)  # NaN exactly over the pixels that held none, finite elsewhere
    assert np.abs(out[~bad]).max() < 2000


def test_paths_with_rich_markup_are_printed_as_they_are(tmp_path, tiny_weights):
    src = _png(tmp_path / "x[/red]b[bold].png")
    res = runner.invoke(app, ["restore", str(src), "--out-dir", str(tmp_path / "o"), "--weights", str(tiny_weights)])
    assert res.exit_code == 0 and "x[/red]b[bold].png" in res.output, res.output
    (tmp_path / "bad[red].png").write_bytes(b"junk")
    res = runner.invoke(app, ["restore", str(tmp_path / "bad[red].png"), "-o", str(tmp_path / "q.png"),
                              "--weights", str(tiny_weights)])
    assert res.exit_code == 2 and "bad[red].png" in res.output


def test_a_killed_writes_temp_file_is_not_an_input(tmp_path, tiny_weights):
    src = tmp_path / "in"
    src.mkdir()
    _png(src / "a.png")
    (src / ".mdeblur-k1llx2a.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated by SIGKILL")
    res = runner.invoke(app, ["restore", str(src), "--out-dir", str(tmp_path / "o"), "--weights", str(tiny_weights)])
    assert res.exit_code == 0 and ".mdeblur-" not in res.output


def test_a_nan_image_in_training_data_is_skipped(tmp_path, hr_folder):
    nan = (smooth_image(96, 104, c=1)[..., 0]).astype(np.float32)
    nan[5, 5] = np.nan
    tifffile.imwrite(hr_folder / "nan.tif", nan)
    res = runner.invoke(app, ["train", str(hr_folder), *TINY_TRAIN, "--out", str(tmp_path / "run")])
    assert res.exit_code == 0, res.output
    assert "nan.tif" in res.output and "NaN/Inf" in res.output and (tmp_path / "run" / "best.safetensors").exists()
    mode = (tmp_path / "run" / "best.safetensors").stat().st_mode & 0o777
    assert mode == (tmp_path / "run" / "metrics.csv").stat().st_mode & 0o777  # weights as readable as the logs
