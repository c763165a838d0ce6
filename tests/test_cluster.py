"""Restoring on a Dask cluster: many files, one huge plane, faults (a quick LocalCluster; not timed)."""

import os
import sys

import numpy as np
import pytest
from typer.testing import CliRunner

from mdeblur_cli.cli import app

pytest.importorskip("distributed")
runner = CliRunner()


def _images(folder, n=6, side=96):
    import cv2

    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(n):
        cv2.imwrite(str(folder / f"i{i}.png"), (rng.random((side, side, 3)) * 255).astype(np.uint8))
    return folder


def test_without_dask_cluster_names_the_extra(tmp_path, tiny_weights, monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed raises ImportError
    _images(tmp_path / "in", 1)
    res = runner.invoke(app, ["restore", str(tmp_path / "in"), "--out-dir", str(tmp_path / "o"), "--weights",
                              str(tiny_weights), "--cluster", "local"])
    assert res.exit_code == 2 and "mdeblur[distributed]" in res.output and not (tmp_path / "o").exists()
    res = runner.invoke(app, ["restore", str(tmp_path / "in"), "--out-dir", str(tmp_path / "o"), "--workers", "2"])
    assert res.exit_code == 2 and "--cluster local" in res.output


def test_an_unreachable_scheduler_is_one_line_and_exit_2(tmp_path, tiny_weights, monkeypatch):
    import mdeblur_cli.scale.cluster as cluster

    monkeypatch.setattr(cluster, "CONNECT_TIMEOUT_S", 2)
    _images(tmp_path / "in", 1)
    res = runner.invoke(app, ["restore", str(tmp_path / "in"), "--out-dir", str(tmp_path / "o"), "--weights",
                              str(tiny_weights), "--cluster", "tcp://127.0.0.1:9"])
    assert res.exit_code == 2 and "tcp://127.0.0.1:9" in res.output and "cannot reach" in res.output


def test_many_files_on_a_local_cluster_load_the_model_once_per_worker(tmp_path, tiny_weights):
    from mdeblur_cli.scale import cluster, workers
    from mdeblur_cli.scale.job import RestoreJob

    src = _images(tmp_path / "in", 8)
    (src / "bad.png").write_text("not an image")
    plan = [(p, tmp_path / "o" / f"{p.stem}_x2.png") for p in sorted(src.iterdir())]
    (tmp_path / "o").mkdir()
    client = cluster.connect("local", workers=2, threads=1)
    try:
        recs = cluster.restore_many(client, RestoreJob(inputs=[], weights=str(tiny_weights)), plan)
        loads = client.run(workers.loads_in_this_process)
    finally:
        cluster.close(client)
    errors = [r for r in recs if r.get("error")]
    assert len(errors) == 1 and "bad.png" in errors[0]["error"]
    assert all((tmp_path / "o" / f"i{i}_x2.png").exists() for i in range(8))
    assert all(count <= 1 for _, count in loads.values()), loads  # one load per worker process, not per task


def test_a_killed_worker_changes_nothing_in_the_outputs(tmp_path, tiny_weights):
    """Kill one of two worker processes mid-batch: every output is written, and equal to an undisturbed run's."""
    from distributed import wait

    from mdeblur_cli.scale import cluster
    from mdeblur_cli.scale.job import RestoreJob

    src = _images(tmp_path / "in", 12, side=160)
    job = RestoreJob(inputs=[], weights=str(tiny_weights))
    fields = {k: (str(v) if hasattr(v, "__fspath__") else v) for k, v in vars(job).items()}
    outs = {}
    for run, kill in (("calm", False), ("killed", True)):
        folder = tmp_path / run
        folder.mkdir()
        client = cluster.connect("local", workers=2, threads=1)
        try:
            futures = [client.submit(cluster.restore_one, str(p), str(folder / f"{p.stem}.png"), fields, pure=False)
                       for p in sorted(src.iterdir())]
            if kill:
                wait(futures[:1])
                os.kill(next(iter(client.run(os.getpid).values())), 9)  # SIGKILL: no clean-up, as a crash
                assert sum(f.done() for f in futures) < len(futures)  # killed mid-job
            results = client.gather(futures)
        finally:
            cluster.close(client)
        assert not [r for r in results if r.get("error")]
        outs[run] = {p.name: p.read_bytes() for p in sorted(folder.iterdir())}
        assert not [p for p in folder.iterdir() if p.name.startswith(".mdeblur-")]  # no temporary left behind
    assert outs["calm"] == outs["killed"] and len(outs["calm"]) == 12


def test_one_huge_plane_over_the_cluster_equals_the_in_process_restore(tmp_path, tiny_weights):
    """A 16-bit OME-Zarr plane, windows and chunks spread over workers, against `restore` in this process."""
    import zarr
    from distributed import Client, LocalCluster

    from mdeblur_cli.formats.series import Meta, Series
    from mdeblur_cli.formats.stacks import write_series
    from mdeblur_cli.restore.arrays import restore_array
    from mdeblur_cli.scale import plane
    from mdeblur_cli.weights import load_model

    rng = np.random.default_rng(1)
    img = (rng.random((300, 420)) * 4000 + 50).astype(np.uint16)
    src, dst = tmp_path / "p.ome.zarr", tmp_path / "o.ome.zarr"
    meta = Meta(kind="ome", ome={"Pixels": {"PhysicalSizeX": 0.5, "PhysicalSizeY": 0.5}})
    write_series(src, [Series(img, "YX", meta)])
    assert plane.huge_plane_job(src, dst)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None) as lc, \
            Client(lc) as client:
        old = plane.CHUNK
        plane.CHUNK = 256  # several chunks, each written by its own task
        try:
            info = plane.restore_plane_distributed(client, src, dst, str(tiny_weights), 96, "auto", None)
        finally:
            plane.CHUNK = old
    assert info["windows"] > 4 and info["chunks"] > 4
    got = np.asarray(zarr.open_group(str(dst), mode="r")["0"][...])
    want = restore_array(img, load_model(tiny_weights), tile=96)
    assert got.shape == want.shape == (600, 840)
    assert np.abs(got.astype(np.int64) - want.astype(np.int64)).max() <= 1  # float rounding, then integer counts
    assert np.mean(got != want) < 1e-3
    scale = dict(zarr.open_group(str(dst), mode="r").attrs)["multiscales"][0]["datasets"][0]
    assert scale["coordinateTransformations"][0]["scale"] == [0.25, 0.25]


