"""The Inspect scrubber: its long-form frames (app/tables/scrub.py: rows per checkpoint,
bounds) and the compound chart whose one selection ``at`` moves every step-dependent view
(app.charts.scrub_chart)."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest

from app import charts
from app.synthetic import synthetic_run
from app.tables.scrub import (
    histogram_edges,
    histogram_frame,
    nearest_position,
    point_frame,
    scrub_indices,
    tick_frame,
)


@pytest.fixture(scope="module")
def run():
    return synthetic_run(n_samples=90, n_checkpoints=14, steps=520, n_classes=3, seed=7)


@pytest.mark.parametrize("n, cap", [(1, 60), (14, 60), (14, 14), (200, 60), (61, 60), (5, 2)])
def test_scrub_indices_keep_first_last_and_the_bound(n, cap):
    idx = scrub_indices(n, cap)
    assert len(idx) == min(n, cap)
    assert idx[0] == 0 and idx[-1] == n - 1
    assert np.all(np.diff(idx) > 0)  # ascending, no checkpoint twice


def test_nearest_position_maps_a_checkpoint_to_the_scrubber():
    idx = scrub_indices(100, 11)  # 0, 9, 19, ...
    assert nearest_position(idx, 0) == 0
    assert nearest_position(idx, 99) == 10
    assert idx[nearest_position(idx, 20)] == 19
    assert nearest_position([], 5) == 0


def test_histogram_frame_counts_every_finite_sample_at_each_position(run):
    idx = scrub_indices(len(run.sample_steps), 5)
    edges = histogram_edges(run, "jac_spectral_sq", 12)
    frame = histogram_frame(run, "jac_spectral_sq", idx, edges)
    assert sorted(frame["checkpoint"].unique()) == list(range(len(idx)))
    assert (frame["count"] > 0).all()
    values = np.asarray(run.samples["jac_spectral_sq"])
    for p, c in enumerate(idx):
        assert frame.loc[frame["checkpoint"] == p, "count"].sum() == np.isfinite(values[c]).sum()
    assert frame["lo"].min() >= edges[0] and frame["hi"].max() <= edges[-1]


def test_histogram_edges_cover_every_checkpoint(run):
    edges = histogram_edges(run, "jac_spectral_sq", 10)
    values = np.asarray(run.samples["jac_spectral_sq"])
    assert len(edges) == 11
    assert edges[0] <= np.nanmin(values) and edges[-1] >= np.nanmax(values)


@pytest.mark.parametrize("max_points", [10_000, 200, 5])
def test_point_frame_rows_per_position_and_bound(run, max_points):
    idx = scrub_indices(len(run.sample_steps), 7)
    frame = point_frame(run, idx, max_points)
    per = frame.groupby("checkpoint")["sample"].apply(list)
    assert list(per.index) == list(range(len(idx)))
    shown = per.iloc[0]
    assert all(samples == shown for samples in per)  # the same samples at every step
    assert len(shown) == min(len(run.sample_ids), max(1, max_points // len(idx)))
    assert len(frame) <= max(max_points, len(idx))
    # the values are the run's at that checkpoint
    ids = list(np.asarray(run.sample_ids))
    for p in (0, len(idx) - 1):
        rows = frame[frame["checkpoint"] == p]
        cols = [ids.index(s) for s in rows["sample"]]
        want = np.asarray(run.samples["m_norm"])[idx[p], cols]
        np.testing.assert_allclose(rows["m_norm"], want, rtol=1e-6)


def test_point_frame_drops_points_it_cannot_draw(run):
    base = synthetic_run(n_samples=20, n_checkpoints=4, seed=1)
    samples = {k: np.array(v, dtype=float) for k, v in base.samples.items()}
    samples["lambda_star"][2, :5] = np.nan
    broken = SimpleNamespace(
        samples=samples,
        sample_ids=base.sample_ids,
        sample_labels=base.sample_labels,
        sample_noisy=base.sample_noisy,
    )
    frame = point_frame(broken, [0, 1, 2, 3])
    assert (frame["checkpoint"] == 2).sum() == 15
    assert np.isfinite(frame[["m_norm", "lambda_star"]].to_numpy()).all()


def test_tick_frame_one_row_per_position(run):
    idx = scrub_indices(len(run.sample_steps), 6)
    steps = np.asarray(run.sample_steps, dtype=float)
    ticks = tick_frame(run, idx, float(steps[0]), float(steps[-1]))
    assert ticks["checkpoint"].tolist() == list(range(len(idx)))
    assert ticks["step"].tolist() == steps[idx].tolist()
    assert ticks["text"].iloc[-1] == f"step {int(steps[-1])}"
    assert ticks["side"].iloc[0] == "left" and ticks["side"].iloc[-1] == "right"


def _views(spec: dict) -> list[dict]:
    out = []
    for key in ("vconcat", "hconcat", "layer"):
        for child in spec.get(key, []):
            out.append(child)
            out += _views(child)
    return out


def test_one_selection_drives_strip_histogram_and_scatter(run):
    spec, data = charts.scrub_chart(run, "lambda_star", start=3, max_checkpoints=8, as_spec=True)
    (at,) = [p for p in spec["params"] if p["name"] == charts.SCRUB_PARAM]
    assert at["select"]["fields"] == ["checkpoint"]
    assert at["bind"]["input"] == "range" and at["bind"]["max"] == 7
    assert at["value"] == [{"checkpoint": 3}]
    assert set(data) == {"tick", "heat", "hist", "point"}
    assert set(data["tick"]["checkpoint"]) == set(range(8))
    assert set(data["hist"]["checkpoint"]) <= set(range(8))
    text = {v.get("data", {}).get("name"): json.dumps(v) for v in _views(spec) if "data" in v}
    for name in ("tick", "hist", "point"):
        assert '"param": "at"' in text[name], name
    assert '"param": "at"' not in text["heat"]  # the heatmap never changes while scrubbing
    pick = [p for p in spec["params"] if p["name"] == "pick"][0]
    assert len(pick["views"]) == 2  # a click on the heatmap or on the scatter


def test_scrub_spec_depends_on_the_start_not_on_the_data(run):
    other = synthetic_run(n_samples=90, n_checkpoints=14, steps=520, n_classes=3, seed=8)
    a, _ = charts.scrub_chart(run, start=2, as_spec=True)
    b, _ = charts.scrub_chart(other, start=2, as_spec=True)
    c, _ = charts.scrub_chart(run, start=5, as_spec=True)
    assert a == b  # new data of the same shape: the browser keeps its view
    assert a != c
    last, _ = charts.scrub_chart(run, start=-1, as_spec=True)
    beyond, _ = charts.scrub_chart(run, start=99, as_spec=True)
    assert last == beyond  # the start is clipped to the last position


def test_scrub_chart_is_valid_vega_lite(run):
    chart = charts.scrub_chart(run, color_by="noisy", max_points=300)
    spec = chart.to_dict(validate=True)
    names = {v["data"]["name"] for v in _views(spec) if "data" in v}
    assert names == {"tick", "heat", "hist", "point"}
    assert set(spec["datasets"]) == names


def test_a_run_with_one_checkpoint_has_a_one_position_scrubber():
    one = synthetic_run(n_samples=12, n_checkpoints=1, seed=2)
    spec, data = charts.scrub_chart(one, as_spec=True)
    (at,) = [p for p in spec["params"] if p["name"] == charts.SCRUB_PARAM]
    assert at["bind"]["max"] == 0 and at["value"] == [{"checkpoint": 0}]
    assert len(data["tick"]) == 1 and set(data["point"]["checkpoint"].dropna()) == {0}
