"""Spec tests of app/charts.py: encodings, layers, the 2/η rule, stable specs, mark counts."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from app import charts
from app.synthetic import synthetic_run
from ijr_core.config import RunConfig
from ijr_core.record import Run


@pytest.fixture(scope="module")
def run():
    return synthetic_run(n_samples=120, n_checkpoints=16, steps=600, lr_change=(400, 0.4))


def _layers(chart) -> list[dict]:
    return chart.to_dict()["layer"]


def _filters(chart) -> list[str]:
    return [json.dumps(layer.get("transform", [])) for layer in _layers(chart)]


def _layer_for(chart, kind: str) -> dict:
    for layer in _layers(chart):
        if f"datum.kind === '{kind}'" in json.dumps(layer.get("transform", [])).replace('\\"', "'"):
            return layer
    raise AssertionError(f"no layer for kind {kind!r}")


def test_every_chart_is_a_valid_vega_lite_spec(run):
    grid = {
        "xs": np.linspace(-1, 1, 5),
        "ys": np.linspace(-1, 1, 4),
        "m": np.full((4, 5), 0.2),
        "pred": np.zeros((4, 5), int),
    }
    built = [
        charts.sharpness_chart(run),
        charts.m_norm_chart(run),
        charts.jacobian_chart(run),
        charts.jacobian_chart(run, log=True),
        charts.loss_chart(run),
        charts.accuracy_chart(run),
        charts.heatmap_chart(run, "lambda_star", 3, "first correct"),
        charts.histogram_chart(run, "p_max", 5),
        charts.scatter_chart(run, 5, color_by="noisy"),
        charts.sample_history_chart(run, 7, 4),
        charts.decision_map_chart(grid, {"x": [0.0], "y": [0.0], "label": [1]}),
    ]
    for chart in built:
        spec = chart.to_dict(validate=True)  # raises on a schema violation
        assert spec["$schema"].startswith("https://vega.github.io/schema/vega-lite/")


def test_two_over_eta_is_a_step_line_of_the_recorded_scalar(run):
    chart = charts.sharpness_chart(run)
    layer = _layer_for(chart, "eta")
    assert layer["mark"]["type"] == "line"
    assert layer["mark"]["interpolate"] == "step-after"
    data = chart.data
    eta = data[data["kind"] == "eta"]
    np.testing.assert_allclose(eta["value"], run.scalars["two_over_eta"])
    np.testing.assert_allclose(eta["step"], run.scalars["step"])
    # the lr change at step 400 shows as a jump from 2/0.5 to 2/0.4
    assert set(np.round(eta["value"], 6)) == {4.0, 5.0}
    assert eta.loc[eta["step"] >= 400, "value"].eq(5.0).all()


def test_sharpness_panel_series_and_phase_shading(run):
    chart = charts.sharpness_chart(run)
    data = chart.data
    lines = data[data["kind"] == "line"]
    assert set(lines["series"]) == {"‖H‖", "‖G‖", "⟨λ*‖J‖²⟩"}
    h = lines[lines["key"] == "H"]
    np.testing.assert_allclose(h["value"], run.scalars["sharpness"])
    phases = data[data["kind"] == "phase"]
    assert len(phases) == len(run.phase_spans())
    assert list(phases["start"]) == [float(s) for _, s, _ in run.phase_spans()]
    rect = _layer_for(chart, "phase")
    assert rect["mark"]["type"] == "rect"
    assert rect["encoding"]["x"]["field"] == "start"
    assert rect["encoding"]["x2"]["field"] == "end"
    # fixed step domain: live charts do not rescale as steps arrive
    assert chart.to_dict()["encoding"]["x"]["scale"]["domain"] == [0.0, 600.0]


def test_top_k_eigenvalues_get_their_own_series():
    run = synthetic_run(30, 5)
    scalars = dict(run.scalars)
    scalars["sharpness_2"] = scalars["sharpness"] * 0.8
    data = charts.sharpness_chart(scalars, spans=[]).data
    assert "‖H‖ λ2" in set(data["series"])


def test_live_spec_does_not_depend_on_the_data():
    short = synthetic_run(50, 6, steps=600, seed=1)
    long = synthetic_run(50, 20, steps=600, seed=2)
    for build in (
        charts.sharpness_chart,
        charts.m_norm_chart,
        charts.jacobian_chart,
        charts.loss_chart,
        charts.accuracy_chart,
    ):
        spec_a, data_a = charts.split_spec(build(short))
        spec_b, data_b = charts.split_spec(build(long))
        assert spec_a == spec_b, build.__name__
        assert len(data_a) < len(data_b)
        assert "datasets" not in spec_a and "data" not in spec_a


def test_m_norm_chart_marks_one_over_k(run):
    chart = charts.m_norm_chart(run)
    level = chart.data[chart.data["kind"] == "level"]
    assert level["value"].tolist() == [pytest.approx(1 / 10)]
    rule = _layer_for(chart, "level")
    assert rule["mark"]["type"] == "rule"
    assert chart.to_dict()["layer"][1]["encoding"]["y"]["scale"]["domain"] == [0, 0.5]


def test_m_norm_chart_has_only_the_phase_legend(run):
    """Its one series needs no legend: beside the phase legend it was cut off on a
    half-width chart (Train's layout)."""
    spec = charts.m_norm_chart(run).to_dict()
    legends = [
        (channel, enc.get("field"))
        for layer in spec["layer"]
        for channel, enc in layer.get("encoding", {}).items()
        if isinstance(enc, dict) and enc.get("field") and enc.get("legend", {}) is not None
        and channel in ("color", "fill")
    ]
    assert legends == [("fill", "phase")]


def test_jacobian_log_scale_drops_non_positive_values(run):
    scalars = dict(run.scalars)
    scalars["jac_spectral_sq_mean"] = scalars["jac_spectral_sq_mean"].copy()
    scalars["jac_spectral_sq_mean"][0] = 0.0
    chart = charts.jacobian_chart(scalars, log=True)
    lines = chart.data[chart.data["kind"] == "line"]
    assert (lines["value"] > 0).all()
    assert "log" in json.dumps(chart.to_dict())
    assert "log" not in json.dumps(charts.jacobian_chart(scalars).to_dict()["layer"][0])


@pytest.mark.parametrize("n_samples,n_ckpt", [(1000, 100), (5000, 200), (37, 3)])
def test_heatmap_stays_under_the_mark_limit(n_samples, n_ckpt):
    run = synthetic_run(n_samples, n_ckpt, steps=1000)
    chart = charts.heatmap_chart(run, "m_norm", -1, "class")
    cells = chart.data[chart.data["kind"] == "cell"]
    assert len(chart.data) <= charts.MAX_MARKS
    b = charts.heatmap_bins(n_samples, n_ckpt)
    assert len(cells) == int(np.ceil(n_samples / b)) * n_ckpt
    if n_samples * n_ckpt <= charts.HEATMAP_MARKS:
        assert b == 1


def test_heatmap_values_cursor_and_orders(run):
    chart = charts.heatmap_chart(run, "m_norm", 4, "sample id", max_marks=10**6)
    data = chart.data
    cells = data[data["kind"] == "cell"]
    c4 = cells[cells["step"] == run.sample_steps[4]].sort_values("row")
    np.testing.assert_allclose(c4["value"], run.samples["m_norm"][4], rtol=1e-6)
    # no cursor in the heatmap's data: it stays the same while scrubbing (the browser keeps
    # the chart); the strip above marks the step, on the same step axis
    assert set(data["kind"]) == {"cell", "noisy"}
    other = charts.heatmap_chart(run, "m_norm", 0, "sample id", max_marks=10**6)
    pd.testing.assert_frame_equal(other.data, data)
    strip = charts.heatmap_cursor_chart(run, 4, "sample id", max_marks=10**6)
    assert strip.data["step"].tolist() == [float(run.sample_steps[4])]
    heat_x = chart.to_dict()["layer"][0]["encoding"]["x"]["scale"]["domain"]
    strip_spec = strip.to_dict(validate=True)
    assert strip_spec["layer"][0]["encoding"]["x"]["scale"]["domain"] == heat_x
    heat_y = chart.to_dict()["layer"][0]["encoding"]["y"]["title"]
    assert strip_spec["layer"][0]["encoding"]["y"]["axis"]["title"] == heat_y
    # the heatmap's last step label reaches past its plot and narrows it: the strip carries
    # the same labels (transparent) so that both plots get the same width
    strip_x = strip_spec["layer"][0]["encoding"]["x"]["axis"]
    assert strip_x.get("labels", True) and strip_x["labelColor"] == "transparent"
    noisy = data[data["kind"] == "noisy"]
    assert len(noisy) == int(run.sample_noisy.sum())
    perm = charts.sample_order(run, "class")
    assert np.all(np.diff(run.sample_labels[perm]) >= 0)
    perm = charts.sample_order(run, "final impurity")
    assert np.all(np.diff(run.samples["m_norm"][-1][perm]) <= 0)
    first = charts.first_correct_index(run.samples["correct"])
    perm = charts.sample_order(run, "first correct")
    assert np.all(np.diff(first[perm]) >= 0)
    perm = charts.sample_order(run, "noisy first")
    noisy_sorted = run.sample_noisy[perm]
    assert noisy_sorted[: noisy_sorted.sum()].all()


def test_binned_heatmap_rows_average_their_samples(run):
    cells, b = charts.heatmap_frame(run, "p_max", "sample id", max_marks=16 * 40)
    assert b == 3
    ckpt = cells[cells["step"] == run.sample_steps[-1]].sort_values("row")
    expected = run.samples["p_max"][-1][:3].mean()
    assert ckpt["value"].iloc[0] == pytest.approx(expected, rel=1e-6)


def test_first_correct_index():
    correct = np.array([[0, 0, 1], [1, 0, 1], [1, 0, 0]], dtype=np.float32)
    assert charts.first_correct_index(correct).tolist() == [1, 3, 0]


def test_histogram_counts_every_sample_at_the_step(run):
    chart = charts.histogram_chart(run, "m_norm", 6)
    assert chart.data["count"].sum() == np.isfinite(run.samples["m_norm"][6]).sum()
    enc = chart.to_dict()["encoding"]
    assert enc["color"]["field"] == "class"
    # fixed bin edges over the run: scrubbing does not move the axis
    assert enc["x"]["scale"]["domain"] == [0.0, 0.5]
    a = charts.histogram_chart(run, "jac_spectral_sq", 0).to_dict()["encoding"]["x"]["scale"]
    b = charts.histogram_chart(run, "jac_spectral_sq", -1).to_dict()["encoding"]["x"]["scale"]
    assert a == b


def test_scatter_has_the_diagonal_and_a_click_selection(run):
    chart = charts.scatter_chart(run, 8)
    spec = chart.to_dict()
    diag = chart.data[chart.data["kind"] == "diag"]
    assert diag["m_norm"].tolist() == diag["lambda_star"].tolist()
    assert diag["m_norm"].iloc[0] == 0.0
    points = chart.data[chart.data["kind"] == "point"]
    assert len(points) == len(run.sample_ids)
    assert (points["lambda_star"] <= points["m_norm"] + 1e-7).all()
    assert spec["params"][0]["name"] == "pick"
    assert spec["params"][0]["select"]["fields"] == ["sample"]
    assert spec["params"][0]["views"] == [spec["layer"][1]["name"]]
    tips = json.dumps(spec["layer"][1]["encoding"]["tooltip"])
    for field in ("sample", "label", "m_norm", "lambda_star"):
        assert f'"{field}"' in tips


def test_scatter_subsamples_above_the_limit():
    run = synthetic_run(3000, 3)
    chart = charts.scatter_chart(run, 0, max_points=1000)
    assert (chart.data["kind"] == "point").sum() == 1000


def test_top_impure_is_sorted_and_has_k_rows(run):
    table = charts.top_impure(run, 5, k=7)
    assert len(table) == 7
    assert table["m_norm"].is_monotonic_decreasing
    assert table["m_norm"].iloc[0] == pytest.approx(run.samples["m_norm"][5].max())
    assert {"sample", "label", "noisy", "lambda_star", "p_max", "correct"} <= set(table)


def test_sample_history(run):
    chart = charts.sample_history_chart(run, 11, step_index=2)
    data = chart.data
    m = data[(data["metric"] == "‖M‖")]
    np.testing.assert_allclose(m["value"], run.samples["m_norm"][:, 11], rtol=1e-6)
    assert data.loc[data["kind"] == "cursor", "step"].tolist() == [float(run.sample_steps[2])]
    assert chart.to_dict()["resolve"]["scale"]["y"] == "independent"


def test_decision_map_marks_boundaries_between_predicted_classes():
    xs, ys = np.linspace(0, 1, 6), np.linspace(0, 1, 4)
    pred = np.zeros((4, 6), int)
    pred[:, 3:] = 1
    grid = {"xs": xs, "ys": ys, "m": np.zeros((4, 6)), "pred": pred}
    chart = charts.decision_map_chart(grid, {"x": [0.1, 0.9], "y": [0.5, 0.5], "label": [0, 1]})
    data = chart.data
    assert (data["kind"] == "cell").sum() == 24
    edges = data[data["kind"] == "edge"]
    assert len(edges) == 4  # column 3 of every row differs from its left neighbour
    assert (data["kind"] == "point").sum() == 2


def test_live_two_over_eta_line_spans_the_step_axis_with_headroom():
    """Regression: while a run was live the 2/η line stopped at the last probe and sat on
    the top edge of the plot; it now runs to the end of the axis with headroom above."""
    def run_at(steps):  # a RunLike run configured for 800 steps, probed at ``steps``
        run = Run(RunConfig(steps=800))
        for step, h in zip(steps, [0.5, 1.0, 1.5], strict=True):
            run.append_scalars(step, sharpness=h, two_over_eta=4.0)
        return run

    chart = charts.sharpness_chart(run_at([0, 25, 50]), spans=[])
    data = chart.data
    end = data[data["kind"] == "eta_end"]
    assert list(end["step"]) == [800.0] and list(end["value"]) == [4.0]
    pad = data[data["kind"] == "pad"]
    assert float(pad["value"].iloc[0]) > 4.0
    assert pd.api.types.is_numeric_dtype(data["value"])
    assert "eta_end" in json.dumps(_layer_for(chart, "eta")["transform"])
    assert _layer_for(chart, "pad")["mark"]["opacity"] == 0
    # a finished run: nothing to extend
    done = charts.sharpness_chart(run_at([0, 400, 800]), spans=[])
    assert not (done.data["kind"] == "eta_end").any()


def test_histogram_axis_has_round_ticks(run):
    """Regression: bin=binned put the ticks on bin edges (0.07, 0.13, …); plain x/x2 bars
    let Vega pick round tick values."""
    enc = charts.histogram_chart(run, "m_norm", 6).to_dict()["encoding"]
    assert "bin" not in enc["x"] and enc["x2"]["field"] == "hi"


def test_decision_map_cells_have_no_seams_and_keep_their_legend():
    """Regression: white anti-aliasing seams striped the ‖M‖ map; the cells now carry a
    stroke of their own grey, through a copy of the field so the ‖M‖ legend survives."""
    xs = np.linspace(-1, 1, 4)
    grid = {"xs": xs, "ys": xs, "m": np.full((4, 4), 0.2), "pred": np.zeros((4, 4), int)}
    spec = charts.decision_map_chart(grid).to_dict(validate=True)
    enc = spec["layer"][0]["encoding"]
    assert enc["stroke"]["legend"] is None and enc["stroke"]["field"] != enc["color"]["field"]
    assert enc["stroke"]["scale"] == enc["color"]["scale"]
    assert enc["color"].get("legend", {}) is not None
