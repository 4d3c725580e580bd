"""Per-sample charts of a run at a checkpoint: the samples × checkpoints heatmap and its
cursor strip, the histogram and the λ*-against-‖M‖ scatter. Their templates take an
optional selection ``at`` so that :mod:`app.charts.scrub` can compose them into Inspect's
scrub chart; one sample's history is in :mod:`app.charts.history`.

Pure functions ``run -> altair`` (or, with ``as_spec``, (cached spec, data)); see
:mod:`app.charts.common`. The tables behind them live in :mod:`app.tables` and
:mod:`app.tables.scrub`.
"""

from __future__ import annotations

import functools

import altair as alt
import numpy as np
import pandas as pd

from app.charts.common import MAX_MARKS, _finish, _frame, _palette
from app.tables import (
    HEATMAP_MARKS,
    SAMPLE_METRICS,
    heatmap_bins,
    heatmap_frame,
    metric_domain,
    n_classes,
    step_edges,
)
from app.tables.scrub import (
    histogram_edges,
    histogram_frame,
    point_frame,
    tick_frame,
)
from ijr_core.protocol import RunLike


def heatmap_chart(
    run: RunLike,
    metric: str = "m_norm",
    step_index: int = -1,
    order: str = "class",
    mark_noisy: bool = True,
    max_marks: int = HEATMAP_MARKS,
    height: int = 360,
    as_spec: bool = False,
    title: bool = True,
):
    """Samples × checkpoints heatmap of a per-sample metric. Rows are bins of consecutive
    samples (in the chosen order) when samples × checkpoints exceeds ``max_marks``; a strip on
    the left marks rows holding noisy-label samples. Clicking a cell selects its (first)
    sample (param ``pick``).

    The scrubbed checkpoint is not drawn here but by :func:`heatmap_cursor_chart` above it:
    data that never changes while scrubbing lets the browser keep this chart (tens of
    thousands of cells) as it is; a cursor inside it cost about 1 s per slider step.
    ``step_index`` is accepted for symmetry with the other per-step charts and ignored."""
    params, data = _heatmap_parts(run, metric, order, mark_noisy, max_marks, height, title)
    return _finish(_heatmap_template, params, data, as_spec)


def _heatmap_parts(run: RunLike, metric: str, order: str, mark_noisy: bool, max_marks: int,
                   height: int, title: bool) -> tuple[dict, pd.DataFrame]:
    cells, b = heatmap_frame(run, metric, order, max_marks)
    steps = np.asarray(run.sample_steps, dtype=float)
    rows = int(cells["row"].max()) + 1 if len(cells) else 1
    parts = [cells]
    if mark_noisy:
        first = cells.iloc[:rows]  # the first checkpoint's column of cells
        noisy = first[first["noisy"] > 0].assign(
            kind="noisy", step=steps[0] - _noisy_strip(steps), step_end=steps[0]
        )
        parts.append(noisy)
    cols = ["kind", "row", "step", "step_end", "value", "sample", "label", "noisy"]
    data = _frame(*parts, columns=cols)
    data["row_end"] = data["row"] + 1
    domain = metric_domain(run, metric)
    params = {
        "label": SAMPLE_METRICS.get(metric, metric),
        "y_title": _heatmap_y_title(order, b),
        "binned": b > 1,
        "rows": rows,
        **_heatmap_x_domain(steps, mark_noisy),
        "domain": tuple(domain) if domain else None,
        "height": height,
        "title": title,
    }
    return params, data


def _noisy_strip(steps: np.ndarray) -> float:
    """Width (in steps) of the noisy-label strip left of the first checkpoint."""
    return max((steps[-1] - steps[0]) * 0.025, 1.0) if len(steps) else 1.0


def _heatmap_y_title(order: str, per_row: int) -> str:
    return f"samples ({order}{', ' + str(per_row) + ' per row' if per_row > 1 else ''})"


def _heatmap_x_domain(steps: np.ndarray, mark_noisy: bool) -> dict[str, float]:
    """The heatmap's step axis (x0, x1), shared with its cursor strip so the two line up."""
    if not len(steps):
        return {"x0": 0.0, "x1": 1.0}
    return {"x0": float(steps[0] - (_noisy_strip(steps) if mark_noisy else 0)),
            "x1": float(step_edges(steps)[1][-1])}


