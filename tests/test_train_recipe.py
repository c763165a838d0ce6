"""The paper's full recipe: every loss, resume after SIGKILL, Ctrl-C, and 2-process DDP."""

import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

from mdeblur_cli.cli import app
from mdeblur_cli.formats.images import write_image
from mdeblur_cli.train.runlog import read_metrics
from mdeblur_cli.train.vgg import TORCHVISION_FILE, vgg19_features

from .conftest import smooth_image

runner = CliRunner()
TINY = ["--preset", "tiny", "--batch-size", "2", "--patch", "16", "--device", "cpu", "--threads", "1"]


@pytest.fixture
def hr_dir(tmp_path):
    d = tmp_path / "hr"
    for i in range(3):
        write_image(d / f"{i}.png", (smooth_image(96, 104, seed=i) * 255).astype(np.uint8))
    return d


def _cmd(*args):
    return [sys.executable, "-m", "mdeblur_cli", "train", *map(str, args)]


def test_every_loss_with_test_made_vgg19(tmp_path, hr_dir):
    torch.manual_seed(0)
    vgg = tmp_path / TORCHVISION_FILE
    torch.save({f"features.{k}": v for k, v in vgg19_features().state_dict().items()}, vgg)
    run = tmp_path / "run"
    res = runner.invoke(app, ["train", str(hr_dir), *TINY, "--iters", "4", "--val-every", "2", "--loss-balance", "auto",
                              "--adversarial-weight", "1e-3", "--adv-start", "1", "--vgg19-weights", str(vgg),
                              "--ema", "0.9", "--out", str(run)])
    assert res.exit_code == 0, res.output
    assert "perceptual(VGG19" in res.output and "adversarial" in res.output
    from mdeblur_cli.weights import read_metadata

    meta = read_metadata(run / "best.safetensors")
    assert meta["provenance"]["vgg19"] == "used" and "adversarial" in meta["provenance"]["losses"]
    rows = read_metrics(run)
    assert float(rows[-1]["percep_term"]) > 0 and float(rows[-1]["adv_term"]) > 0
    assert (run / "training_curve.png").exists() and (run / "config.toml").exists()
    out = tmp_path / "restored.png"
    res = runner.invoke(app, ["restore", str(hr_dir / "0.png"), "-o", str(out), "--weights", str(run / "best.safetensors")])
    assert res.exit_code == 0 and out.exists()


def test_missing_vgg19_is_said_once_and_recorded(tmp_path, hr_dir, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "no-cache"))
    run = tmp_path / "run"
    res = runner.invoke(app, ["train", str(hr_dir), *TINY, "--iters", "2", "--val-every", "2",
                              "--perceptual-weight", "0.1", "--out", str(run)])
    assert res.exit_code == 0, res.output
    assert res.output.count("WITHOUT the perceptual term") == 1
    from mdeblur_cli.weights import read_metadata

    assert read_metadata(run / "best.safetensors")["provenance"]["vgg19"] == "absent"


def _wait_for_state(run, proc, timeout=120):
    t = time.time()
    while not (run / "state.pt").exists():
        assert proc.poll() is None, proc.stdout.read() if proc.stdout else "exited early"
        assert time.time() - t < timeout
        time.sleep(0.02)


def test_sigkill_then_resume_equals_uninterrupted(tmp_path, hr_dir):
    args = [hr_dir, *TINY, "--iters", "150", "--checkpoint-every", "5", "--val-every", "25"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run(_cmd(*args, "--out", tmp_path / "a"), check=True, capture_output=True, env=env)
    b = tmp_path / "b"
    proc = subprocess.Popen(_cmd(*args, "--out", b), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
    _wait_for_state(b, proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = torch.load(b / "state.pt", weights_only=True)["iteration"]
    assert killed_at < 150
    subprocess.run(_cmd("--resume", b), check=True, capture_output=True, env=env)
    wa, wb = load_file(tmp_path / "a" / "last.safetensors"), load_file(b / "last.safetensors")
    assert max((wa[k] - wb[k]).abs().max().item() for k in wa) <= 1e-6
    va = [(r["iter"], r["val_psnr"]) for r in read_metrics(tmp_path / "a")]
    vb = [(r["iter"], r["val_psnr"]) for r in read_metrics(b)]
    assert va == vb and len(va) == 6


@pytest.mark.parametrize("sig,code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_sigint_saves_and_says_how_to_resume(tmp_path, hr_dir, sig, code):
    run = tmp_path / "run"
    proc = subprocess.Popen(_cmd(hr_dir, *TINY, "--iters", "100000", "--checkpoint-every", "5", "--out", run),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    _wait_for_state(run, proc)
    proc.send_signal(sig)
    output, _ = proc.communicate(timeout=60)
    assert proc.returncode == code, output  # as the shell reports a process the signal ended
    assert "Resume with: mdeblur train --resume" in output
    assert torch.load(run / "state.pt", weights_only=True)["iteration"] < 100000


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_process_ddp_on_cpu(tmp_path, hr_dir):
    run = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--nnodes=1",
           "--master_addr=127.0.0.1", f"--master_port={_free_port()}", "-m", "mdeblur_cli", "train", str(hr_dir),
           *TINY, "--iters", "60", "--val-every", "20", "--learning-rate", "1e-3", "--out", str(run)]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    # rich wraps the console at 80 columns, at a place that moves with the length of the temp path: unwrap first.
    assert "2 process(es), global batch 4" in " ".join((res.stdout + res.stderr).split())
    for name in ("best.safetensors", "last.safetensors", "state.pt", "metrics.csv", "train.log", "training_curve.png"):
        assert (run / name).exists(), name
    rows = read_metrics(run)
    assert [int(r["iter"]) for r in rows] == [20, 40, 60]
    assert float(rows[-1]["loss"]) < float(rows[0]["loss"])
    assert len(torch.load(run / "state.pt", weights_only=True)["sampler_states"]) == 2


def test_two_nodes_through_a_c10d_rendezvous_on_localhost(tmp_path, hr_dir):
    """The multi-node form, as far as one machine allows: two torchrun launchers (--nnodes 2, one process each)
    meet at a c10d rendezvous endpoint and train as one run of world size 2."""
    run = tmp_path / "nodes"
    port = _free_port()
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes=2", "--nproc_per_node=1", "--rdzv_backend=c10d",
           f"--rdzv_endpoint=127.0.0.1:{port}", "--rdzv_id=mdeblur-test", "-m", "mdeblur_cli", "train", str(hr_dir),
           *TINY, "--iters", "20", "--val-every", "20", "--out", str(run)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    nodes = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
             for _ in range(2)]
    outs = [p.communicate(timeout=300)[0] for p in nodes]
    assert all(p.returncode == 0 for p in nodes), "\n".join(o[-1500:] for o in outs)
    assert "2 process(es)" in " ".join(" ".join(outs).split())
    assert (run / "best.safetensors").exists()
    assert len(torch.load(run / "state.pt", weights_only=True)["sampler_states"]) == 2
