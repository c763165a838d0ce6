"""Smoke runs of the hardening scripts in their quick modes (not timed: they must run and find nothing)."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _run(*args):
    return subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_soak_quick_mode_restores_every_image():
    res = _run("benchmarks/soak.py", "--quick")
    assert res.returncode == 0, res.stderr
    assert "60 of 60 images" in res.stdout and "(0 failed)" in res.stdout and "growth" in res.stdout


def test_fuzz_reader_short_run_finds_no_bug(tmp_path):
    res = _run("benchmarks/fuzz_reader.py", "--minutes", "0.05", "--keep", str(tmp_path / "kept"))
    assert res.returncode == 0, res.stdout + res.stderr
    assert "mutated images" in res.stdout and not (tmp_path / "kept").exists()


def test_library_warnings_stay_off_stderr(tmp_path):
    """libpng prints straight to the C stderr (an odd colour profile): a real process shows whether it leaks."""
    import struct
    import zlib

    import cv2
    import numpy as np

    ok, buf = cv2.imencode(".png", np.zeros((16, 16, 3), np.uint8))
    data = buf.tobytes()
    body = b"bad\x00\x00" + zlib.compress(b"not a profile" * 10)
    iccp = struct.pack(">I", len(body)) + b"iCCP" + body + struct.pack(">I", zlib.crc32(b"iCCP" + body))
    (tmp_path / "p.png").write_bytes(data[:33] + iccp + data[33:])  # after IHDR
    res = _run("-m", "mdeblur_cli", "restore", str(tmp_path / "p.png"), "-o", str(tmp_path / "q.png"))
    assert res.returncode == 0, res.stderr
    assert "libpng" not in res.stderr and "tifffile" not in res.stderr


def test_restore_speed_quick_run(tmp_path):
    res = _run("benchmarks/restore_speed.py", "--size", "128", "--json", str(tmp_path / "s.json"))
    assert res.returncode == 0, res.stderr
    import json

    rows = {r["method"]: r for r in json.loads((tmp_path / "s.json").read_text())["methods"]}
    assert set(rows) == {"mdeblurgan", "unet-sr", "rl-sr"} and rows["mdeblurgan"]["flops_per_pixel"] > 1e5


def test_restore_memory_quick_run():
    res = _run("benchmarks/restore_memory.py", "--sides", "256")
    assert res.returncode == 0, res.stderr
    assert "256^2: peak RSS" in res.stdout


def test_batch_throughput_quick_run():
    res = _run("benchmarks/batch_throughput.py", "--quick")
    assert res.returncode == 0, res.stderr
    assert "(0 of 24 failed; batch outputs equal the one-by-one outputs: True)" in res.stdout


def test_restore_scaling_quick_run():
    res = _run("benchmarks/restore_scaling.py", "--quick")
    assert res.returncode == 0, res.stderr
    assert "2 workers / 1 worker" in res.stdout and "ms per task" in res.stdout
