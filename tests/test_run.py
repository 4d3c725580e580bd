"""Run: in-memory building, save/load round trip, damaged folders, atomic writes, phases,
checkpoint thinning."""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest

from ijr_core import files as files_mod
from ijr_core import run as run_mod
from ijr_core import run_format as format_mod
from ijr_core.config import RunConfig
from ijr_core.run import SAMPLE_KEYS, Run, RunFormatError, load_run, phases_from_scalars

S = 7  # samples


def _samples(rng, s=S):
    return {k: rng.random(s).astype(np.float32) for k in SAMPLE_KEYS}


def _params(rng):
    return {"0.weight": rng.standard_normal((3, 2)).astype(np.float32),
            "0.bias": rng.standard_normal(3).astype(np.float32)}


def make_run(n_probes=4, limit=200, with_params=True, seed=0) -> Run:
    rng = np.random.default_rng(seed)
    cfg = RunConfig(n_train=64, steps=100, checkpoint_limit=limit)
    run = Run(cfg, sample_ids=np.arange(S) * 3, sample_labels=np.arange(S) % 3,
              sample_noisy=np.arange(S) % 2 == 0, meta={"device": "cpu", "n_classes": 3})
    for i in range(n_probes):
        step = 10 * i
        run.append_scalars(step, train_loss=1.0 / (i + 1), sharpness=float(i), lr=0.5,
                           two_over_eta=4.0, m_norm_mean=0.1)
        run.append_checkpoint(step, _samples(rng), _params(rng) if with_params else None)
    return run


def assert_runs_equal(a: Run, b: Run) -> None:
    assert a.status == b.status and a.step == b.step
    assert a.config == b.config
    assert a.scalars.keys() == b.scalars.keys()
    for k in a.scalars:
        np.testing.assert_array_equal(a.scalars[k], b.scalars[k])
    for k in SAMPLE_KEYS:
        np.testing.assert_array_equal(a.samples[k], b.samples[k])
    np.testing.assert_array_equal(a.sample_steps, b.sample_steps)
    np.testing.assert_array_equal(a.sample_ids, b.sample_ids)
    np.testing.assert_array_equal(a.sample_labels, b.sample_labels)
    np.testing.assert_array_equal(a.sample_noisy, b.sample_noisy)
    assert len(a.params) == len(b.params)
    for pa, pb in zip(a.params, b.params, strict=True):
        assert pa.keys() == pb.keys()
        for k in pa:
            np.testing.assert_array_equal(pa[k], pb[k])


# --------------------------------------------------------------------------- building


def test_scalars_are_columnar_with_nan_for_missing_metrics():
    run = Run(RunConfig())
    run.append_scalars(0, a=1.0)
    run.append_scalars(0, b=2.0)  # same step: merged into the row
    run.append_scalars(5, a=3.0)
    s = run.scalars
    np.testing.assert_array_equal(s["step"], [0, 5])
    assert s["step"].dtype == np.int64 and s["a"].dtype == np.float64
    np.testing.assert_array_equal(s["a"], [1.0, 3.0])
    assert s["b"][0] == 2.0 and np.isnan(s["b"][1])
    assert run.step == 5 and len(run) == 2
    with pytest.raises(ValueError, match="non-decreasing"):
        run.append_scalars(3, a=1.0)


def test_checkpoint_validation():
    run = Run(RunConfig(), sample_ids=range(3), sample_labels=[0, 1, 2])
    with pytest.raises(ValueError, match="lacks per-sample array"):
        run.append_checkpoint(0, {"m_norm": np.zeros(3)})
    with pytest.raises(ValueError, match="shape"):
        run.append_checkpoint(0, {k: np.zeros(4) for k in SAMPLE_KEYS})
    with pytest.raises(ValueError, match="same length"):
        Run(RunConfig(), sample_ids=range(3), sample_labels=[0, 1])


def test_copy_is_isolated_from_later_appends():
    run = make_run(3)
    snap = run.copy()
    run.append_scalars(100, train_loss=0.0)
    rng = np.random.default_rng(1)
    run.append_checkpoint(100, _samples(rng), _params(rng))
    run.meta["x"] = 1
    assert len(snap) == 3 and len(snap.sample_steps) == 3 and "x" not in snap.meta
    assert len(run) == 4


