"""Learning-rate sweeps: parallel == sequential, derived matrices, the sweep folder."""

from __future__ import annotations

import json
import threading
import time

import numpy as np
import pytest
from waiting import wait_until

from ijr_core.config import RunConfig
from ijr_core.run import RunFormatError
from ijr_core.sweep import (
    Sweep,
    SweepControl,
    is_sweep_folder,
    load_sweep,
    matched_loss_point,
    run_folder_name,
    sweep_lr,
)

BASE = RunConfig(dataset="moons", n_train=64, n_test=32, probe_size=64, width=16, steps=20,
                 probe_every=5, device="cpu", noise=0.2, label_noise=0.0)
LRS = [0.5, 2.0]
TIMING = ("wall_time", "train_time")


def _same_runs(a: Sweep, b: Sweep) -> None:
    for ra, rb in zip(a.runs, b.runs, strict=True):
        assert ra.status == rb.status
        for k in ra.scalars:
            if k not in TIMING:
                np.testing.assert_array_equal(ra.scalars[k], rb.scalars[k], err_msg=k)


def test_parallel_sweep_equals_sequential_and_saves_a_group_folder(tmp_path):
    done = []
    par = sweep_lr(BASE, LRS, out_dir=tmp_path / "par", workers=2,
                   callback=lambda i, lr, run: done.append((i, lr, run.status)))
    seq = sweep_lr(BASE, LRS, workers=1)
    assert sorted(done) == [(0, 0.5, "finished"), (1, 2.0, "finished")]
    assert par.meta["workers"] == 2
    _same_runs(par, seq)
    np.testing.assert_array_equal(par.lrs, LRS)
    assert [r.config.lr for r in par.runs] == LRS
    # the folder: sweep.json + one run folder per η, loadable
    assert is_sweep_folder(tmp_path / "par")
    doc = json.loads((tmp_path / "par" / "sweep.json").read_text())
    assert doc["status"] == "finished" and doc["lrs"] == LRS
    assert doc["runs"] == [run_folder_name(0, 0.5), run_folder_name(1, 2.0)]
    loaded = load_sweep(tmp_path / "par")
    _same_runs(par, loaded)
    assert loaded.config == BASE


def test_derived_quantities():
    sweep = sweep_lr(BASE, [0.5, 1.0, 4.0], workers=1)
    steps = sweep.steps
    np.testing.assert_array_equal(steps, [0, 5, 10, 15, 20])
    mat = sweep.m_norm_matrix()
    assert mat.shape == (3, 5)
    for i, run in enumerate(sweep.runs):
        np.testing.assert_array_equal(mat[i], run.scalars["m_norm_mean"])
        assert sweep.final_jac()[i] == run.scalars["jac_spectral_sq_mean"][-1]
        assert sweep.final_jac("frobenius")[i] == run.scalars["jac_frobenius_sq_mean"][-1]
        assert sweep.max_sharpness()[i] == run.scalars["sharpness"].max()
    np.testing.assert_allclose(mat[:, 0], mat[0, 0])  # same initialisation for every η
    target = float(np.max([r.scalars["train_loss"][-1] for r in sweep.runs]))
    at = sweep.at_loss(target)
    for i, run in enumerate(sweep.runs):
        first = np.flatnonzero(run.scalars["train_loss"] <= target)[0]
        assert at[i] == run.scalars["jac_spectral_sq_mean"][first]
        step, value = matched_loss_point(run, target, "m_norm_mean")
        assert (step, value) == (run.scalars["step"][first], run.scalars["m_norm_mean"][first])
        assert np.isnan(matched_loss_point(run, -1.0)).all()
    assert np.isnan(sweep.at_loss(-1.0)).all()
    with pytest.raises(ValueError, match="kind"):
        sweep.final_jac("nuclear")


def test_matrix_has_nan_after_a_run_diverged():
    cfg = BASE.replace(dataset="digits", activation="relu", width=128, steps=40, probe_every=10)
    sweep = sweep_lr(cfg, [0.1, 60.0], workers=1)
    assert sweep.statuses == ["finished", "diverged"]
    mat, steps = sweep.m_norm_matrix(), sweep.steps
    at = sweep.runs[1].meta["diverged_at"]
    assert at in steps  # the divergence row joins the step axis
    assert np.isfinite(mat[0, np.isin(steps, sweep.runs[0].scalars["step"])]).all()
    assert np.isnan(mat[1, steps >= at]).all() and np.isfinite(mat[1, 0])


