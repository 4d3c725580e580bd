"""The one background-job runtime (app/runtime.py): training runs, sweeps, grids and
optimizer comparisons share one base, one cap on jobs at once and one reaper."""

from __future__ import annotations

import pytest

from app import jobs, runtime, session
from tests.waiting import wait_until


@pytest.mark.parametrize("cls", [session.TrainingJob, jobs.SweepJob, jobs.OptimizerJob,
                                 jobs.GridJob])
def test_every_job_kind_has_the_one_base(cls):
    assert issubclass(cls, runtime.BackgroundJob)


def test_a_sweep_and_a_training_job_are_reaped_alike(runs_dir, tiny_config, monkeypatch):
    monkeypatch.setenv(runtime.MAX_JOBS_ENV, "3")
    long = tiny_config.replace(steps=1_000_000)
    train = session.TrainingJob(long, owner="gone").start()
    sweep = jobs.SweepJob(long, [0.1], runs_dir / "sw", workers=1, owner="gone").start()
    kept = session.TrainingJob(long, owner="open").start()
    started = [train, sweep, kept]
    try:
        wait_until(lambda: all(j in runtime.active_jobs() for j in started))
        wait_until(lambda: train.control.step >= 1
                   and (sweep.folders[0] / "run.json").is_file())
        monkeypatch.setattr(session, "session_alive", lambda sid: sid != "gone")
        reaped = runtime.reap_orphans()
        assert set(map(id, reaped)) == {id(train), id(sweep)}
        assert train.join(60) and sweep.join(60)
        assert kept.alive and kept in runtime.active_jobs()
    finally:
        for job in started:
            job.stop()
        for job in started:
            assert job.join(60)
    assert train.status == "stopped" and train.error is None
    assert sweep.finished and sweep.error is None
    assert runtime.active_jobs() == []


def test_the_cap_counts_every_kind(runs_dir, tiny_config, monkeypatch):
    monkeypatch.setenv(runtime.MAX_JOBS_ENV, "1")
    long = tiny_config.replace(steps=1_000_000)
    sweep = jobs.SweepJob(long, [0.1], runs_dir / "sw", workers=1, owner="a").start()
    try:
        wait_until(lambda: sweep.alive)
        train = session.TrainingJob(long, owner="b").start()
        assert train.status == "failed" and "already running 1 jobs" in train.error
        assert not train.alive and train.finished
    finally:
        sweep.stop()
        assert sweep.join(60)
    train = session.TrainingJob(long, owner="b").start()
    try:
        wait_until(lambda: train.alive)
        group = jobs.OptimizerJob({"gd": long}, runs_dir / "opt", owner="a").start()
        assert group.finished and "already running 1 jobs" in group.error
        assert not group.thread.is_alive()
    finally:
        train.stop()
        assert train.join(60)
    assert runtime.active_jobs() == []


def test_elapsed_excludes_pauses_only_for_jobs_that_pause(tiny_config, runs_dir):
    job = session.TrainingJob(tiny_config)
    job.started_at, job.ended_at = 100.0, 110.0
    job._paused_total = 4.0
    assert job.elapsed() == pytest.approx(6.0)
    sweep = jobs.SweepJob(tiny_config, [0.1], runs_dir / "sw")
    sweep.started_at, sweep.ended_at = 100.0, 110.0
    assert sweep.elapsed() == pytest.approx(10.0)


def test_every_job_kind_reports_progress_before_it_starts(tiny_config, runs_dir):
    made = [session.TrainingJob(tiny_config),
            jobs.SweepJob(tiny_config, [0.1, 0.2], runs_dir / "sw"),
            jobs.OptimizerJob({"gd": tiny_config}, runs_dir / "opt"),
            jobs.GridJob(tiny_config, {"lr": [0.1, 0.2]}, runs_dir / "grid")]
    for job in made:
        p = job.progress()
        assert p["fraction"] == 0.0 and p["elapsed"] == 0.0, type(job).__name__
        assert not job.alive and not job.finished and job.error is None