def heatmap_cursor_chart(
    run: RunLike,
    step_index: int = -1,
    order: str = "class",
    mark_noisy: bool = True,
    max_marks: int = HEATMAP_MARKS,
    as_spec: bool = False,
    metric: str = "m_norm",
):
    """A thin strip to sit right above :func:`heatmap_chart` (same arguments; that one with
    ``title=False``): the heatmap's title, then a ▼ marker and the step number at the scrubbed
    checkpoint on the heatmap's step axis. Its y axis carries the heatmap's axis title in
    transparent ink, so both plots start at the same x."""
    steps = np.asarray(run.sample_steps, dtype=float)
    c = int(np.clip(step_index if step_index >= 0 else len(steps) + step_index, 0,
                    max(len(steps) - 1, 0)))
    params = _cursor_params(run, order, mark_noisy, max_marks, metric)
    if len(steps):
        data = tick_frame(run, [c], params["x0"], params["x1"]).drop(columns="checkpoint")
    else:
        data = pd.DataFrame({"step": [0.0], "y": [-0.8], "side": ["left"], "text": [""]})
    return _finish(_heatmap_cursor_template, params, data, as_spec)


def _cursor_params(run: RunLike, order: str, mark_noisy: bool, max_marks: int,
                   metric: str) -> dict:
    steps = np.asarray(run.sample_steps, dtype=float)
    b = heatmap_bins(len(run.sample_ids), len(steps), max_marks)
    return {"y_title": _heatmap_y_title(order, b), **_heatmap_x_domain(steps, mark_noisy),
            "title": f"{SAMPLE_METRICS.get(metric, metric)} per sample over training"}


@functools.lru_cache(maxsize=64)
def _heatmap_cursor_template(y_title, x0, x1, title, at=None, positions=0,
                             start=0) -> alt.LayerChart:
    """The strip's chart; with ``at`` (a param name) its data holds every scrubbable
    checkpoint (:func:`app.tables.scrub.tick_frame`) and the point selection ``at`` on
    their ``checkpoint`` position (bound to a range input, starting at ``start``; a click
    on the strip picks the nearest checkpoint) chooses the one marked."""
    # the heatmap's step labels, in transparent ink and on top: its last label reaches past
    # the plot's right edge and narrows it; the strip must lose the same width
    x = alt.X("step:Q", scale=alt.Scale(domain=[x0, x1], nice=False),
              axis=alt.Axis(title=None, orient="top", labelColor="transparent", ticks=False,
                            domain=False, grid=False))
    y = alt.Y("y:Q", scale=alt.Scale(domain=[-1, 1]),
              # titleLimit: the rotated title keeps its width (one line of text, as on the
              # heatmap) but not its length, which would make the strip tall
              axis=alt.Axis(title=y_title, titleColor="transparent", titleLimit=20,
                            labels=False, ticks=False, domain=False, grid=False))
    base = alt.Chart().encode(x=x, y=y)
    layers = []
    if at is not None:
        pick = alt.selection_point(
            name=at, fields=["checkpoint"], value=[{"checkpoint": start}], on="click",
            nearest=True, clear=False, toggle=False,
            bind=alt.binding_range(min=0, max=max(positions - 1, 0), step=1,
                                   name="step "))
        # the checkpoints, small and along the top edge: the chosen one's label, at the
        # bottom next to its ▼, then never runs over them
        layers.append(base.mark_point(shape="triangle-down", size=36, filled=True,
                                      color="#bbb", opacity=1)
                      .encode(y=alt.YDatum(0.85), tooltip=[alt.Tooltip("step:Q")])
                      .add_params(pick))
        base = base.transform_filter({"param": at, "empty": False})
    marker = base.mark_point(shape="triangle-down", size=220, filled=True, color="#222",
                             opacity=1)
    labels = [base.transform_filter(alt.datum.side == side)
              .mark_text(align=side, dx=10 if side == "left" else -10, fontSize=14, color="#222")
              .encode(text="text:N") for side in ("left", "right")]
    return alt.layer(*layers, marker, *labels).properties(
        height=22 if at is None else 34, title=title, view=alt.ViewBackground(stroke=None))