def test_copy_while_appending_from_another_thread_is_consistent():
    run = make_run(1)
    rng = np.random.default_rng(2)
    stop = threading.Event()

    def writer():
        step = 100
        while not stop.is_set():
            run.append_scalars(step, train_loss=1.0, sharpness=1.0)
            run.append_checkpoint(step, _samples(rng), _params(rng))
            step += 1

    t = threading.Thread(target=writer)
    t.start()
    try:
        for _ in range(200):
            c = run.copy()
            n = len(c.scalars["step"])
            assert all(len(v) == n for v in c.scalars.values())
            assert c.samples["m_norm"].shape[0] == len(c.sample_steps) == len(c.params)
    finally:
        stop.set()
        t.join()


# --------------------------------------------------------------------------- round trip


def test_save_load_round_trip(tmp_path):
    run = make_run(5)
    run.set_status("finished", diverged_at=None)
    run.save(tmp_path / "r")
    assert sorted(p.name for p in (tmp_path / "r").iterdir()) == sorted(run_mod.RUN_FILES)
    loaded = load_run(tmp_path / "r")
    assert_runs_equal(run, loaded)
    assert loaded.meta["device"] == "cpu" and loaded.meta["n_classes"] == 3
    assert "created" in loaded.meta and "updated" in loaded.meta


def test_round_trip_without_params(tmp_path):
    run = make_run(3, with_params=False)
    run.save(tmp_path)
    loaded = load_run(tmp_path)
    assert loaded.params == [] and len(loaded.sample_steps) == 3
    assert_runs_equal(run, loaded)


@pytest.mark.parametrize("with_params", [True, False])
def test_from_columns_inverts_the_read_views(with_params):
    run = make_run(4, with_params=with_params)
    again = Run.from_columns(
        run.config, status=run.status, meta=run.meta, step=run.step,
        checkpoint_limit=run.checkpoint_limit, scalars=run.scalars,
        sample_steps=run.sample_steps, samples=run.samples, sample_ids=run.sample_ids,
        sample_labels=run.sample_labels, sample_noisy=run.sample_noisy, params=run.params,
    )
    assert_runs_equal(run, again)
    assert again.meta == run.meta and again.meta is not run.meta
    again.append_scalars(100, train_loss=0.0)  # still a run that grows
    assert len(again) == len(run) + 1


def test_empty_run_round_trip(tmp_path):
    run = Run(RunConfig(), sample_ids=range(4), sample_labels=[0, 1, 0, 1])
    run.save(tmp_path)
    loaded = load_run(tmp_path)
    assert len(loaded) == 0 and loaded.samples["m_norm"].shape == (0, 4)
    assert loaded.phases().shape == (0,)


def test_files_hold_no_pickles(tmp_path):
    make_run(2).save(tmp_path)
    for name in ("scalars.npz", "samples.npz", "params.npz"):
        with np.load(tmp_path / name, allow_pickle=False) as data:
            for key in data.files:
                assert data[key].dtype != object
    doc = json.loads((tmp_path / "run.json").read_text())
    assert doc["schema_version"] == run_mod.SCHEMA_VERSION
    assert doc["config"]["n_train"] == 64 and doc["status"] == "running"
    assert doc["device"] == "cpu" and doc["created"] <= doc["updated"]


# --------------------------------------------------------------------------- damaged folders


def _saved(tmp_path):
    folder = tmp_path / "run"
    make_run(3).save(folder)
    return folder


def _rewrite_npz(path, drop=None, change=None):
    with np.load(path) as data:
        arrays = {k: data[k] for k in data.files}
    if drop:
        del arrays[drop]
    if change:
        arrays.update(change)
    np.savez(path, **arrays)