def test_bad_learning_rates():
    for lrs in ([], [0.1, -1.0], [float("nan")], ["x"]):
        with pytest.raises(ValueError, match="learning rate"):
            sweep_lr(BASE, lrs, workers=1)
    with pytest.raises(ValueError, match="workers"):
        sweep_lr(BASE, [0.1], workers=0)
    with pytest.raises(TypeError, match="SweepControl"):
        sweep_lr(BASE, [0.1], workers=1, control=object())
    # never more workers than runs
    assert sweep_lr(BASE.replace(steps=1), [0.1], workers=8).meta["workers"] == 1


def test_damaged_sweep_folders(tmp_path):
    with pytest.raises(RunFormatError, match=r"sweep\.json is missing"):
        load_sweep(tmp_path)
    sweep = sweep_lr(BASE.replace(steps=5), [0.5, 1.0], out_dir=tmp_path / "s", workers=1)
    folder = tmp_path / "s"
    assert load_sweep(folder).lrs.tolist() == [0.5, 1.0]
    (folder / run_folder_name(1, 1.0) / "scalars.npz").unlink()
    with pytest.raises(RunFormatError, match=r"scalars\.npz is missing"):
        load_sweep(folder)
    sweep.save(folder)  # repairs it
    assert len(load_sweep(folder).runs) == 2
    doc = json.loads((folder / "sweep.json").read_text())
    doc["lrs"] = [0.5]
    (folder / "sweep.json").write_text(json.dumps(doc))
    with pytest.raises(RunFormatError, match="1 learning rates but 2 runs"):
        load_sweep(folder)
    (folder / "sweep.json").write_text("{")
    with pytest.raises(RunFormatError, match="not valid JSON"):
        load_sweep(folder)


def test_parallel_sweep_restores_threads_and_builds_each_model_from_its_seed():
    import torch

    before = torch.get_num_threads()
    cfgs = BASE.replace(steps=5)
    done = []
    sweep = sweep_lr(cfgs, [0.5, 1.0, 2.0, 4.0], workers=2,
                     callback=lambda i, lr, run: done.append(i))
    assert torch.get_num_threads() == before
    assert sorted(done) == [0, 1, 2, 3] and sweep.meta["workers"] == 2
    first = sweep.runs[0].params[0]
    for run in sweep.runs[1:]:  # same seed: the same initial weights in every thread
        for k, v in run.params[0].items():
            np.testing.assert_array_equal(v, first[k])


def test_setup_error_in_a_parallel_sweep_is_raised(tmp_path):
    from ijr_core.data import DatasetError

    bad = BASE.replace(dataset="csv", data_path=str(tmp_path / "missing.csv"))
    with pytest.raises(DatasetError):
        sweep_lr(bad, LRS, workers=2)


# --------------------------------------------------------------------------- stopping


def _stop_when(control, cond):
    def watch():
        wait_until(cond)
        control.stop()

    t = threading.Thread(target=watch, daemon=True)
    t.start()
    return t


def _started(folder, i, lr):
    return (folder / run_folder_name(i, lr) / "run.json").exists()


def test_stop_between_runs_starts_no_more_runs(tmp_path):
    control = SweepControl()
    lrs = [0.5, 1.0, 2.0]
    sweep = sweep_lr(BASE, lrs, out_dir=tmp_path, workers=1, control=control,
                     callback=lambda i, lr, run: control.stop())
    assert control.stopped and sweep.status == "stopped"
    assert sweep.lrs.tolist() == [0.5] and sweep.statuses == ["finished"]
    assert sweep.meta["not_started"] == [1.0, 2.0]
    assert not (tmp_path / run_folder_name(1, 1.0)).exists()
    loaded = load_sweep(tmp_path)
    assert loaded.status == "stopped" and loaded.lrs.tolist() == [0.5]
    assert loaded.meta["not_started"] == [1.0, 2.0]
    _same_runs(sweep, loaded)


def test_stop_during_an_in_process_run_keeps_what_it_recorded(tmp_path):
    control = SweepControl()
    cfg = BASE.replace(steps=1_000_000, probe_every=50)
    watcher = _stop_when(control, lambda: _started(tmp_path, 0, 0.5))
    t0 = time.monotonic()
    sweep = sweep_lr(cfg, [0.5, 1.0], out_dir=tmp_path, workers=1, control=control)
    watcher.join()
    assert time.monotonic() - t0 < 30
    (run,) = sweep.runs
    assert run.status == "stopped" and 0 < len(run) and run.step < cfg.steps
    assert run.scalars["step"][-1] == run.step  # a final probe where it stopped
    assert sweep.status == "stopped" and sweep.meta["not_started"] == [1.0]
    loaded = load_sweep(tmp_path)
    assert loaded.statuses == ["stopped"] and loaded.runs[0].step == run.step