@functools.lru_cache(maxsize=64)
def _heatmap_template(label, y_title, binned, rows, x0, x1, domain, height,
                      title, view="pick_view") -> alt.LayerChart:
    scale = (
        alt.Scale(scheme="viridis", domain=list(domain)) if domain else alt.Scale(scheme="viridis")
    )
    pick = alt.selection_point(name="pick", fields=["sample"], on="click")
    y = alt.Y(
        "row:Q",
        title=y_title,
        scale=alt.Scale(domain=[rows, 0], nice=False),
        axis=alt.Axis(labels=False, ticks=False),
    )
    x = alt.X("step:Q", title="step", scale=alt.Scale(domain=[x0, x1], nice=False))
    base = alt.Chart()
    noisy_tip = alt.Tooltip("noisy:Q", title="noisy fraction", format=".2f")
    if not binned:  # one sample per row: its label is noisy or not
        base = base.transform_calculate(noisy_label="datum.noisy > 0.5 ? 'yes' : 'no'")
        noisy_tip = alt.Tooltip("noisy_label:N", title="noisy label")
    tip = [
        alt.Tooltip("sample:Q", title="first sample id" if binned else "sample id"),
        alt.Tooltip("label:Q"),
        alt.Tooltip("step:Q"),
        alt.Tooltip("value:Q", title=label, format=".4g"),
        noisy_tip,
    ]
    heat = (
        base.transform_filter(alt.datum.kind == "cell")
        .mark_rect()
        .encode(
            x=x,
            x2="step_end:Q",
            y=y,
            y2="row_end:Q",
            # legend below, not right: the cursor strip above must see the same plot width
            color=alt.Color("value:Q", title=label, scale=scale,
                            legend=alt.Legend(orient="bottom", gradientLength=320)),
            tooltip=tip,
        )
        .add_params(pick)
        .properties(name=view)
    )
    noisy_layer = (
        base.transform_filter(alt.datum.kind == "noisy")
        .mark_rect(color="#d62728")
        .encode(
            x="step:Q",
            x2="step_end:Q",
            y="row:Q",
            y2="row_end:Q",
            opacity=alt.Opacity(
                "noisy:Q", scale=alt.Scale(domain=[0, 1], range=[0.25, 1]), legend=None
            ),
            tooltip=[
                alt.Tooltip("sample:Q", title="sample id"),
                alt.Tooltip("noisy:Q", title="noisy fraction", format=".2f"),
            ],
        )
    )
    layer = alt.layer(heat, noisy_layer).properties(height=height)
    return layer.properties(title=f"{label} per sample over training") if title else layer


def histogram_chart(
    run: RunLike,
    metric: str = "m_norm",
    step_index: int = -1,
    bins: int = 30,
    height: int = 240,
    as_spec: bool = False,
):
    """Distribution of a per-sample metric at one checkpoint, stacked by class.

    Bin edges are fixed over the whole run (:func:`app.tables.scrub.histogram_edges`) so
    scrubbing moves the bars, not the axis."""
    params, edges = _histogram_params(run, metric, bins, height)
    data = histogram_frame(run, metric, [step_index], edges).drop(columns="checkpoint")
    return _finish(_histogram_template, params, data, as_spec)


def _histogram_params(run: RunLike, metric: str, bins: int,
                      height: int) -> tuple[dict, np.ndarray]:
    edges = histogram_edges(run, metric, bins)
    params = {
        "label": SAMPLE_METRICS.get(metric, metric),
        "lo": float(edges[0]),
        "hi": float(edges[-1]),
        "step": float(edges[1] - edges[0]),
        "k": n_classes(run),
        "height": height,
    }
    return params, edges


@functools.lru_cache(maxsize=64)
def _histogram_template(label, lo, hi, step, k, height, at=None) -> alt.Chart:
    classes = [str(i) for i in range(k)]
    base = alt.Chart() if at is None else alt.Chart().transform_filter({"param": at,
                                                                        "empty": False})
    return (
        base
        .mark_bar()
        .encode(
            # plain quantitative bars from lo to hi (not bin=binned, whose ticks sit on bin
            # edges such as 0.07, 0.13, ...): the axis gets round tick values
            x=alt.X("lo:Q", title=label, scale=alt.Scale(domain=[lo, hi], nice=False)),
            x2="hi:Q",
            y=alt.Y("sum(count):Q", title="samples", stack="zero"),
            color=alt.Color(
                "class:N",
                scale=alt.Scale(domain=classes, range=_palette(k)),
                legend=alt.Legend(orient="right", columns=1 if k <= 10 else 2),
            ),
            tooltip=[
                alt.Tooltip("class:N"),
                alt.Tooltip("lo:Q", format=".3g", title="from"),
                alt.Tooltip("hi:Q", format=".3g", title="to"),
                alt.Tooltip("count:Q"),
            ],
        )
        .properties(height=height, title=f"{label} at the scrubbed step, by class")
    )