DAMAGE = {
    "missing folder": (lambda f: f.rename(f.with_name("gone")), "does not exist"),
    "not a folder": (lambda f: (_rm(f), f.write_text("x")), "is not a folder"),
    "missing run.json": (lambda f: (f / "run.json").unlink(), r"run\.json is missing"),
    "bad json": (lambda f: (f / "run.json").write_text("{not json"),
                 r"run\.json is not valid JSON \(line 1"),
    "json not object": (lambda f: (f / "run.json").write_text("[1, 2]"), "JSON object"),
    "no schema": (lambda f: _edit_json(f, schema_version=None), "schema_version"),
    "future schema": (lambda f: _edit_json(f, schema_version=99), "schema_version 99"),
    "bad status": (lambda f: _edit_json(f, status="exploded"), "status 'exploded'"),
    "bad config": (lambda f: _edit_json(f, config={"lr": -1}), "invalid config.*lr"),
    "bad step": (lambda f: _edit_json(f, step="ten"), "'step' must be an integer >= 0, got 'ten'"),
    "bad checkpoint_limit": (lambda f: _edit_json(f, checkpoint_limit=1.5),
                             "'checkpoint_limit' must be an integer >= 2"),
    "unknown config field": (lambda f: _edit_json(f, config={"colour": 1}), "colour"),
    "missing scalars": (lambda f: (f / "scalars.npz").unlink(), r"scalars\.npz is missing"),
    "missing samples": (lambda f: (f / "samples.npz").unlink(), r"samples\.npz is missing"),
    "missing params": (lambda f: (f / "params.npz").unlink(), r"params\.npz is missing"),
    "scalars not npz": (lambda f: (f / "scalars.npz").write_text("hello"),
                        r"scalars\.npz is not a readable \.npz"),
    "truncated npz": (lambda f: _truncate(f / "samples.npz"), r"samples\.npz"),
    "npy not npz": (lambda f: np.save(open(f / "scalars.npz", "wb"), np.zeros(3)),
                    "single .npy array"),
    "pickled array": (lambda f: np.savez(f / "scalars.npz", step=np.array([None], dtype=object)),
                      r"scalars\.npz"),
    "no step array": (lambda f: _rewrite_npz(f / "scalars.npz", drop="step"),
                      r"scalars\.npz has no array 'step'"),
    "scalar length": (lambda f: _rewrite_npz(f / "scalars.npz", change={"sharpness": np.zeros(5)}),
                      r"'sharpness' has shape \(5,\), expected \(3,\)"),
    "missing sample array": (lambda f: _rewrite_npz(f / "samples.npz", drop="lambda_star"),
                             r"samples\.npz has no array 'lambda_star'"),
    "sample shape": (lambda f: _rewrite_npz(f / "samples.npz", change={"m_norm": np.zeros((3, 2))}),
                     r"'m_norm' has shape \(3, 2\), expected \(3, 7\)"),
    "label shape": (lambda f: _rewrite_npz(f / "samples.npz", change={"labels": np.zeros(2)}),
                    r"'labels' has shape \(2,\), expected \(7,\)"),
    "param shape": (lambda f: _rewrite_npz(f / "params.npz",
                                           change={"param:0.bias": np.zeros((2, 3))}),
                    r"'param:0.bias' has shape \(2, 3\), expected 3 checkpoints"),
}


def _rm(folder):
    for p in folder.iterdir():
        p.unlink()
    folder.rmdir()


def _edit_json(folder, **changes):
    doc = json.loads((folder / "run.json").read_text())
    for k, v in changes.items():
        if v is None:
            doc.pop(k)
        else:
            doc[k] = v
    (folder / "run.json").write_text(json.dumps(doc))


def _truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


@pytest.mark.parametrize("kind", list(DAMAGE))
def test_damaged_folder_gives_clear_error(tmp_path, kind):
    folder = _saved(tmp_path)
    damage, pattern = DAMAGE[kind]
    damage(folder)
    with pytest.raises(RunFormatError, match=pattern):
        load_run(folder)


def test_random_bytes_in_an_npz_never_suggest_unpickling(tmp_path):
    make_run().save(tmp_path / "r")
    (tmp_path / "r" / "scalars.npz").write_bytes(np.random.default_rng(0).bytes(100))
    with pytest.raises(RunFormatError, match="neither a zip archive nor a .npy array") as info:
        load_run(tmp_path / "r")
    assert "allow_pickle" not in str(info.value) and "trust" not in str(info.value)


def test_run_format_error_is_value_error():
    assert issubclass(RunFormatError, ValueError)


def test_params_one_save_ahead_of_samples_keeps_common_checkpoints(tmp_path):
    # Simulates a crash between writing params.npz and samples.npz during an autosave.
    run = make_run(3)
    run.save(tmp_path)
    old_samples = (tmp_path / "samples.npz").read_bytes()
    run.append_scalars(30, train_loss=0.1)
    run.append_checkpoint(30, _samples(np.random.default_rng(5)), _params(np.random.default_rng(5)))
    run.save(tmp_path)
    (tmp_path / "samples.npz").write_bytes(old_samples)
    loaded = load_run(tmp_path)
    np.testing.assert_array_equal(loaded.sample_steps, [0, 10, 20])
    assert len(loaded.params) == 3 and "load_warning" in loaded.meta


# --------------------------------------------------------------------------- atomic writes


