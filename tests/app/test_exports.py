"""Exports round trip: CSV and NPZ read back to the run's arrays; charts render offline to
real PNG and SVG."""

from __future__ import annotations

import io

import altair as alt
import numpy as np
import pandas as pd
import pytest

from app import charts, exports
from app.synthetic import synthetic_run
from ijr_core.run import SAMPLE_KEYS


@pytest.fixture(scope="module")
def run():
    return synthetic_run(n_samples=15, n_checkpoints=7, steps=60)


def test_scalars_csv_round_trip(run):
    back = pd.read_csv(io.BytesIO(exports.scalars_csv(run)))
    assert list(back.columns)[0] == "step"
    assert set(back.columns) == set(run.scalars) | {"phase"}
    assert list(back["phase"]) == list(run.phases())
    for key, arr in run.scalars.items():
        np.testing.assert_allclose(back[key].to_numpy(dtype=float), arr, equal_nan=True)


def test_scalars_csv_download_is_the_cli_export(run, tmp_path, capsys):
    """The app's download and `python -m ijr_core export RUN --csv` give the same bytes."""
    from ijr_core.cli import main
    from ijr_core.run import load_run

    run.save(tmp_path / "r")
    assert main(["export", str(tmp_path / "r"), "--csv"]) == 0
    cli_bytes = capsys.readouterr().out.encode("utf-8")
    assert exports.scalars_csv(load_run(tmp_path / "r")) == cli_bytes
    assert exports.scalars_csv(run) == cli_bytes  # the run in memory, before saving


def test_samples_csv_long_format(run):
    back = pd.read_csv(io.BytesIO(exports.samples_csv(run)))
    c, s = run.samples["m_norm"].shape
    assert len(back) == c * s
    assert list(back.columns[:4]) == ["step", "sample_id", "label", "noisy"]
    cell = back[(back["step"] == run.sample_steps[3]) & (back["sample_id"] == run.sample_ids[5])]
    for key in SAMPLE_KEYS:
        assert cell[key].item() == pytest.approx(float(run.samples[key][3, 5]), rel=1e-6)
    last = pd.read_csv(io.BytesIO(exports.samples_csv(run, -1)))
    assert len(last) == s and set(last["step"]) == {int(run.sample_steps[-1])}


def test_samples_npz_round_trip_without_pickle(run):
    with np.load(io.BytesIO(exports.samples_npz(run)), allow_pickle=False) as data:
        np.testing.assert_array_equal(data["step"], run.sample_steps)
        np.testing.assert_array_equal(data["sample_ids"], run.sample_ids)
        np.testing.assert_array_equal(data["noisy"], run.sample_noisy)
        for key in SAMPLE_KEYS:
            np.testing.assert_array_equal(data[key], run.samples[key])


def test_chart_png_and_svg_offline(run):
    chart = charts.sharpness_chart(run)
    png = exports.chart_png(chart, scale=1)
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 2000
    svg = exports.chart_svg(chart)
    assert svg.lstrip().startswith("<svg") and "2/η" in svg
    tiny = alt.Chart(pd.DataFrame({"x": [0, 1], "y": [0, 1]})).mark_line().encode(x="x", y="y")
    assert exports.chart_svg(tiny.to_dict()).lstrip().startswith("<svg")  # spec dicts too


def test_safe_filename():
    assert exports.safe_filename("../a b/c?.png") == "a-b-c-.png"
    assert exports.safe_filename("///") == "run"


def test_every_chart_of_the_download_panel_renders(run):
    from app import share

    for name in share.CHART_EXPORTS:
        svg = share.chart_image(run, name, "svg")
        assert svg.lstrip().startswith("<svg"), name
    assert share.chart_image(run, "⟨‖M‖⟩", "png")[:4] == b"\x89PNG"
    html = share._report(run, None).decode("utf-8")
    assert html.startswith("<!doctype html>") and html.count("<svg") >= 5


def test_download_panel_draws_its_buttons(run):
    from streamlit.testing.v1 import AppTest

    def page(run):
        from app import share

        share.download_panel("t", run=run)

    at = AppTest.from_function(page, args=(run,))
    at.run()
    assert not at.exception
    assert at.selectbox(key="t_chart").value == "sharpness panel"
