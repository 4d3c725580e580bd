"""What every Compare section shows the same way: a chart at the column's width, the
overlay captions and the two-column grid of overlays."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TypeVar

import altair as alt
import streamlit as st

from app import captions, charts, views
from ijr_core.protocol import RunLike
from ijr_core.run import RunFormatError

T = TypeVar("T")
OVERLAYS = ("sharpness", "m_norm_mean", "jac_spectral_sq_mean", "test_acc")
CAPTIONS = {
    "m_norm_mean": "Impurity ⟨‖M‖⟩ of each run: look for the inverted U (with more than two "
    "classes) and for which run leaves the high-impurity phase first.",
    "jac_spectral_sq_mean": "Implicit Jacobian regularization: compare runs at the same "
    "training loss, not at the last step (a smaller η trains more slowly, so its Jacobian "
    "has grown less by then).",
    "test_acc": "Test accuracy: compare the early peaks and how much each run loses once "
    "it starts fitting noisy labels.",
    "train_loss": "Training loss per step: SAM and EJR spend two gradient evaluations on "
    "each step, so compare wall time too.",
}


def overlay_caption(metric: str, runs: Mapping[str, RunLike]) -> str:
    """The caption under an overlay: measured on the runs shown where it states a result."""
    return captions.overlay_sharpness(runs) if metric == "sharpness" else CAPTIONS[metric]


def show(chart, key: str) -> None:
    """Render at the column's width; the chart's height stays the plot's own height."""
    chart = chart.properties(autosize=alt.AutoSizeParams(type="fit-x", contains="padding"))
    st.vega_lite_chart(spec=views.readable(chart.to_dict()), width="stretch", key=key)


def overlay_grid(
    runs: Mapping[str, RunLike],
    prefix: str,
    metrics: tuple[str, ...] = OVERLAYS,
    log_metric: str | None = None,
    **options,
) -> None:
    """Overlays of ``metrics`` two per row (keys ``{prefix}_chart_<metric>``), each with its
    caption; ``options`` go to :func:`app.charts.overlay_chart`, ``log_metric`` is drawn on
    a log axis."""
    cols = st.columns(2)
    for i, metric in enumerate(metrics):
        with cols[i % 2]:
            chart = charts.overlay_chart(runs, metric, log_y=metric == log_metric, **options)
            show(chart, f"{prefix}_chart_{metric}")
            st.caption(overlay_caption(metric, runs))


def built_caption(t0: float) -> None:
    """ "Built in … ms (server)" since ``t0`` (time.perf_counter)."""
    import time

    st.caption(f"Built in {1000 * (time.perf_counter() - t0):.0f} ms (server).")


def x_axis_radio(container, key: str, **options) -> str:
    """The step / η·step (time) choice of the x axis (``options`` go to ``radio``)."""
    return container.radio(
        "x axis", list(charts.X_AXES), key=key, horizontal=True,
        format_func=charts.X_AXES.get, **options,
    )


def open_folder(load: Callable[[Path], T], folder: Path, what: str) -> T | None:
    """``load(folder)``; on a damaged folder its error as plain text and None."""
    try:
        return load(folder)
    except (RunFormatError, ValueError) as exc:
        st.error(f"Cannot open this {what}: {views.plain(exc)}")
        return None