def test_interrupted_save_leaves_old_files_intact(tmp_path, monkeypatch):
    old = make_run(2)
    old.save(tmp_path)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    new = make_run(4, seed=9)
    real_savez = np.savez

    def exploding_savez(f, **arrays):
        real_savez(f, **arrays)
        f.write(b"garbage")
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(files_mod.np, "savez", exploding_savez)
    with pytest.raises(OSError, match="simulated"):
        new.save(tmp_path)
    monkeypatch.undo()
    after = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    assert after == before  # no temporary files left, old files untouched
    assert_runs_equal(old, load_run(tmp_path))


def test_interrupted_json_write_keeps_previous_json(tmp_path, monkeypatch):
    run = make_run(2)
    run.save(tmp_path)
    before = (tmp_path / "run.json").read_text()

    def boom(obj, **kw):
        raise KeyboardInterrupt

    run.set_status("finished")
    monkeypatch.setattr(format_mod.json, "dumps", boom)
    with pytest.raises(KeyboardInterrupt):
        run.save(tmp_path)
    monkeypatch.undo()
    assert (tmp_path / "run.json").read_text() == before
    assert load_run(tmp_path).status == "running"


def test_atomic_write_replaces_file(tmp_path):
    path = tmp_path / "f.txt"
    run_mod.atomic_write_text(path, "one")
    run_mod.atomic_write_text(path, "two")
    assert path.read_text() == "two" and [p.name for p in tmp_path.iterdir()] == ["f.txt"]


def test_saving_fsyncs_each_folder_after_its_renames_and_a_new_folder_s_parent(
    tmp_path, monkeypatch
):
    synced = []
    monkeypatch.setattr(files_mod, "_fsync_dir", lambda folder: synced.append(folder))
    make_run(2).save(tmp_path / "new")
    assert synced[0] == tmp_path  # the new folder's entry
    assert synced[1:] == [tmp_path / "new"] * 4  # after each of the four renames
    synced.clear()
    make_run(2).save(tmp_path / "new")
    assert synced == [tmp_path / "new"] * 4


# --------------------------------------------------------------------------- phases


# The single-probe reading (phase_sustain = 1, arp_smoothing = 1) of the rule; the sustained,
# smoothed default rule has its own tests in test_phases.py.
ONE = dict(phase_sustain=1, arp_smoothing=1)


def test_phases_follow_the_definition():
    two = np.full(8, 4.0)
    h = np.array([1.0, 2.0, 3.5, 3.7, 4.1, 3.9, 4.0, 2.0])  # reaches 0.9·4 = 3.6 at index 3
    m = np.array([0.1, 0.3, 0.28, 0.25, 0.2, 0.16, 0.12, 0.5])  # peak since EoS 0.25 → ≥ 0.125
    ph = phases_from_scalars(h, two, m, 0.9, 0.5, **ONE)
    # I never returns (‖H‖ falls below the line at the end); II is re-entered when impurity
    # climbs back above half its peak
    assert list(ph) == ["I", "I", "I", "II", "II", "II", "III", "II"]


def test_phases_count_the_peak_from_the_edge_of_stability_and_respect_fractions():
    two = np.full(4, 4.0)
    h = np.array([1.0, 4.0, 4.0, 4.0])
    m = np.array([0.4, 0.1, 0.1, 0.04])  # peak since the EoS is 0.1, not the earlier 0.4
    assert list(phases_from_scalars(h, two, m, 0.9, 0.5, **ONE)) == ["I", "II", "II", "III"]
    assert list(phases_from_scalars(h, two, m, 0.9, 0.3, **ONE)) == ["I", "II", "II", "II"]
    assert list(phases_from_scalars(h, two, m, 1.5, 0.5, **ONE)) == ["I"] * 4
    # a peak that rises after the EoS is the new reference
    m = np.array([0.4, 0.1, 0.3, 0.14])
    assert list(phases_from_scalars(h, two, m, 0.9, 0.5, **ONE)) == ["I", "II", "II", "III"]


def test_phases_for_two_classes_do_not_skip_the_arp():
    # K = 2: ⟨‖M‖⟩ starts at its maximum 1/2 (uniform predictions) and has more than
    # halved before the EoS (two-moons: 0.50 → 0.25 by step 175); counted from step 0
    # the ARP would be skipped (I → III).
    two = np.full(9, 6.67)
    h = np.array([1.9, 1.8, 2.8, 5.2, 6.6, 7.6, 6.9, 7.0, 6.8])
    m = np.array([0.50, 0.28, 0.275, 0.26, 0.246, 0.24, 0.20, 0.13, 0.11])
    ph = phases_from_scalars(h, two, m, 0.9, 0.5, **ONE)
    assert list(ph) == ["I"] * 4 + ["II"] * 4 + ["III"]  # III once below 0.5 · 0.246