def test_a_worker_on_another_version_is_one_clear_error(monkeypatch):
    from distributed import Client, LocalCluster

    from mdeblur_cli.errors import MdeblurError
    from mdeblur_cli.scale import cluster

    with LocalCluster(n_workers=1, processes=False, dashboard_address=None) as lc, Client(lc) as client:
        cluster.check_workers(client, "test")  # the same version: fine
        monkeypatch.setattr(cluster, "_worker_version", lambda: "0.0.0-other")
        with pytest.raises(MdeblurError, match="runs mdeblur 0.0.0-other"):
            cluster.check_workers(client, "test")
        monkeypatch.setattr(cluster, "_worker_version", lambda: None)
        with pytest.raises(MdeblurError, match="cannot import mdeblur"):
            cluster.check_workers(client, "test")


def test_losing_every_worker_is_a_clear_error_not_a_hang(tmp_path, tiny_weights, monkeypatch):
    from mdeblur_cli.errors import MdeblurError
    from mdeblur_cli.scale import cluster, workers
    from mdeblur_cli.scale.job import RestoreJob

    monkeypatch.setattr(workers, "NO_WORKERS_S", 3)
    src = _images(tmp_path / "in", 40, side=256)
    (tmp_path / "o").mkdir()
    plan = [(p, tmp_path / "o" / p.name) for p in sorted(src.iterdir())]
    client = cluster.connect("local", workers=1, threads=1)
    finished = []

    def retire_after_first(rec):
        finished.append(rec)
        if len(finished) == 1:
            client.cluster.scale(0)  # every worker gone, none to come back

    try:
        with pytest.raises(MdeblurError, match="no workers for 3 s"):
            cluster.restore_many(client, RestoreJob(inputs=[], weights=str(tiny_weights)), plan, on_done=retire_after_first)
    finally:
        cluster.close(client)
    assert 1 <= len(list((tmp_path / "o").iterdir())) < 40  # what finished is kept


def test_cluster_addresses_that_are_neither_local_nor_an_address_are_refused(tmp_path):
    from mdeblur_cli.errors import MdeblurError
    from mdeblur_cli.scale import cluster

    with pytest.raises(MdeblurError, match="give 'local'"):
        cluster.connect("locl")


def test_both_kinds_of_work_through_the_cli_on_cluster_local(tmp_path, tiny_weights):
    """`mdeblur restore --cluster local`: a folder file by file, and one 16-bit OME-Zarr plane over the workers."""
    import zarr

    from mdeblur_cli.formats.series import Meta, Series
    from mdeblur_cli.formats.stacks import write_series

    src = _images(tmp_path / "in", 3)
    res = runner.invoke(app, ["restore", str(src), "--out-dir", str(tmp_path / "o"), "--weights", str(tiny_weights),
                              "--cluster", "local", "--workers", "2"])
    assert res.exit_code == 0, res.output
    assert "done on local (2 workers): 3 restored, 0 failed" in " ".join(res.output.split())
    img = (np.random.default_rng(2).random((200, 240)) * 3000).astype(np.uint16)
    write_series(tmp_path / "p.ome.zarr", [Series(img, "YX", Meta(kind="ome", ome={}))])
    res = runner.invoke(app, ["restore", str(tmp_path / "p.ome.zarr"), "-o", str(tmp_path / "q.ome.zarr"),
                              "--weights", str(tiny_weights), "--cluster", "local", "--workers", "2", "--tile", "64"])
    assert res.exit_code == 0 and "one plane over the cluster" in res.output, res.output
    assert zarr.open_group(str(tmp_path / "q.ome.zarr"), mode="r")["0"].shape == (400, 480)
