"""Unit tests of app/compare_charts.py: the reductions against brute-force oracles and the
chart specs (layers, encodings, legend binding, ARP outline)."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest

from app import compare_charts as cc
from app.synthetic import synthetic_run


@pytest.fixture(scope="module")
def runs():
    return {
        "a": synthetic_run(n_samples=30, n_checkpoints=40, lr=0.5, seed=0),
        "b": synthetic_run(n_samples=30, n_checkpoints=40, lr=0.1, seed=1),
    }


def _seeded(seed: int, lr: float = 0.5):
    run = synthetic_run(n_samples=10, n_checkpoints=20, lr=lr, seed=seed)
    run.config = run.config.replace(seed=seed)
    return run


# --------------------------------------------------------------------------- reductions


def test_envelope_keeps_spikes_and_end_points():
    rng = np.random.default_rng(0)
    y = rng.normal(size=10_000)
    y[1234], y[8765] = 50.0, -40.0  # a catapult spike and a dip
    idx = cc.envelope_indices(y, 200)
    assert len(idx) <= 200
    assert idx[0] == 0 and idx[-1] == len(y) - 1
    assert np.all(np.diff(idx) > 0)
    assert 1234 in idx and 8765 in idx
    # every bucket's extremes survive: the envelope's max/min equal the series'
    assert y[idx].max() == y.max() and y[idx].min() == y.min()


def test_envelope_short_series_unchanged_and_nan_safe():
    assert list(cc.envelope_indices(np.arange(5.0), 10)) == [0, 1, 2, 3, 4]
    y = np.linspace(0, 1, 1000)
    y[10:500] = np.nan
    idx = cc.envelope_indices(y, 50)
    assert np.isfinite(y[idx[1:-1]]).all()


def test_ema_debiased_matches_the_definition():
    y = np.array([3.0, np.nan, 1.0, 4.0, 1.0, 5.0])
    w = 0.7
    out = cc.ema_debiased(y, w)
    s, t, want = 0.0, 0, []
    for v in y[np.isfinite(y)]:
        t += 1
        s = w * s + (1 - w) * v
        want.append(s / (1 - w**t))
    assert np.isnan(out[1])
    np.testing.assert_allclose(out[np.isfinite(y)], want)
    assert out[0] == 3.0  # debiased: the first value is not pulled towards 0
    np.testing.assert_allclose(cc.ema_debiased(np.full(7, 2.5), 0.9), 2.5)
    np.testing.assert_array_equal(cc.ema_debiased(y, 0.0)[np.isfinite(y)], y[np.isfinite(y)])
    with pytest.raises(ValueError):
        cc.ema_debiased(y, 1.0)


def test_time_axis_sums_eta_over_steps():
    steps = np.array([0, 10, 20, 30])
    np.testing.assert_allclose(cc.time_axis(steps, np.full(4, 0.5), 0.5), [0, 5, 10, 15])
    # η changes from 0.5 to 0.1 at the probe of step 20: time grows 10·0.1 after it
    np.testing.assert_allclose(
        cc.time_axis(steps, np.array([0.5, 0.5, 0.1, 0.1]), 0.5), [0, 5, 10, 11]
    )
    np.testing.assert_allclose(cc.time_axis(steps, None, 2.0), [0, 20, 40, 60])


def test_seed_groups_and_band_is_mean_pm_std():
    runs = {"s0": _seeded(0), "s1": _seeded(1), "s2": _seeded(2), "other": _seeded(0, lr=0.1)}
    groups = cc.seed_groups(runs)
    assert groups == {"s0 (3 seeds)": ["s0", "s1", "s2"], "other": ["other"]}
    frame = cc.overlay_frame(runs, "m_norm_mean", group_seeds=True, max_points=10_000)
    band = frame[(frame["kind"] == "band") & (frame["run"] == "s0 (3 seeds)")]
    stack = np.vstack([runs[k].scalars["m_norm_mean"] for k in ("s0", "s1", "s2")])
    np.testing.assert_allclose(band["value"], stack.mean(0))
    np.testing.assert_allclose(band["hi"] - band["value"], stack.std(0), atol=1e-12)
    assert set(frame[frame["run"] == "other"]["kind"]) == {"raw"}


# --------------------------------------------------------------------------- overlay spec


def test_overlay_chart_spec(runs):
    chart = cc.overlay_chart(runs, "sharpness", "time", smoothing=0.5)
    spec = chart.to_dict(validate=True)
    params = spec.get("params", []) + [p for lay in spec["layer"] for p in lay.get("params", [])]
    assert any(p["name"] == "legend_pick" and p.get("bind") == "legend" for p in params)
    kinds = [json.dumps(layer.get("transform", [])) for layer in spec["layer"]]
    for kind in ("raw", "smooth", "eta"):
        assert any(f"'{kind}'" in k or f'\\"{kind}\\"' in k for k in kinds), kind
    raw = spec["layer"][0]
    assert raw["encoding"]["color"]["field"] == "run"
    assert "condition" in raw["encoding"]["opacity"]  # fades the runs not picked
    assert raw["encoding"]["x"]["title"] == cc.X_AXES["time"]
    data = chart.data
    eta = data[data["kind"] == "eta"]
    assert set(np.round(eta["value"], 6)) == {4.0, 20.0}  # each run's own 2/η
    assert set(data["run"]) == {"a", "b"}


def test_overlay_downsamples_long_runs():
    long = synthetic_run(n_samples=5, n_checkpoints=2000, steps=20_000)
    data = cc.overlay_frame({"long": long}, "sharpness", max_points=300)
    assert (data["kind"] == "raw").sum() <= 300
    assert data[data["kind"] == "raw"]["x"].max() == 20_000


def test_config_diff_shows_only_differing_fields(runs):
    diff = cc.config_diff(runs)
    assert list(diff.columns) == ["lr"]
    assert list(diff["lr"]) == ["0.5", "0.1"]
    final = cc.final_metrics(runs)
    assert list(final.index) == ["a", "b"]
    assert final.loc["a", "2/η"] == pytest.approx(4.0)


# --------------------------------------------------------------------------- sweep charts


def _sweep():
    lrs = [0.5, 0.1, 1.0]
    runs = []
    for lr in lrs:
        run = synthetic_run(n_samples=10, n_checkpoints=30, lr=lr)
        runs.append(run)
    return SimpleNamespace(lrs=np.array(lrs), runs=runs)


def test_sweep_heatmap_rows_cells_and_arp_outline(monkeypatch):
    sweep = _sweep()
    spans = [("I", 0, 100), ("II", 100, 300), ("III", 300, 600)]
    for run in sweep.runs:
        monkeypatch.setattr(run, "phase_spans", lambda s=spans: s)
    chart = cc.sweep_heatmap_chart(sweep)
    spec = chart.to_dict(validate=True)
    data = chart.data
    cells = data[data["kind"] == "cell"]
    assert len(cells) == 3 * 30
    assert set(cells["eta"]) == {"0.5", "0.1", "1"}
    arp = data[data["kind"] == "arp"]
    assert list(arp["step"]) == [100.0] * 3 and list(arp["step_end"]) == [300.0] * 3
    outline = spec["layer"][1]
    assert outline["mark"]["stroke"] == "black" and outline["mark"]["fill"] is None
    assert spec["layer"][0]["encoding"]["y"]["sort"] == ["1", "0.5", "0.1"]  # largest on top
    # each cell's value is that run's ⟨‖M‖⟩ at that step
    row = cells[cells["eta"] == "0.1"]
    np.testing.assert_allclose(row["value"], sweep.runs[1].scalars["m_norm_mean"])


def test_final_jac_and_max_sharpness_charts():
    sweep = _sweep()
    frame = cc.sweep_final_frame(sweep)
    np.testing.assert_allclose(frame["two_over_eta"], [4.0, 20.0, 2.0])
    np.testing.assert_allclose(
        frame["max_sharpness"], [np.nanmax(r.scalars["sharpness"]) for r in sweep.runs]
    )
    np.testing.assert_allclose(
        frame["final_jac"], [r.scalars["jac_spectral_sq_mean"][-1] for r in sweep.runs]
    )
    jac = cc.final_jac_chart(sweep).to_dict(validate=True)
    target = 1.5
    matched = cc.sweep_final_frame(sweep, matched_loss=target)
    for i, run in enumerate(sweep.runs):
        hit = int(np.argmax(run.scalars["train_loss"] <= target))  # first probe at the level
        assert matched["step_at_loss"][i] == run.scalars["step"][hit]
        assert matched["jac_at_loss"][i] == run.scalars["jac_spectral_sq_mean"][hit]
    never = cc.sweep_final_frame(sweep, matched_loss=1e-9)
    assert never["jac_at_loss"].isna().all()
    chart = cc.final_jac_chart(sweep, matched_loss=target)
    assert (chart.data["series"] == "⟨‖J‖²⟩ at train loss ≤ 1.5").sum() == 3
    assert jac["layer"][0]["encoding"]["x"]["scale"]["type"] == "log"
    # whole decades around a 0.3–1.5 sweep left most of the plot empty
    assert jac["layer"][0]["encoding"]["x"]["scale"]["nice"] is False
    assert set(matched.columns) == set(cc.SWEEP_COLUMNS)  # every column has a heading
    hmax = cc.max_sharpness_chart(sweep)
    spec = hmax.to_dict(validate=True)
    diag = spec["layer"][0]
    assert diag["mark"]["type"] == "line" and diag["mark"]["strokeDash"] == [5, 4]
    assert spec["layer"][1]["encoding"]["x"]["field"] == "two_over_eta"


def test_both_sweep_scatter_charts_draw_one_shared_final_frame():
    """A page builds the per-η frame once (with the matched loss, for its table) and hands
    it to both scatter charts: each draws what it draws from the sweep itself."""
    sweep = _sweep()
    final = cc.sweep_final_frame(sweep, matched_loss=1.5)
    shared = cc.final_jac_chart(sweep, 1.5, final=final).to_dict()
    assert shared == cc.final_jac_chart(sweep, 1.5).to_dict()
    shared = cc.max_sharpness_chart(sweep, final=final).to_dict()
    assert shared == cc.max_sharpness_chart(sweep).to_dict()


def test_optimizer_table_columns():
    runs = {m: synthetic_run(n_samples=10, n_checkpoints=10) for m in ("gd", "sam")}
    for m, run in runs.items():
        run.config = run.config.replace(optimizer=m, batch_size=None if m == "gd" else 8)
        run.append_scalars(int(run.step), wall_time=3.0)
    table = cc.optimizer_table(runs)
    assert list(table.columns) == [
        "optimizer",
        "batch",
        "test acc",
        "final ⟨‖J‖²⟩",
        "final ‖H‖",
        "wall time (s)",
        "status",
    ]
    assert list(table["batch"]) == ["full", "8"]
    assert list(table["wall time (s)"]) == [3.0, 3.0]
    assert table.loc["sam", "test acc"] == pytest.approx(runs["sam"].last("test_acc"))


def test_optimizer_summary_is_mean_and_std_over_seeds():
    runs = {}
    for method in ("gd", "sam"):
        for seed in (0, 1, 2):
            run = _seeded(seed)
            run.config = run.config.replace(optimizer=method, seed=seed, name=f"{method}{seed}")
            run.append_scalars(int(run.step), test_acc=0.5 + 0.1 * seed + (method == "sam"))
            runs[f"{method}-s{seed}"] = run
    summary = cc.optimizer_summary(runs)
    assert list(summary.index) == ["gd (3 seeds)", "sam (3 seeds)"]
    assert list(summary["seeds"]) == [3, 3]
    np.testing.assert_allclose(summary["test acc"], [0.6, 1.6])
    np.testing.assert_allclose(summary["± test acc"], np.std([0.5, 0.6, 0.7]))


def test_heatmap_of_sharpness_over_two_over_eta():
    sweep = _sweep()
    chart = cc.sweep_heatmap_chart(sweep, "sharpness_over_2eta")
    spec = chart.to_dict(validate=True)
    cells = chart.data[chart.data["kind"] == "cell"]
    run = sweep.runs[0]
    want = run.scalars["sharpness"] / run.scalars["two_over_eta"]
    np.testing.assert_allclose(cells[cells["eta"] == "0.5"]["value"], want)
    scale = spec["layer"][0]["encoding"]["color"]["scale"]
    assert scale["domainMid"] == 1.0


def _legend_hiders(spec: dict) -> list[tuple[str, str]]:
    """(channel, field) of legend-less colour channels that share a field with a colour
    legend in the same layer: Vega-Lite merges such legends and the merged one vanishes."""
    out = []
    for layer in spec.get("layer", [spec]):
        enc = layer.get("encoding", {})
        shown = {
            enc[ch]["field"]
            for ch in ("color", "fill")
            if ch in enc and "field" in enc[ch] and enc[ch].get("legend", {}) is not None
        }
        for ch in ("stroke", "fill", "color", "opacity"):
            e = enc.get(ch, {})
            if "field" in e and "legend" in e and e["legend"] is None and e["field"] in shown:
                out.append((ch, e["field"]))
    return out


@pytest.mark.parametrize("metric", ["m_norm_mean", "sharpness_over_2eta"])
def test_sweep_heatmap_keeps_its_colour_legend(metric):
    """Regression: the seam-closing stroke once encoded the colour's own field with
    legend=None, which removed the heatmap's colour legend."""
    spec = cc.sweep_heatmap_chart(_sweep(), metric).to_dict(validate=True)
    assert not _legend_hiders(spec)
    color = spec["layer"][0]["encoding"]["color"]
    assert color.get("legend", {}) is not None


def test_log_ticks_label_a_range_inside_one_decade():
    from app.compare_charts import log_ticks

    assert log_ticks([2800, 12500]) == [3000, 4000, 5000, 6000, 7000, 8000, 9000, 10000]
    assert log_ticks([90, 20000]) == [100, 200, 500, 1000, 2000, 5000, 10000, 20000]
    assert all(t > 10_000 for t in log_ticks([11_000, 40_000])[2:])
    assert log_ticks([float("nan"), -1]) == []
