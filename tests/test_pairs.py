import math

import cv2
import numpy as np
import pytest

from mdeblur_cli.data.registration import align_folder, apply_alignment, register
from mdeblur_cli.data.specimens import plant_tissue
from mdeblur_cli.errors import MdeblurError
from mdeblur_cli.formats.images import read_image, write_image


def synthetic_pair(angle_deg=1.5, shift=(3.3, -2.7), size=256):
    """HR field, and an LR view of it: rotated/shifted by a known amount (LR px), x2 smaller, blurred, dimmer."""
    hr = plant_tissue(size + 64, seed=5)
    lr_size = size // 2
    a = math.radians(angle_deg)
    lin = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    t = np.array(shift) + 16  # LR pixel x maps to HRd pixel lin @ x + t
    hr_small = cv2.resize(hr, (hr.shape[1] // 2, hr.shape[0] // 2), interpolation=cv2.INTER_AREA)
    m = np.hstack([lin, t[:, None]])
    lr = cv2.warpAffine(hr_small, m, (lr_size, lr_size), flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP)
    lr = cv2.GaussianBlur(lr, (0, 0), 1.0) * np.array([0.8, 0.85, 0.9], np.float32)
    return lr.astype(np.float32), hr, lin, t


def test_register_recovers_known_transform():
    lr, hr, lin, t = synthetic_pair()
    al = register(lr, hr)
    est = al.matrix.astype(np.float64)
    corners = np.array([[0, 0], [127, 0], [0, 127], [127, 127]], float)
    err = np.abs(corners @ est[:, :2].T + est[:, 2] - (corners @ lin.T + t)).max()
    assert err < 0.5, err
    assert abs(al.rotation_deg - 1.5) < 0.1 and al.correlation > 0.9


def test_aligned_pair_matches_and_is_gain_corrected():
    lr, hr, _, _ = synthetic_pair()
    lr_c, hr_c = apply_alignment(lr, hr, register(lr, hr))
    assert hr_c.shape[0] == 2 * lr_c.shape[0] and hr_c.shape[1] == 2 * lr_c.shape[1]
    assert lr_c.shape[0] > 100
    hr_small = cv2.GaussianBlur(cv2.resize(hr_c, lr_c.shape[1::-1], interpolation=cv2.INTER_AREA), (0, 0), 1.0)
    assert np.abs(lr_c - hr_small)[4:-4, 4:-4].mean() < 0.02
    assert np.allclose(lr_c.mean((0, 1)), hr_small.mean((0, 1)), atol=0.02)


def test_align_folder_reports_and_rejects(tmp_path):
    lr, hr, _, _ = synthetic_pair()
    for d in ("lr", "hr"):
        (tmp_path / d).mkdir()
    write_image(tmp_path / "lr" / "good.png", (lr * 255).astype(np.uint8))
    write_image(tmp_path / "hr" / "good.png", (hr * 255).astype(np.uint8))
    rng = np.random.default_rng(0)
    write_image(tmp_path / "lr" / "noise.png", (rng.random((128, 128, 3)) * 255).astype(np.uint8))
    write_image(tmp_path / "hr" / "noise.png", (hr * 255).astype(np.uint8))
    report = {r["stem"]: r for r in align_folder(tmp_path / "lr", tmp_path / "hr", tmp_path / "out")}
    assert report["good"]["status"] == "aligned" and report["good"]["residual_rms"] < 0.1
    assert report["noise"]["status"] == "rejected" and report["noise"]["reason"]
    assert read_image(tmp_path / "out" / "hr" / "good.png").pages[0].shape[0] % 2 == 0
    assert not (tmp_path / "out" / "lr" / "noise.png").exists()


def test_no_matching_stems(tmp_path):
    (tmp_path / "lr").mkdir()
    (tmp_path / "hr").mkdir()
    with pytest.raises(MdeblurError, match="no matching"):
        align_folder(tmp_path / "lr", tmp_path / "hr", tmp_path / "out")


def _pair_folders(root, corrupt=False):
    lr, hr, _, _ = synthetic_pair()
    for d in ("lr", "hr"):
        (root / d).mkdir(parents=True)
    write_image(root / "lr" / "good.png", (lr * 255).astype(np.uint8))
    write_image(root / "hr" / "good.png", (hr * 255).astype(np.uint8))
    if corrupt:
        (root / "lr" / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
        write_image(root / "hr" / "bad.png", (hr * 255).astype(np.uint8))
    return lr, hr


def test_align_never_writes_over_its_inputs(tmp_path):
    from typer.testing import CliRunner

    from mdeblur_cli.cli import app

    _pair_folders(tmp_path / "data")
    before = {p: p.read_bytes() for p in (tmp_path / "data").rglob("*.png")}
    for overwrite in ([], ["--overwrite"]):  # OUT holds lr/ and hr/: writing there would replace the originals
        res = CliRunner().invoke(app, ["pairs", "align", str(tmp_path / "data" / "lr"), str(tmp_path / "data" / "hr"),
                                       str(tmp_path / "data"), *overwrite])
        assert res.exit_code == 2 and "input" in res.output
    assert {p: p.read_bytes() for p in (tmp_path / "data").rglob("*.png")} == before
    args = ["pairs", "align", str(tmp_path / "data" / "lr"), str(tmp_path / "data" / "hr"), str(tmp_path / "out")]
    assert CliRunner().invoke(app, args).exit_code == 0
    again = CliRunner().invoke(app, args)  # a re-run does not silently replace the first one
    assert again.exit_code == 2 and "--overwrite" in again.output
    assert CliRunner().invoke(app, [*args, "--overwrite"]).exit_code == 0


def test_align_exits_2_when_an_input_is_unreadable(tmp_path):
    from typer.testing import CliRunner

    from mdeblur_cli.cli import app

    _pair_folders(tmp_path, corrupt=True)
    res = CliRunner().invoke(app, ["pairs", "align", str(tmp_path / "lr"), str(tmp_path / "hr"), str(tmp_path / "o")])
    assert res.exit_code == 2 and "bad: error" in res.output and "1 unreadable" in res.output
    assert (tmp_path / "o" / "lr" / "good.png").exists()
