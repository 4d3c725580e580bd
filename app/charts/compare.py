"""Charts that compare runs: one metric of several runs overlaid, and the views of a
learning-rate sweep (η × step heatmap, final ⟨‖J‖²⟩ against η, max ‖H‖ against 2/η).

Pure functions ``runs -> altair``; the frames they draw come from :mod:`app.tables`
(:func:`~app.tables.overlay_frame`, :func:`~app.tables.sweep_heatmap_frame`,
:func:`~app.tables.sweep_final_frame`). The overlay and the sweep heatmap follow the
package's idiom (one frame, a cached template, :func:`app.charts.common._finish`); the two
sweep scatter charts draw the sweep's one per-η frame (:func:`~app.tables.sweep_final_frame`,
which a page builds once for both and its table) through
:func:`~app.tables.final_jac_frame` and :func:`~app.tables.max_sharpness_frame`, each with
a reference layer (seed band, diagonal), so their specs stayed as they were. No streamlit
here.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping

import altair as alt
import pandas as pd

from app.charts.common import _finish, probe_mode_label, run_colors
from app.tables import (
    HEATMAP_METRICS,
    MAX_POINTS,
    X_AXES,
    log_ticks,
    overlay_frame,
    sweep_final_frame,
    sweep_heatmap_frame,
)
from app.tables.access import SweepLike
from app.tables.sweeps import _eta_label, final_jac_frame, jac_series, max_sharpness_frame
from ijr_core.protocol import RunLike

# scalar name -> (axis title, chart title); the metrics the overlay offers.
OVERLAY_METRICS: dict[str, tuple[str, str]] = {
    "sharpness": ("‖H‖", "Sharpness ‖H‖ (dashed: each run's 2/η)"),
    "m_norm_mean": ("⟨‖M‖⟩", "Mean impurity ⟨‖M‖⟩"),
    "jac_spectral_sq_mean": ("⟨‖J‖²⟩", "Mean squared Jacobian norm ⟨‖J‖²⟩"),
    "test_acc": ("test accuracy", "Test accuracy"),
    "train_loss": ("train loss", "Training loss"),
    "gn_sharpness": ("‖G‖", "Gauss–Newton norm ‖G‖"),
    "jac_frobenius_sq_mean": ("⟨‖J‖²⟩ Frobenius", "Mean squared Frobenius norm of J"),
    "train_acc": ("train accuracy", "Training accuracy"),
    "test_loss": ("test loss", "Test loss"),
}


def overlay_chart(
    runs: Mapping[str, RunLike],
    metric: str = "sharpness",
    x_axis: str = "step",
    smoothing: float = 0.0,
    group_seeds: bool = False,
    max_points: int = MAX_POINTS,
    log_y: bool = False,
    height: int = 260,
) -> alt.LayerChart:
    """One metric of several runs on one chart, coloured by run.

    Clicking a legend entry shows that run alone (shift-click adds runs; the selection
    ``legend_pick`` is bound to the legend; the others fade). With smoothing the raw
    curves stay as faint lines under the smoothed ones; seed groups draw a mean ± std band.
    For sharpness each run's 2/η is drawn dashed in the run's colour."""
    data = overlay_frame(runs, metric, x_axis, smoothing, group_seeds, max_points)
    if log_y:
        data = data[(data["value"] > 0) | data["value"].isna()]
    y_title, title = OVERLAY_METRICS.get(metric, (metric, metric))
    if metric == "sharpness":
        title = f"{title}, {probe_mode_label(list(runs.values()))}"
    params = {
        "labels": tuple(dict.fromkeys(data["run"])),
        "y_title": y_title,
        "title": title,
        "x_title": X_AXES.get(x_axis, x_axis),
        "smoothing_on": smoothing > 0,
        "band": bool((data["kind"] == "band").any()),
        "eta": bool((data["kind"] == "eta").any()),
        "log_y": log_y,
        "unit_y": metric in ("test_acc", "train_acc"),
        "height": height,
    }
    return _finish(_overlay_template, params, data, as_spec=False)


@functools.lru_cache(maxsize=64)
def _overlay_template(labels, y_title, title, x_title, smoothing_on, band, eta, log_y, unit_y,
                      height) -> alt.LayerChart:
    labels = list(labels)
    pick = alt.selection_point(name="legend_pick", fields=["run"], bind="legend")
    color = alt.Color(
        "run:N",
        scale=alt.Scale(domain=labels, range=run_colors(labels)),
        legend=alt.Legend(
            title="run (click to show alone)",
            orient="bottom",
            columns=1,  # two columns cut the second column's names short beside a long one
            labelLimit=700,
            symbolType="stroke",
            symbolOpacity=1,
            symbolStrokeWidth=3,
        ),
    )
    scale = alt.Scale(type="log") if log_y else alt.Scale(zero=False)
    if unit_y:
        scale = alt.Scale(domain=[0, 1])
    x = alt.X("x:Q", title=x_title)
    y = alt.Y("value:Q", title=y_title, scale=scale)
    base = alt.Chart()

    def faded(on: float, off: float = 0.06):
        return alt.condition(pick, alt.value(on), alt.value(off))

    tips = [
        alt.Tooltip("run:N"),
        alt.Tooltip("x:Q", title=x_title),
        alt.Tooltip("value:Q", title=y_title, format=".4g"),
    ]
    raw = (
        base.transform_filter(alt.datum.kind == "raw")
        .mark_line(strokeWidth=1 if smoothing_on else 2)
        .encode(x=x, y=y, color=color, opacity=faded(0.3 if smoothing_on else 0.95), tooltip=tips)
        .add_params(pick)
    )
    layers = [raw]
    if smoothing_on:
        layers.append(
            base.transform_filter(alt.datum.kind == "smooth")
            .mark_line(strokeWidth=2.5)
            .encode(x=x, y=y, color=color, opacity=faded(1.0), tooltip=tips)
        )
    if band:
        layers.insert(
            0,
            base.transform_filter(alt.datum.kind == "band")
            .mark_area()
            .encode(
                x=x,
                y=alt.Y("lo:Q", title=y_title, scale=scale),
                y2="hi:Q",
                color=color,
                opacity=faded(0.2, 0.02),
                tooltip=[
                    alt.Tooltip("run:N"),
                    alt.Tooltip("value:Q", title="mean", format=".4g"),
                    alt.Tooltip("lo:Q", title="mean − std", format=".4g"),
                    alt.Tooltip("hi:Q", title="mean + std", format=".4g"),
                ],
            ),
        )
    if eta:
        layers.append(
            base.transform_filter(alt.datum.kind == "eta")
            .mark_line(strokeDash=[6, 4], strokeWidth=1.5, interpolate="step-after")
            .encode(
                x=x,
                y=y,
                color=color,
                opacity=faded(0.9),
                tooltip=[alt.Tooltip("run:N"), alt.Tooltip("value:Q", title="2/η", format=".4g")],
            )
        )
    return alt.layer(*layers).properties(height=height, title=title)


def sweep_heatmap_chart(
    sweep: SweepLike, metric: str = "m_norm_mean", height: int | None = None
) -> alt.LayerChart:
    """(learning rate × step) heatmap of ⟨‖M‖⟩ (the paper's impurity-over-η figure), one row
    per η (largest on top); each run's ARP (phase II) outlined in black."""
    data = sweep_heatmap_frame(sweep, metric)
    params = {
        "order": tuple(_eta_label(lr) for lr in sorted(sweep.lrs, reverse=True)),
        "label": HEATMAP_METRICS.get(metric, metric),
        "eos": metric == "sharpness_over_2eta",
        "height": height,
    }
    return _finish(_sweep_heatmap_template, params, data, as_spec=False)


@functools.lru_cache(maxsize=64)
def _sweep_heatmap_template(order, label, eos, height) -> alt.LayerChart:
    order = list(order)
    scale = (
        alt.Scale(scheme="blueorange", domainMid=1.0)  # white-ish at the edge of stability
        if eos
        else alt.Scale(scheme="viridis")
    )
    y = alt.Y("eta:O", title="learning rate η", sort=order)
    x = alt.X("step:Q", title="step", scale=alt.Scale(nice=False))
    base = alt.Chart()
    cells = (
        base.transform_filter(alt.datum.kind == "cell")
        .transform_calculate(edge="datum.value")
        .mark_rect(strokeWidth=0.6)
        .encode(
            x=x,
            x2="step_end:Q",
            y=y,
            color=alt.Color("value:Q", title=label, scale=scale),
            # a stroke of the cell's own colour closes the anti-aliasing seams between cells;
            # it encodes a copy of the value: a legend-less channel on the same field would
            # be merged with the colour legend and hide it
            stroke=alt.Stroke("edge:Q", scale=scale, legend=None),
            tooltip=[
                alt.Tooltip("eta:N", title="η"),
                alt.Tooltip("step:Q"),
                alt.Tooltip("value:Q", title=label, format=".4g"),
            ],
        )
    )
    arp = (
        base.transform_filter(alt.datum.kind == "arp")
        .mark_rect(fill=None, stroke="black", strokeWidth=2, fillOpacity=0)
        .encode(
            x="step:Q",
            x2="step_end:Q",
            y=y,
            tooltip=[
                alt.Tooltip("eta:N", title="η"),
                alt.Tooltip("step:Q", title="ARP from step"),
                alt.Tooltip("step_end:Q", title="ARP to step"),
            ],
        )
    )
    # the clicked cell keeps a white outline (in the browser; double-click clears it), so
    # the value read from its tooltip stays marked
    pick = alt.selection_point(name="heat_pick", fields=["eta", "step"], on="click",
                               clear="dblclick", empty=False)
    cells = cells.add_params(pick)
    picked = (
        base.transform_filter(alt.datum.kind == "cell")
        .transform_filter(pick)
        .mark_rect(fill=None, stroke="white", strokeWidth=3)
        .encode(x=x, x2="step_end:Q", y=y)
    )
    rows = max(len(order), 1)
    return alt.layer(cells, arp, picked).properties(
        height=height or min(40 * rows + 40, 420),
        title=f"{label} over learning rate and training (outlined: ARP, phase II)",
    )


JAC_COLORS = ("#8c564b", "#e377c2", "#17becf")


def final_jac_chart(
    sweep: SweepLike,
    matched_loss: float | None = None,
    height: int = 260,
    final: pd.DataFrame | None = None,
) -> alt.LayerChart:
    """Final ⟨‖J‖²⟩ (spectral and Frobenius) against η, log-log. With ``matched_loss`` a
    third series gives ⟨‖J‖²⟩ where each run's training loss first reaches that level (runs
    that never do are left out): implicit Jacobian regularization shows there as a falling
    curve (the final values also depend on how long each run kept fitting). ``final``: the
    sweep's :func:`~app.tables.sweep_final_frame` with ``matched_loss``, when already built."""
    f = sweep_final_frame(sweep, matched_loss) if final is None else final
    data, band = final_jac_frame(f, matched_loss)
    present = [
        (label, color)
        for (_, label), color in zip(jac_series(matched_loss), JAC_COLORS, strict=False)
        if (data["series"] == label).any()
    ]
    base = alt.Chart(data).encode(
        # nice=False: a "nice" log domain rounds out to whole decades and leaves most of
        # the plot empty for a sweep that spans a factor of 5 in η
        x=alt.X("lr:Q", title="learning rate η",
                scale=alt.Scale(type="log", nice=False, padding=14),
                axis=alt.Axis(values=sorted({float(v) for v in f["lr"]}))),  # the swept η
        y=alt.Y("value:Q", title="Jacobian norm²",
                scale=alt.Scale(type="log", nice=False, padding=14),
                # explicit ticks: Vega labels only whole decades of a short log domain, which
                # left every value above 10,000 unlabelled
                axis=alt.Axis(values=log_ticks(data["value"]), format="~s")),
        color=alt.Color(
            "series:N",
            scale=alt.Scale(domain=[lab for lab, _ in present], range=[c for _, c in present]),
            legend=alt.Legend(title=None, orient="bottom", columns=1),
        ),
    )
    line = base.mark_line()
    layers = []
    if band is not None:  # mean ± std over seeds (of a grid), clipped above 0 on log axes
        layers.append(
            alt.Chart(band).mark_area(opacity=0.2, color=JAC_COLORS[0])
            .encode(x="lr:Q", y="lo:Q", y2="hi:Q")
        )
    pts = base.mark_point(filled=True, size=60).encode(
        shape=alt.Shape("status:N", legend=alt.Legend(title="status", orient="bottom")),
        tooltip=[
            alt.Tooltip("lr:Q", title="η"),
            alt.Tooltip("series:N"),
            alt.Tooltip("value:Q", format=".4g"),
            alt.Tooltip("status:N"),
        ],
    )
    title = "⟨‖J‖²⟩ against η" + (" (band: ± std over seeds)" if layers else "")
    return alt.layer(*layers, line, pts).properties(height=height, title=title)


def max_sharpness_chart(
    sweep: SweepLike, height: int = 260, final: pd.DataFrame | None = None
) -> alt.LayerChart:
    """Largest ‖H‖ of each run against its 2/η, with the diagonal ‖H‖ = 2/η: runs at the
    edge of stability sit on (or just above) the diagonal. ``final``: the sweep's
    :func:`~app.tables.sweep_final_frame`, when already built."""
    f, diag = max_sharpness_frame(sweep_final_frame(sweep) if final is None else final)
    # few ticks, overlapping labels dropped: at a report's fixed width 27 labels collided
    x = alt.X("two_over_eta:Q", title="2/η", axis=alt.Axis(tickCount=8, labelOverlap=True))
    y = alt.Y("max_sharpness:Q", title="max ‖H‖ over training",
              axis=alt.Axis(tickCount=6, labelOverlap=True))
    rule = alt.Chart(diag).mark_line(strokeDash=[5, 4], color="#888").encode(x=x, y=y)
    pts = (
        alt.Chart(f)
        .mark_point(filled=True, size=70)
        .encode(
            x=x,
            y=y,
            color=alt.Color("lr:O", title="η", scale=alt.Scale(scheme="plasma")),
            shape=alt.Shape("status:N", legend=alt.Legend(title="status")),
            tooltip=[
                alt.Tooltip("lr:Q", title="η"),
                alt.Tooltip("two_over_eta:Q", format=".4g"),
                alt.Tooltip("max_sharpness:Q", title="max ‖H‖", format=".4g"),
                alt.Tooltip("status:N"),
            ],
        )
    )
    return alt.layer(rule, pts).properties(
        height=height, title=f"Max ‖H‖ against 2/η ({probe_mode_label(sweep.runs)})")
