"""Grids on a Ray cluster of three nodes on this machine (``ray.cluster_utils.Cluster``: a
head without CPUs, so every run goes to one of two one-CPU worker nodes): equality with the
in-process result, a worker node removed mid-grid, a killed driver resumed."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import psutil
import pytest
from waiting import wait_until

ray = pytest.importorskip("ray")

from ray._private import ray_constants  # noqa: E402
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
    # two runs of ~3-10 s; the node of the first run to report a probe after step 0 goes
    # (whichever worker Ray chose), with nearly all of that run's steps still to do
    cfg = BASE.replace(steps=8000, probe_every=400)
    trackers, removed = [], []
    by_id = {w.node_id: w for w in workers}

    def busy_node():
        if not trackers:
            return None
        steps = trackers[0].steps()
        busy = [node for i, node in trackers[0].running().items()
                if node in by_id and steps.get(i, 0) >= 400]
        return busy[0] if busy else None

    def remove_when_busy():
        wait_until(lambda: busy_node() is not None, timeout=120, poll=0.02)
        node = by_id[busy_node()]
        # a lost machine takes its worker processes with it; removing the node alone kills
        # the raylet, and a worker that has not noticed yet could finish and hand its run in
        raylet = node.all_processes[ray_constants.PROCESS_TYPE_RAYLET][0].process.pid
        workers_there = psutil.Process(raylet).children(recursive=True)
        c.remove_node(node, allow_graceful=False)
        for proc in workers_there:
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.kill()
        removed.append(node)

    watcher = threading.Thread(target=remove_when_busy, daemon=True)
    watcher.start()
    grid = run_grid(cfg, {"seed": [0, 1]}, out_dir=tmp_path, executor=RayExecutor(),
                    progress=trackers.append)
    watcher.join()
    assert removed, "no run was seen training on a worker node"
    assert grid.status == "finished" and all(r.status == "finished" for r in grid.runs)
    assert trackers[0].snapshot()["retries"] >= 1  # the lost run started again elsewhere
    same_runs(grid, run_grid(cfg, {"seed": [0, 1]}, executor=ThreadExecutor(2)))
    same_runs(load_grid(tmp_path), grid)
    workers[workers.index(removed[0])] = c.add_node(num_cpus=1)  # two workers again
    c.wait_for_nodes()


def _driver(argv, env) -> subprocess.Popen:
    return subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, start_new_session=True, text=True)


def test_ctrl_c_then_a_killed_driver_resume_without_redoing_finished_runs(cluster, tmp_path):
    """The CLI driver on the cluster: Ctrl-C (SIGINT) after a run has finished exits 130
    with the grid "stopped" and its finished runs loadable; the same command again is
    SIGKILLed after more runs finished; then the grid resumes and trains only the rest."""
    c, _ = cluster
    cfg = BASE.replace(steps=150, probe_every=50)
    out = tmp_path / "grid"
    argv = [sys.executable, "-m", "ijr_core", "grid", "--quiet", "--ray", c.address,
            "--out", str(out), "--set", "seed=0:5:6"]
    argv += [f"--{k}={v}" for k, v in cfg.to_dict().items() if v is not None]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}

    def wait_for(driver, n: int) -> None:
        wait_until(lambda: out.is_dir() and len(complete_runs(out)) >= n
                   or driver.poll() is not None, timeout=180, poll=0.05)

    driver = _driver(argv, env)
    try:
        wait_for(driver, 1)
        os.kill(driver.pid, signal.SIGINT)
        _, err = driver.communicate(timeout=120)
    finally:
        if driver.poll() is None:
            os.killpg(driver.pid, signal.SIGKILL)
    assert driver.returncode == 130, err[-2000:]
    assert "the same command resumes the grid" in err
    interrupted = load_grid(out)
    assert interrupted.status == "stopped"
    done = [r for r in interrupted.runs if r is not None]
    assert 1 <= len(done) < 6 and all(r.status == "finished" for r in done)

    driver = _driver(argv, env)  # the same command: resumes, and is killed mid-grid
    try:
        wait_for(driver, len(done) + 1)
    finally:
        os.killpg(driver.pid, signal.SIGKILL)
        driver.wait()
    kept = complete_runs(out)
    assert len(done) < len(kept) < 6, "the driver was killed mid-grid"
    before = {name: (out / name / "run.json").read_bytes() for name in kept.values()}
    trained = []
    grid = run_grid(cfg, {"seed": list(range(6))}, out_dir=out, executor=RayExecutor(),
                    callback=lambda i, v, r: trained.append(i))
    assert grid.status == "finished" and grid.meta["resumed"] == len(kept)
    assert len(trained) == 6 - len(kept)
    for name, data in before.items():  # finished runs were neither trained nor rewritten
        assert (out / name / "run.json").read_bytes() == data
    assert len(complete_runs(out)) == 6


def test_stop_cancels_the_rest_and_a_task_error_fails_only_its_run(cluster, tmp_path):
    from ijr_core.executors import SweepControl

    control = SweepControl()
    stopped = run_grid(BASE, {"seed": list(range(6))}, out_dir=tmp_path / "s",
                       executor=RayExecutor(), control=control,
                       callback=lambda i, v, r: control.stop())
    assert stopped.status == "stopped" and load_grid(tmp_path / "s").status == "stopped"
    kept = [r for r in stopped.runs if r is not None]
    assert 1 <= len(kept) < 6 and all(r.status == "finished" for r in kept)
    assert len(complete_runs(tmp_path / "s")) == len(kept)  # every finished run loadable
    # a run that raises inside its task (a data file missing on the node) is not retried:
    # it is counted as failed and the other runs complete
    good = tmp_path / "ok.csv"
    good.write_text("x,y,label\n" + "".join(f"{i % 7},{i % 5},{i % 2}\n" for i in range(40)))
    csv = BASE.replace(dataset="csv", data_path=str(good), n_train=30, n_test=10,
                       probe_size=30, steps=5)
    grid = run_grid(csv, {"data_path": [str(good), str(tmp_path / "missing.csv")]},
                    out_dir=tmp_path / "f", executor=RayExecutor())
    assert grid.status == "failed" and grid.runs[0].status == "finished"
    assert grid.runs[1] is None and "missing.csv" in grid.meta["errors"][1]


def test_a_run_declares_a_gpu_fraction_only_where_the_cluster_has_gpus(cluster):
    c, _ = cluster
    assert ray_tasks._resources(RayExecutor(), BASE.replace(device="auto")) == (1.0, 0.0)
    gpu_node = c.add_node(num_cpus=0, num_gpus=1)  # a GPU resource (no device is touched)
    try:
        wait_until(lambda: ray.cluster_resources().get("GPU", 0) >= 1, timeout=60)
        assert ray_tasks._resources(RayExecutor(), BASE.replace(device="auto")) == (1.0, 0.25)
        assert ray_tasks._resources(RayExecutor(gpus_per_run=0.5, cpus_per_run=2),
                                    BASE.replace(device="auto")) == (2.0, 0.5)
        assert ray_tasks._resources(RayExecutor(), BASE.replace(device="cpu")) == (1.0, 0.0)
    finally:
        c.remove_node(gpu_node)


def test_bad_axes_fail_before_any_task_or_connection(tmp_path):
    from ijr_core.config import ConfigError

    unreachable = RayExecutor(address="192.0.2.1:1")  # never contacted: validation comes first
    for axes, field in (({"lrr": [0.1]}, "lrr"), ({"lr": [0.1, -1.0]}, "lr"),
                        ({"optimizer": ["sgd", "adam"]}, "optimizer")):
        with pytest.raises(ConfigError) as info:
            run_grid(BASE, axes, out_dir=tmp_path / "g", executor=unreachable)
        assert info.value.field == field and str(info.value).startswith(f"{field}: ")
    assert not (tmp_path / "g").exists()
