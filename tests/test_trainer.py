"""train(): probe schedule, records, autosave, determinism, control from another thread,
divergence vs catapults, failures."""

from __future__ import annotations

import re
import threading
import time

import numpy as np
import pytest
import torch
from waiting import wait_until

from ijr_core.config import RunConfig
from ijr_core.data import DatasetError, load_dataset
from ijr_core.run import SAMPLE_KEYS, load_run
from ijr_core.trainer import TrainingControl, _Divergence, batch_indices, probe_subset, train

TINY = RunConfig(dataset="digits", n_train=64, n_test=32, probe_size=48, width=16, steps=20,
                 probe_every=5, device="cpu", lr=0.5)
TIMING = ("wall_time", "train_time")
SCALARS = ("step", "lr", "train_loss", "train_acc", "test_loss", "test_acc", "sharpness",
           "gn_sharpness", "lambda_star_jac", "m_norm_mean", "m_norm_jac", "jac_spectral_sq_mean",
           "jac_frobenius_sq_mean", "grad_norm", "two_over_eta", "sharpness_residual",
           "gn_sharpness_residual", "grad_evals", "wall_time", "rho")


def test_train_records_every_probe():
    seen = []
    run = train(TINY, callbacks=[seen.append])
    assert run.status == "finished" and run.step == 20
    s = run.scalars
    np.testing.assert_array_equal(s["step"], [0, 5, 10, 15, 20])
    assert set(SCALARS) <= set(s)
    assert all(np.isfinite(s[k]).all() for k in SCALARS)
    np.testing.assert_array_equal(s["grad_evals"], s["step"])  # gd: one gradient per step
    np.testing.assert_allclose(s["two_over_eta"], 4.0)
    assert np.all(np.diff(s["wall_time"]) > 0)
    assert [snap.step for snap in seen] == [0, 5, 10, 15, 20]
    np.testing.assert_array_equal(run.sample_steps, s["step"])
    for k in SAMPLE_KEYS:
        assert run.samples[k].shape == (5, 48)
    ds = load_dataset(TINY)
    ids = run.sample_ids
    assert len(ids) == 48 and np.all(np.diff(ids) > 0)
    np.testing.assert_array_equal(run.sample_labels, ds.y_train.numpy()[ids])
    np.testing.assert_array_equal(run.sample_noisy, ds.noisy[ids])
    assert len(run.params) == 5 and run.params[0]["0.weight"].shape == (16, 64)
    assert not np.array_equal(run.params[0]["0.weight"], run.params[-1]["0.weight"])
    assert run.meta["device"] == "cpu" and run.meta["n_classes"] == 10
    assert run.meta["input_shape"] == [64] and run.meta["diverged_at"] is None
    assert s["train_loss"][-1] < s["train_loss"][0]


def test_last_step_is_probed_when_not_a_multiple():
    run = train(TINY.replace(steps=12))
    np.testing.assert_array_equal(run.scalars["step"], [0, 5, 10, 12])


def test_same_seed_gives_identical_scalars_and_other_seed_differs():
    cfg = TINY.replace(optimizer="sgd", batch_size=16, steps=10)
    a, b = train(cfg), train(cfg)
    for k in a.scalars:
        if k not in TIMING:
            np.testing.assert_array_equal(a.scalars[k], b.scalars[k], err_msg=k)
    for k in SAMPLE_KEYS:
        np.testing.assert_array_equal(a.samples[k], b.samples[k])
    c = train(cfg.replace(seed=1))
    assert not np.array_equal(a.scalars["train_loss"], c.scalars["train_loss"])


def test_batches_are_seeded_permutations():
    first = list(_take(batch_indices(10, 3, seed=4, device="cpu"), 6))
    again = list(_take(batch_indices(10, 3, seed=4, device="cpu"), 6))
    assert all(torch.equal(x, y) for x, y in zip(first, again, strict=True))
    epoch = torch.cat(first[:3])  # 3 full batches per epoch, remainder dropped
    assert len(set(epoch.tolist())) == 9 and all(len(b) == 3 for b in first)
    assert next(batch_indices(10, None, 0, "cpu")) is None


def _take(it, n):
    for _ in range(n):
        yield next(it)


def test_probe_subset_is_seeded_and_sorted():
    a = probe_subset(100, 30, seed=3)
    np.testing.assert_array_equal(a, probe_subset(100, 30, seed=3))
    assert len(set(a)) == 30 and np.all(np.diff(a) > 0) and a.max() < 100
    np.testing.assert_array_equal(probe_subset(10, 50, seed=0), np.arange(10))


def test_autosave_every_probe_and_final_folder_matches(tmp_path):
    seen_on_disk = []

    def look(snap):
        seen_on_disk.append((snap.step, load_run(tmp_path).status, len(load_run(tmp_path))))

    run = train(TINY, out_dir=tmp_path, callbacks=[look])
    assert seen_on_disk == [(0, "running", 1), (5, "running", 2), (10, "running", 3),
                            (15, "running", 4), (20, "running", 5)]
    loaded = load_run(tmp_path)
    assert loaded.status == "finished" and loaded.step == 20
    for k in run.scalars:
        np.testing.assert_array_equal(loaded.scalars[k], run.scalars[k])
    assert loaded.config == TINY


