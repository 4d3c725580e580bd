"""Small app helpers: selection events, status lines, the run store, parameter-based views."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from app import maps, runs_store
from app.session import TrainingJob
from app.views import blowup_step, picked, picked_sample, status_line
from ijr_core.curvature import m_norm
from ijr_core.run import Run, RunFormatError


def test_picked_sample_reads_the_pick_selection():
    assert picked_sample({"selection": {"pick": [{"sample": 42, "label": 3}]}}) == 42
    assert picked_sample({"selection": {"pick": []}}) is None
    assert picked_sample({"selection": {}}) is None
    assert picked_sample(None) is None


def test_picked_reads_the_scrubbers_position():
    state = {"selection": {"at": [{"checkpoint": 7}], "pick": []}}
    assert picked(state, "at", "checkpoint") == 7
    assert picked(state, "pick", "sample") is None
    assert picked({"selection": {"at": [{"checkpoint": "x"}]}}, "at", "checkpoint") is None
    assert picked({"selection": {"at": [{}]}}, "at", "checkpoint") is None


def test_status_line_names_the_step_of_divergence():
    run = Run(None, status="diverged", meta={"diverged_at": 17, "diverged_reason": "NaN loss"})
    line = status_line("diverged", run)
    assert "diverged" in line and "17" in line and "NaN loss" in line
    assert "finished" in status_line("finished", Run(None))
    failed = status_line("failed", Run(None, meta={"error": "boom"}))
    assert "boom" in failed


def test_blowup_step_is_where_the_loss_leaves_its_scale():
    def run_with(loss):
        return SimpleNamespace(scalars={"step": np.arange(len(loss)) * 25.0,
                                        "train_loss": np.asarray(loss, dtype=float)})

    assert blowup_step(run_with([2.3, 1.0, 0.5])) is None
    assert blowup_step(run_with([2.3, 1.0, 3e6, 2e6])) == 50
    assert blowup_step(run_with([2.3, float("inf")])) == 25
    assert blowup_step(run_with([])) is None
    # NaN is a row logged between probes (RunWriter.log), not a blow-up ...
    nan = float("nan")
    assert blowup_step(run_with([2.3, nan, 2.0])) is None
    assert blowup_step(run_with([nan, 2.3, 1e4])) == 50  # ... nor a missing first value
    # ... except in the last row of a diverged run
    diverged = run_with([2.3, 2.0, nan])
    diverged.status = "diverged"
    assert blowup_step(diverged) == 50


def test_store_lists_labels_and_rejects_a_damaged_folder(tmp_path):
    good = tmp_path / "b-good"
    Run(None, status="finished").save(good)
    bad = tmp_path / "a-bad"
    bad.mkdir()
    (bad / "run.json").write_text("{not json")
    assert runs_store.list_runs(tmp_path) == [good, bad]  # newest (by name) first
    assert "damaged: run.json is not valid JSON" in runs_store.run_label(bad)
    with pytest.raises(RunFormatError):
        runs_store.load_cached(bad)
    assert runs_store.load_cached(good).status == "finished"
    assert runs_store.list_runs(tmp_path / "missing") == []


def test_demo_runs_load_and_are_small():
    demos = runs_store.demo_runs()
    assert len(demos) >= 2
    total = sum(f.stat().st_size for d in demos for f in d.iterdir())
    assert total < 10e6
    for folder in demos:
        run = runs_store.load_cached(folder)
        assert run.status == "finished"
        assert len(run.sample_steps) >= 10 and len(run.params) == len(run.sample_steps)


def test_decision_grid_recomputes_the_model_from_a_snapshot(tiny_config, runs_dir):
    run = TrainingJob(tiny_config).run_sync()
    assert run.meta["is_2d"]
    last = len(run.sample_steps) - 1
    grid, points = maps.decision_grid(run, last, resolution=20)
    assert grid["m"].shape == grid["pred"].shape == (20, 20)
    assert np.all((grid["m"] >= 0) & (grid["m"] <= 0.5 + 1e-9))
    assert len(points["x"]) == tiny_config.n_train
    # the rebuilt model reproduces the recorded per-sample ‖M‖ at that checkpoint
    model = maps.model_at(run, last)
    X = maps.dataset_of(run).X_train[np.asarray(run.sample_ids)]
    m = m_norm(maps.probabilities(model, X)).numpy()
    np.testing.assert_allclose(m, run.samples["m_norm"][last], atol=1e-4)
    pred = maps.predictions_at(run, last)
    np.testing.assert_array_equal(pred == run.sample_labels, run.samples["correct"][last] > 0.5)


def test_thumbnails_undo_the_standardisation():
    """Regression: digits thumbnails were min–max scaled standardised pixels, so a rarely
    inked pixel (tiny σ) outshone the digit and many thumbnails came out black."""
    import io
    from types import SimpleNamespace

    from PIL import Image

    from app import maps
    from ijr_core.config import RunConfig

    cfg = RunConfig(dataset="digits", n_train=40, n_test=10, probe_size=40, label_noise=0.0)
    raw = cfg.replace(standardize=False)

    def pixels(config, sample):
        png = maps.thumbnail_png(SimpleNamespace(config=config), sample, scale=1)
        return np.asarray(Image.open(io.BytesIO(png)), dtype=int)

    for sample in range(5):
        np.testing.assert_allclose(pixels(cfg, sample), pixels(raw, sample), atol=1)