def test_phases_for_ten_classes_follow_the_inverted_u():
    # K = 10 (SCIENCE.md's digits setting): ⟨‖M‖⟩ ≈ 1/K at initialisation, peaks before
    # the EoS, falls as the fit becomes pure; the EoS preset measured here.
    two = np.full(11, 4.0)
    h = np.array([0.67, 1.2, 1.7, 2.4, 3.3, 4.6, 6.5, 5.8, 5.4, 4.4, 3.6])
    m = np.array([0.120, 0.252, 0.243, 0.238, 0.231, 0.221, 0.203, 0.150, 0.121, 0.093, 0.068])
    ph = phases_from_scalars(h, two, m, 0.9, 0.5, **ONE)
    assert list(ph) == ["I"] * 5 + ["II"] * 4 + ["III"] * 2  # III below 0.5 · 0.221


def test_phases_use_two_over_eta_per_step_and_carry_over_nan_rows():
    h = np.array([1.0, np.nan, 1.9, 1.9])
    two = np.array([4.0, np.nan, 4.0, 2.0])  # lr raised mid-run: 2/η drops to 2
    m = np.array([0.2, np.nan, 0.2, 0.2])
    assert list(phases_from_scalars(h, two, m, 0.9, 0.5, **ONE)) == ["I", "I", "I", "II"]


def test_run_phases_and_spans_use_config_thresholds():
    cfg = RunConfig(eos_fraction=0.5, arp_fraction=0.5, **ONE)
    run = Run(cfg)
    rows = [(0, 1.0, 0.2), (10, 2.5, 0.3), (20, 4.0, 0.2), (30, 4.0, 0.1), (40, 4.0, 0.05)]
    for step, h, m in rows:
        run.append_scalars(step, sharpness=h, two_over_eta=4.0, m_norm_mean=m)
    assert list(run.phases()) == ["I", "II", "II", "III", "III"]
    assert run.phase_spans() == [("I", 0, 10), ("II", 10, 30), ("III", 30, 40)]
    # reaching the EoS at step 20 (peak 0.2 from there), 0.1 is not below 0.5 · 0.2
    assert list(run.phases(eos_fraction=0.95)) == ["I", "I", "II", "II", "III"]


# --------------------------------------------------------------------------- thinning


def test_checkpoint_thinning_keeps_first_last_and_bounds_memory():
    run = make_run(0, limit=5)
    rng = np.random.default_rng(0)
    stored = {}
    for i in range(40):
        samples, params = _samples(rng), _params(rng)
        stored[i * 10] = (samples, params)
        run.append_checkpoint(i * 10, samples, params)
        assert len(run.sample_steps) <= 5
        assert run.sample_steps[0] == 0 and run.sample_steps[-1] == i * 10
    steps = run.sample_steps
    assert np.all(np.diff(steps) > 0)
    assert len(run.params) == len(steps) == run.samples["m_norm"].shape[0]
    for j, step in enumerate(steps):  # rows stay aligned with their steps
        np.testing.assert_array_equal(run.samples["m_norm"][j], stored[step][0]["m_norm"])
        np.testing.assert_array_equal(run.params[j]["0.bias"], stored[step][1]["0.bias"])


def test_thinning_survives_round_trip(tmp_path):
    run = make_run(12, limit=4)
    assert len(run.sample_steps) <= 4 and len(run) == 12  # scalars are never thinned
    run.save(tmp_path)
    assert_runs_equal(run, load_run(tmp_path))


def test_append_snapshot_records_scalars_samples_and_params():
    from ijr_core.probe import Snapshot

    rng = np.random.default_rng(3)
    run = Run(RunConfig(), sample_ids=range(S), sample_labels=[0] * S)
    snap = Snapshot(step=4, scalars={"sharpness": 2.0}, samples=_samples(rng),
                    params=_params(rng))
    run.append_snapshot(snap)
    assert run.scalars["sharpness"].tolist() == [2.0] and run.sample_steps.tolist() == [4]
    np.testing.assert_array_equal(run.samples["p_max"][0], snap.samples["p_max"])
    np.testing.assert_array_equal(run.params[0]["0.weight"], snap.params["0.weight"])
    with pytest.raises(ValueError, match="read-only"):
        run.scalars["sharpness"][0] = 1.0  # cached arrays are shared with copies
