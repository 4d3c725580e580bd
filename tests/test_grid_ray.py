"""Grids on a Ray cluster of three nodes on this machine (``ray.cluster_utils.Cluster``: a
head without CPUs, so every run goes to one of two one-CPU worker nodes): equality with the
in-process result, a worker node removed mid-grid, a killed driver resumed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from waiting import wait_until

ray = pytest.importorskip("ray")

from ray.cluster_utils import Cluster  # noqa: E402

from ijr_core import ray_tasks  # noqa: E402
from ijr_core.config import RunConfig  # noqa: E402
from ijr_core.executors import RayExecutor, ThreadExecutor  # noqa: E402
from ijr_core.grid import complete_runs, load_grid, run_grid  # noqa: E402

BASE = RunConfig(dataset="moons", n_train=64, n_test=32, probe_size=64, width=16, steps=20,
                 probe_every=5, device="cpu", noise=0.2, label_noise=0.0)
AXES = {"lr": [0.5, 2.0], "seed": [0, 1, 2]}
TIMING = ("wall_time", "train_time")
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def cluster():
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 0})
    workers = [c.add_node(num_cpus=1) for _ in range(2)]
    c.wait_for_nodes()
    ray_tasks.connect(c.address)
    ray_tasks.wait_for_cpus(2)
    yield c, workers
    ray.shutdown()
    c.shutdown()


def same_runs(a, b) -> None:
    for ra, rb in zip(a.runs, b.runs, strict=True):
        assert ra.status == rb.status and ra.step == rb.step
        for k in ra.scalars:
            if k not in TIMING:
                np.testing.assert_array_equal(ra.scalars[k], rb.scalars[k], err_msg=k)


def test_a_2x3_grid_on_the_cluster_equals_the_in_process_one(cluster, tmp_path):
    on_ray = run_grid(BASE, AXES, out_dir=tmp_path, executor=RayExecutor())
    here = run_grid(BASE, AXES, executor=ThreadExecutor(2))  # one torch thread per run
    assert on_ray.status == "finished" and on_ray.meta["executor"] == "ray"
    same_runs(on_ray, here)
    same_runs(load_grid(tmp_path), here)  # the driver wrote every folder


def test_removing_a_worker_node_mid_grid_still_completes_every_run(cluster, tmp_path):
    c, workers = cluster
    doomed = workers[0]
    cfg = BASE.replace(steps=2000, probe_every=100)  # ~2 s: still running when its node goes
    trackers = []

    def remove_when_busy():  # once a run is in progress on the doomed node
        wait_until(lambda: trackers and doomed.node_id in trackers[0].running().values(),
                   timeout=120, poll=0.05)
        c.remove_node(doomed, allow_graceful=False)

    watcher = threading.Thread(target=remove_when_busy, daemon=True)
    watcher.start()
    grid = run_grid(cfg, {"seed": [0, 1, 2]}, out_dir=tmp_path, executor=RayExecutor(),
                    progress=trackers.append)
    watcher.join()
    assert grid.status == "finished" and all(r.status == "finished" for r in grid.runs)
    assert trackers[0].snapshot()["retries"] >= 1  # the lost run started again elsewhere
    same_runs(grid, run_grid(cfg, {"seed": [0, 1, 2]}, executor=ThreadExecutor(2)))
    workers[0] = c.add_node(num_cpus=1)  # back to two workers for the other tests
    c.wait_for_nodes()


def test_a_killed_driver_resumes_without_redoing_finished_runs(cluster, tmp_path):
    c, _ = cluster
    cfg = BASE.replace(steps=150, probe_every=50)
    out = tmp_path / "grid"
    argv = [sys.executable, "-m", "ijr_core", "grid", "--quiet", "--ray", c.address,
            "--out", str(out), "--set", "seed=0:5:6"]
    argv += [f"--{k}={v}" for k, v in cfg.to_dict().items() if v is not None]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    driver = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_until(lambda: out.is_dir() and len(complete_runs(out)) >= 2
                   or driver.poll() is not None, timeout=180, poll=0.05)
    finally:
        os.killpg(driver.pid, signal.SIGKILL)
        driver.wait()
    kept = complete_runs(out)
    assert 2 <= len(kept) < 6, "the driver was killed mid-grid"
    before = {name: (out / name / "run.json").read_bytes() for name in kept.values()}
    trained = []
    grid = run_grid(cfg, {"seed": list(range(6))}, out_dir=out, executor=RayExecutor(),
                    callback=lambda i, v, r: trained.append(i))
    assert grid.status == "finished" and grid.meta["resumed"] == len(kept)
    assert len(trained) == 6 - len(kept)
    for name, data in before.items():  # finished runs were neither trained nor rewritten
        assert (out / name / "run.json").read_bytes() == data
    assert len(complete_runs(out)) == 6


def test_bad_axes_fail_before_any_task_or_connection(tmp_path):
    from ijr_core.config import ConfigError

    unreachable = RayExecutor(address="192.0.2.1:1")  # never contacted: validation comes first
    for axes, field in (({"lrr": [0.1]}, "lrr"), ({"lr": [0.1, -1.0]}, "lr"),
                        ({"optimizer": ["sgd", "adam"]}, "optimizer")):
        with pytest.raises(ConfigError) as info:
            run_grid(BASE, axes, out_dir=tmp_path / "g", executor=unreachable)
        assert info.value.field == field and str(info.value).startswith(f"{field}: ")
    assert not (tmp_path / "g").exists()