def test_sgd_counts_grad_evals_and_sam_costs_two():
    run = train(TINY.replace(optimizer="sam", batch_size=16, steps=10, rho=0.05))
    np.testing.assert_array_equal(run.scalars["grad_evals"], 2 * run.scalars["step"])
    np.testing.assert_allclose(run.scalars["rho"], 0.05)


# --------------------------------------------------------------------------- control


def test_pause_resume_set_lr_and_stop_from_another_thread():
    control = TrainingControl()
    cfg = TINY.replace(steps=100_000, probe_every=40)
    log = {}

    def driver():
        wait_until(lambda: control.step >= 3)
        control.pause()
        assert control.pause_requested
        wait_until(lambda: control.paused)  # the loop itself has stopped stepping
        assert control.run.status == "paused"
        log["paused_at"] = control.step
        time.sleep(0.3)
        log["after_sleep"] = control.step
        log["copy_len"] = len(control.latest())
        control.set_lr(0.125)
        control.set_rho(0.2)
        control.resume()
        wait_until(lambda: control.step >= log["paused_at"] + 90)
        control.stop()

    t = threading.Thread(target=driver)
    t.start()
    run = train(cfg, control=control)
    t.join()
    assert not control.paused and not control.pause_requested
    assert log["after_sleep"] == log["paused_at"]  # no steps while paused
    assert log["copy_len"] >= 1
    assert run.status == "stopped" and run.step < cfg.steps
    s = run.scalars
    assert s["step"][-1] == run.step  # a final probe at the stop step
    assert s["lr"][0] == 0.5 and s["lr"][-1] == 0.125
    assert s["two_over_eta"][-1] == 16.0 and s["rho"][-1] == 0.2
    assert run.meta["lr_changes"] == [[log["paused_at"], 0.125]]
    assert run.meta["stopped_at"] == run.step


def test_stop_before_first_step_and_control_validation():
    control = TrainingControl()
    control.stop()
    run = train(TINY, control=control)
    assert run.status == "stopped" and run.step == 0 and len(run) == 1
    with pytest.raises(ValueError, match="lr"):
        control.set_lr(0)
    with pytest.raises(ValueError, match="rho"):
        control.set_rho(float("nan"))
    assert TrainingControl().latest() is None


# --------------------------------------------------------------------------- divergence


def test_nonfinite_loss_is_divergence_with_records_kept(tmp_path):
    cfg = TINY.replace(activation="relu", lr=60.0, steps=50, width=128)
    run = train(cfg, out_dir=tmp_path)  # must not raise
    assert run.status == "diverged"
    at = run.meta["diverged_at"]
    assert 0 < at < 50
    assert re.search("loss became|non-finite", run.meta["diverged_reason"])
    s = run.scalars
    assert s["step"][0] == 0 and np.isfinite(s["sharpness"][0])  # the step-0 probe is kept
    assert s["step"][-1] == at
    assert not np.isfinite(s["train_loss"][-1]) or "non-finite" in run.meta["diverged_reason"]
    loaded = load_run(tmp_path)
    assert loaded.status == "diverged" and loaded.meta["diverged_at"] == at


def _recording_divergence(monkeypatch) -> list[list[float]]:
    """Every loss the divergence rule of each following train() sees, one list per run."""
    import ijr_core.trainer as trainer_mod

    runs: list[list[float]] = []

    class Recording(_Divergence):
        def __init__(self, *args):
            super().__init__(*args)
            self.seen: list[float] = []
            runs.append(self.seen)

        def check(self, loss):
            self.seen.append(float(loss))
            return super().check(loss)

    monkeypatch.setattr(trainer_mod, "_Divergence", Recording)
    return runs


def _longest_above(losses: list[float], level: float) -> int:
    longest = count = 0
    for x in losses:
        count = count + 1 if x > level else 0
        longest = max(longest, count)
    return longest


def test_catapult_is_not_divergence_but_a_sustained_blowup_is(monkeypatch):
    """tanh at η = 10 is chaotic, so the trajectory depends on the machine's floating-point
    kernels; what must hold on any machine: a run is diverged exactly when its loss stayed
    above factor × initial for `window` consecutive steps (or became non-finite), so a
    spike above the factor that comes back within the window (a catapult, SCIENCE.md) is
    not divergence, and the same spike with a window of 3 is. Over four seeds at least one
    run has such a catapult."""
    seen = _recording_divergence(monkeypatch)
    catapults = 0
    for seed in range(4):
        cfg = TINY.replace(lr=10.0, width=128, steps=150, probe_every=150, probe_size=64,
                           divergence_factor=10.0, divergence_window=50, seed=seed)
        for window in (50, 3):
            run = train(cfg.replace(divergence_window=window))
            losses = seen[-1]
            level = 10.0 * losses[0]
            sustained = _longest_above(losses, level) >= window
            blown = sustained or not np.isfinite(losses[-1])
            assert (run.status == "diverged") == blown, (seed, window, run.meta)
            if sustained:
                assert "stayed above" in run.meta["diverged_reason"]
                assert np.isfinite(run.scalars["train_loss"][-1])
            else:
                assert run.status == "finished" and len(losses) == cfg.steps
            if window == 50 and run.status == "finished" and max(losses) > level:
                catapults += 1
    assert catapults >= 1