def test_stop_a_parallel_sweep_stops_the_worker_too(tmp_path):
    control = SweepControl()
    cfg = BASE.replace(steps=1_000_000, probe_every=50)
    lrs = [0.5, 1.0, 2.0]
    watcher = _stop_when(control, lambda: _started(tmp_path, 0, 0.5) and _started(tmp_path, 1, 1.0))
    sweep = sweep_lr(cfg, lrs, out_dir=tmp_path, workers=2, control=control)
    watcher.join()
    assert sweep.lrs.tolist() == [0.5, 1.0] and sweep.statuses == ["stopped", "stopped"]
    assert all(len(r) >= 1 and r.step < cfg.steps for r in sweep.runs)  # step 0: just begun
    assert sweep.status == "stopped" and sweep.meta["not_started"] == [2.0]
    assert not (tmp_path / run_folder_name(2, 2.0)).exists()
    loaded = load_sweep(tmp_path)
    assert loaded.statuses == ["stopped", "stopped"]
    assert [r.step for r in loaded.runs] == [r.step for r in sweep.runs]


def test_stopped_before_it_starts_and_stop_is_idempotent(tmp_path):
    control = SweepControl()
    control.stop()
    control.stop()
    sweep = sweep_lr(BASE, LRS, out_dir=tmp_path, workers=1, control=control)
    assert sweep.runs == [] and sweep.status == "stopped" and sweep.meta["not_started"] == LRS
    assert load_sweep(tmp_path).runs == []
    assert sweep.m_norm_matrix().shape == (0, 0)


def test_a_running_or_killed_sweep_loads_the_runs_it_has(tmp_path):
    sweep_lr(BASE.replace(steps=5), LRS, out_dir=tmp_path, workers=1)
    doc = json.loads((tmp_path / "sweep.json").read_text())
    doc["status"] = "running"  # as a sweep killed while its second run was starting leaves it
    (tmp_path / "sweep.json").write_text(json.dumps(doc))
    (tmp_path / run_folder_name(1, 2.0) / "run.json").unlink()
    loaded = load_sweep(tmp_path)
    assert loaded.lrs.tolist() == [0.5] and loaded.meta["missing_runs"] == [run_folder_name(1, 2.0)]
    assert loaded.meta["status"] == "running"
    doc["status"] = "finished"  # a finished sweep must have every run
    (tmp_path / "sweep.json").write_text(json.dumps(doc))
    with pytest.raises(RunFormatError, match=r"run\.json is missing"):
        load_sweep(tmp_path)


def test_a_failing_callback_fails_a_parallel_sweep(tmp_path):
    def callback(i, lr, run):
        raise RuntimeError(f"callback broke on {lr}")

    with pytest.raises(RuntimeError, match="callback broke"):
        sweep_lr(BASE, LRS, out_dir=tmp_path, workers=2, callback=callback)
    assert json.loads((tmp_path / "sweep.json").read_text())["status"] == "failed"


def test_overlapping_parallel_sweeps_restore_the_thread_count():
    import torch

    before = torch.get_num_threads()
    results = []
    threads = [threading.Thread(target=lambda: results.append(
        sweep_lr(BASE.replace(steps=10), LRS, workers=2))) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 2 and torch.get_num_threads() == before


def test_interrupting_a_parallel_sweep_stops_every_run(tmp_path):
    """Ctrl-C in the calling thread stops the runs of the helper threads too; every run
    keeps what it recorded and the sweep folder says "stopped"."""
    import _thread

    cfg = BASE.replace(steps=1_000_000, probe_every=50)
    lrs = [0.5, 1.0]

    def fire():
        wait_until(lambda: _started(tmp_path, 0, 0.5) and _started(tmp_path, 1, 1.0))
        _thread.interrupt_main()

    threading.Thread(target=fire, daemon=True).start()
    with pytest.raises(KeyboardInterrupt):
        sweep_lr(cfg, lrs, out_dir=tmp_path, workers=2)
    assert not [t for t in threading.enumerate() if t.name.startswith("ijr-sweep")]
    for i, lr in enumerate(lrs):
        doc = json.loads((tmp_path / run_folder_name(i, lr) / "run.json").read_text())
        assert doc["status"] == "stopped"
    assert json.loads((tmp_path / "sweep.json").read_text())["status"] == "stopped"