def scatter_chart(
    run: RunLike,
    step_index: int = -1,
    color_by: str = "class",
    max_points: int = MAX_MARKS // 2,
    height: int = 320,
    as_spec: bool = False,
):
    """λ*(x) against ‖M(x)‖ per sample at a checkpoint, with the diagonal λ* = ‖M‖: the
    theorem's bound λ* ≤ ‖M‖ says every point lies on or below it. Click selects a sample."""
    points = point_frame(run, [step_index], max_points).drop(columns="checkpoint")
    return _finish(_scatter_template, *_scatter_parts(run, points, color_by, height), as_spec)


def _scatter_parts(run: RunLike, points: pd.DataFrame, color_by: str,
                   height: int) -> tuple[dict, pd.DataFrame]:
    """Params and data of the scatter: the points plus the diagonal from 0 to the largest
    of ‖M‖'s natural bound, ‖M‖ and λ* over the points (kind "point" / "diag")."""
    top = metric_domain(run, "m_norm")[1]
    lim = float(max(top, points["m_norm"].max() if len(points) else 0.0))
    lim = float(max(lim, points["lambda_star"].max() if len(points) else 0.0))
    df = points.assign(
        kind="point",
        cls=points["label"].astype(str),
        noisy_label=np.where(points["noisy"], "noisy", "clean"),
    )
    diag = pd.DataFrame({"kind": "diag", "m_norm": [0.0, lim], "lambda_star": [0.0, lim]})
    data = pd.concat([df, diag], ignore_index=True)
    for col in ("cls", "noisy_label"):
        data[col] = data[col].fillna("")
    return {"lim": lim, "color_by": color_by, "k": n_classes(run), "height": height}, _compact(data)


def _compact(data: pd.DataFrame) -> pd.DataFrame:
    """The frame as the browser gets it, smaller (Arrow): text columns as categories, other
    float64 columns as float32 (ids and labels below 2²⁴ stay exact)."""
    out = data.copy()
    for col in out.columns:
        if pd.api.types.is_float_dtype(out[col]) and out[col].dtype == np.float64:
            out[col] = out[col].astype(np.float32)
        elif pd.api.types.is_string_dtype(out[col]) and not pd.api.types.is_bool_dtype(out[col]):
            if out[col].map(type).eq(str).all():
                out[col] = out[col].astype("category")
    return out


@functools.lru_cache(maxsize=64)
def _scatter_template(lim, color_by, k, height, at=None, view="pick_view") -> alt.LayerChart:
    pick = alt.selection_point(name="pick", fields=["sample"], on="click")
    if color_by == "noisy":
        color = alt.Color(
            "noisy_label:N",
            title="label",
            scale=alt.Scale(domain=["clean", "noisy"], range=["#4c78a8", "#d62728"]),
        )
    else:
        classes = [str(i) for i in range(k)]
        color = alt.Color(
            "cls:N", title="class", scale=alt.Scale(domain=classes, range=_palette(k))
        )
    base = alt.Chart()
    sc = alt.Scale(domain=[0, lim], nice=False)
    points = base.transform_filter(alt.datum.kind == "point")
    if at is not None:
        points = points.transform_filter({"param": at, "empty": False})
    points = (
        points
        .mark_circle(size=22, opacity=0.7, clip=True)
        .encode(
            x=alt.X("m_norm:Q", title="‖M(x)‖", scale=sc),
            y=alt.Y("lambda_star:Q", title="λ*(x)", scale=sc),
            color=color,
            tooltip=[
                alt.Tooltip("sample:Q", title="sample id"),
                alt.Tooltip("label:Q"),
                alt.Tooltip("noisy:N", title="noisy label"),
                alt.Tooltip("correct:N"),
                alt.Tooltip("m_norm:Q", title="‖M‖", format=".4g"),
                alt.Tooltip("lambda_star:Q", title="λ*", format=".4g"),
                alt.Tooltip("jac_spectral_sq:Q", title="‖J‖²", format=".4g"),
                alt.Tooltip("p_max:Q", format=".3f"),
            ],
        )
        .add_params(pick)
        .properties(name=view)
    )
    line = (
        base.transform_filter(alt.datum.kind == "diag")
        .mark_line(color="#444", strokeDash=[5, 4])
        .encode(x="m_norm:Q", y="lambda_star:Q")
    )
    return alt.layer(line, points).properties(height=height, title="λ* against ‖M‖ per sample")
