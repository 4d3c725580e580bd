"""One sample's history over training: ‖M‖, λ*, p_max and ‖J‖², a rule at the scrubbed
checkpoint. Pure ``run -> altair`` (or, with ``as_spec``, (cached spec, data)); the table
behind it is :func:`app.tables.sample_history_frame`.
"""

from __future__ import annotations

import functools

import altair as alt
import numpy as np
import pandas as pd

from app.charts.common import _finish
from app.tables import sample_history_frame
from ijr_core.protocol import RunLike


def sample_history_chart(
    run: RunLike,
    sample_index: int,
    step_index: int | None = None,
    height: int = 240,
    as_spec: bool = False,
):
    """‖M‖, λ*, p_max (left axis, [0, 1]) and ‖J‖² (right axis) of one sample over training,
    a rule at the scrubbed checkpoint."""
    data = sample_history_frame(run, sample_index)
    steps = np.asarray(run.sample_steps, dtype=float)
    if step_index is not None and len(steps):
        cursor = pd.DataFrame({"kind": ["cursor"], "step": [steps[step_index]], "metric": [""]})
        data = pd.concat([data, cursor], ignore_index=True)
    sid = int(np.asarray(run.sample_ids)[sample_index])
    lab = int(np.asarray(run.sample_labels)[sample_index])
    noisy = " (noisy label)" if bool(np.asarray(run.sample_noisy)[sample_index]) else ""
    params = {"title": f"Sample {sid}, label {lab}{noisy}", "height": height}
    return _finish(_history_template, params, data, as_spec)


@functools.lru_cache(maxsize=256)
def _history_template(title, height) -> alt.LayerChart:
    names = ["‖M‖", "λ*", "p_max", "‖J‖²"]
    colors = ["#9467bd", "#2ca02c", "#7f7f7f", "#8c564b"]
    color = alt.Color(
        "metric:N",
        scale=alt.Scale(domain=names, range=colors),
        legend=alt.Legend(orient="top", title=None),
    )
    base = alt.Chart()
    tip = [alt.Tooltip("metric:N"), alt.Tooltip("step:Q"), alt.Tooltip("value:Q", format=".4g")]
    left = (
        base.transform_filter(alt.datum.kind == "prob")
        .mark_line(point=True)
        .encode(
            x=alt.X("step:Q"),
            y=alt.Y("value:Q", title="‖M‖, λ*, p_max", scale=alt.Scale(domain=[0, 1])),
            color=color,
            tooltip=tip,
        )
    )
    right = (
        base.transform_filter(alt.datum.kind == "J")
        .mark_line(point=True, strokeDash=[5, 3])
        .encode(
            x=alt.X("step:Q"),
            y=alt.Y("value:Q", title="‖J‖²", axis=alt.Axis(orient="right")),
            color=color,
            tooltip=tip,
        )
    )
    cursor = (
        base.transform_filter(alt.datum.kind == "cursor")
        .mark_rule(color="#d62728")
        .encode(x="step:Q")
    )
    return (
        alt.layer(left, right, cursor)
        .resolve_scale(y="independent")
        .properties(height=height, title=title)
    )
