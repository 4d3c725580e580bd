"""The background training worker: runs, saves, pauses, stops, changes lr, reaps orphans."""

from __future__ import annotations

import time

import numpy as np
import pytest

from app import session
from ijr_core.config import RunConfig
from ijr_core.run import load_run
from tests.waiting import wait_until


def test_run_folder_name_shows_name_dataset_and_lr():
    name = session.run_folder_name(RunConfig(name="edge-of-stability", dataset="moons", lr=1e6))
    assert "-edge-of-stability-moons-lr1e06-" in name  # not "lr1e-06": that is 1e-6
    assert "-sgd-digits-lr0.05-" in session.run_folder_name(RunConfig(optimizer="sgd", lr=0.05,
                                                                       batch_size=32))


def test_runs_dir_flag_env_and_default(monkeypatch, tmp_path):
    monkeypatch.delenv(session.RUNS_ENV, raising=False)
    session.set_runs_dir(None)
    assert str(session.runs_dir()) == "runs"
    monkeypatch.setenv(session.RUNS_ENV, str(tmp_path / "env"))
    assert session.runs_dir() == tmp_path / "env"
    session.set_runs_dir(tmp_path / "flag")
    try:
        assert session.runs_dir() == tmp_path / "flag"
    finally:
        session.set_runs_dir(None)


def test_sync_job_trains_and_saves(tiny_config, runs_dir):
    job = session.TrainingJob(tiny_config)
    run = job.run_sync()
    assert job.error is None
    assert run.status == "finished" and job.status == "finished" and job.done
    assert job.out_dir.parent == runs_dir
    saved = load_run(job.out_dir)
    assert saved.status == "finished"
    np.testing.assert_array_equal(saved.scalars["step"], [0, 4, 8, 12])
    p = job.progress()
    assert p["step"] == 12 and p["steps"] == 12 and p["fraction"] == 1.0
    assert p["steps_per_s"] > 0


def test_background_job_pause_resume_lr_change_and_stop(tiny_config, runs_dir):
    config = tiny_config.replace(steps=100_000, probe_every=5)
    job = session.TrainingJob(config).start()
    try:
        wait_until(lambda: job.control.step >= 3)
        job.pause()
        assert job.status == "paused"  # as soon as requested
        wait_until(lambda: job.control.paused)  # the loop has actually stopped stepping
        paused_at = job.control.step
        time.sleep(0.3)
        assert job.control.step == paused_at  # really paused
        job.set_lr(0.35)
        job.resume()
        wait_until(lambda: job.control.step >= paused_at + 12)
        snap = job.snapshot()
        assert snap is not None and snap.status == "running"
        wait_until(lambda: np.isclose(job.snapshot().scalars["two_over_eta"], 2 / 0.35).any())
    finally:
        job.stop()
        assert job.join(timeout=60)
    assert job.status == "stopped"
    saved = load_run(job.out_dir)
    assert saved.status == "stopped"
    assert saved.meta["lr_changes"][0][1] == pytest.approx(0.35)
    assert job.elapsed() > 0


def test_two_jobs_train_at_once_without_sharing_runs(tiny_config, runs_dir):
    a = session.TrainingJob(tiny_config.replace(lr=0.5), owner="session-a").start()
    b = session.TrainingJob(tiny_config.replace(lr=0.9), owner="session-b").start()
    assert a.join(60) and b.join(60)
    assert a.out_dir != b.out_dir
    assert load_run(a.out_dir).config.lr == 0.5
    assert load_run(b.out_dir).config.lr == 0.9
    assert a.status == b.status == "finished"


def test_orphaned_job_is_stopped(tiny_config, runs_dir, monkeypatch):
    job = session.TrainingJob(tiny_config.replace(steps=100_000), owner="gone").start()
    try:
        wait_until(lambda: job.control.step >= 1)
        monkeypatch.setattr(session, "session_alive", lambda sid: sid != "gone")
        assert job in session.reap_orphans()
        assert job.join(60)
    finally:
        job.stop()
    assert job.status == "stopped"
    assert load_run(job.out_dir).status == "stopped"


def test_session_alive_outside_streamlit_is_true():
    assert session.session_alive(None)
    assert session.session_alive("no-runtime-here")


def test_setup_error_is_reported_not_raised(tiny_config, runs_dir):
    job = session.TrainingJob(tiny_config.replace(dataset="csv", data_path="/nonexistent.csv"))
    assert job.run_sync() is None
    assert job.status == "failed"
    assert "nonexistent" in job.error


def test_diverged_run_is_reported_with_its_step(tiny_config, runs_dir):
    from app.views import status_line

    config = tiny_config.replace(activation="relu", lr=1e6, steps=40, probe_every=2)
    job = session.TrainingJob(config)
    run = job.run_sync()
    assert job.status == "diverged"
    step = run.meta["diverged_at"]
    assert isinstance(step, int) and 0 <= step <= 40
    assert f"diverged**] at step {step}" in status_line(job.status, run)
    assert load_run(job.out_dir).status == "diverged"