def test_divergence_rule_on_sequences():
    d = _Divergence(factor=10.0, window=3)
    catapult = [2.3, 104.0, 50.0, 10.0, 1.0, 0.5]
    assert all(d.check(x) is None for x in catapult)
    d = _Divergence(factor=10.0, window=3)
    assert [d.check(x) is None for x in [2.0, 30.0, 30.0, 30.0]] == [True, True, True, False]
    d = _Divergence(factor=10.0, window=3)
    assert d.check(2.0) is None and d.check(float("inf")) is not None
    assert _Divergence(10.0, 3).check(float("nan")) is not None


# --------------------------------------------------------------------------- failures


def test_exception_inside_the_loop_marks_the_run_failed(tmp_path):
    def bad_callback(snap):
        if snap.step == 5:
            raise RuntimeError("callback exploded")

    run = train(TINY, out_dir=tmp_path, callbacks=[bad_callback])
    assert run.status == "failed"
    assert run.meta["error"] == "RuntimeError: callback exploded"
    assert "Traceback" in run.meta["traceback"] and run.meta["failed_at"] == 5
    assert list(run.scalars["step"]) == [0, 5]
    assert load_run(tmp_path).status == "failed"


def test_a_full_disk_fails_the_run_instead_of_raising(tmp_path, monkeypatch):
    from ijr_core.run import Run

    real_save, saves = Run.save, []

    def save(self, out_dir):
        saves.append(out_dir)
        if len(saves) > 2:  # the autosave of the third probe on
            raise OSError(28, "No space left on device")
        return real_save(self, out_dir)

    monkeypatch.setattr(Run, "save", save)
    run = train(TINY, out_dir=tmp_path)
    assert run.status == "failed" and run.meta["failed_at"] == 10
    assert "No space left on device" in run.meta["error"]
    assert "No space left on device" in run.meta["save_error"]
    assert list(run.scalars["step"]) == [0, 5, 10]
    assert load_run(tmp_path).step == 5  # the last save that worked


def test_setup_errors_are_raised():
    cfg = RunConfig(dataset="csv", data_path="/nonexistent/file.csv", device="cpu")
    with pytest.raises(DatasetError):
        train(cfg)


def test_a_paused_run_takes_a_new_lr_at_once_and_probes_it_at_that_step():
    cfg = TINY.replace(steps=10_000, probe_every=1000)
    control = TrainingControl()
    log = {}

    def driver():
        wait_until(lambda: control.step >= 7)
        control.pause()
        wait_until(lambda: control.paused)
        log["at"] = control.step
        control.set_lr(0.25)
        wait_until(lambda: control.latest().scalars["lr"][-1] == 0.25)
        log["step_after"] = control.step
        log["row"] = control.latest().scalars["step"][-1]
        control.resume()
        wait_until(lambda: control.step >= log["at"] + 5)
        control.set_lr(0.5)  # while running: probed before the next step too
        wait_until(lambda: control.latest().scalars["lr"][-1] == 0.5)
        control.stop()

    t = threading.Thread(target=driver)
    t.start()
    run = train(cfg, control=control)
    t.join()
    assert log["step_after"] == log["at"] == log["row"]  # no step taken, probed at that step
    s = run.scalars
    (at,) = np.flatnonzero(s["step"] == log["at"])
    assert s["two_over_eta"][at] == 8.0  # 2/η of the new η from the step it changed
    changes = run.meta["lr_changes"]
    assert changes[0] == [log["at"], 0.25] and changes[1][1] == 0.5
    (second,) = np.flatnonzero(s["step"] == changes[1][0])
    assert s["two_over_eta"][second] == 4.0


def test_a_live_lr_that_blows_the_model_up_ends_the_run_as_diverged():
    # η so large that training blows up after the change: the run ends "diverged" (by the
    # loss rule), never "finished", and the change stays recorded at its step
    control = TrainingControl()
    cfg = TINY.replace(steps=200, probe_every=50)

    def boost(snap):
        if snap.step == 50:
            control.set_lr(1e30)

    run = train(cfg, callbacks=[boost], control=control)
    assert run.status == "diverged" and 50 < run.meta["diverged_at"] < 200
    assert run.meta["lr_changes"] == [[50, 1e30]]
