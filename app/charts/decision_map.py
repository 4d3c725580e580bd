"""The 2-D decision map: the input plane of a 2-D dataset coloured by ‖M‖ of the model's
prediction, its decision boundaries and the training points (Inspect, for the toy
datasets). Pure ``(grid, points) -> altair``; :mod:`app.maps` computes the grid."""

from __future__ import annotations

from collections.abc import Mapping

import altair as alt
import numpy as np
import pandas as pd

from app.charts.common import _palette


def decision_map_chart(
    grid: Mapping[str, np.ndarray],
    points: Mapping[str, np.ndarray] | None = None,
    height: int = 360,
) -> alt.LayerChart:
    """The 2-D input plane coloured by ‖M‖ of the model's prediction, decision boundaries
    (cells whose predicted class differs from a neighbour's) in black and the training
    points coloured by label (noisy labels drawn as crosses).

    grid: xs (G,), ys (H,), m (H, G) ‖M‖, pred (H, G) predicted class.
    points: x (N,), y (N,), label (N,), optional noisy (N,) bool, sample (N,) ids."""
    xs, ys = np.asarray(grid["xs"], float), np.asarray(grid["ys"], float)
    m, pred = np.asarray(grid["m"], float), np.asarray(grid["pred"])
    dx = float(xs[1] - xs[0]) if xs.size > 1 else 1.0
    dy = float(ys[1] - ys[0]) if ys.size > 1 else 1.0
    gx, gy = np.meshgrid(xs, ys)
    cells = pd.DataFrame(
        {
            "kind": "cell",
            "x": gx.ravel() - dx / 2,
            "x2": gx.ravel() + dx / 2,
            "y": gy.ravel() - dy / 2,
            "y2": gy.ravel() + dy / 2,
            "m": m.ravel(),
            "pred": pred.ravel().astype(int),
        }
    )
    edge = np.zeros_like(pred, dtype=bool)
    edge[:, 1:] |= pred[:, 1:] != pred[:, :-1]
    edge[1:, :] |= pred[1:, :] != pred[:-1, :]
    bound = pd.DataFrame({"kind": "edge", "x": gx[edge] - dx / 2, "y": gy[edge] - dy / 2})
    parts = [cells, bound]
    k = int(max(pred.max() + 1 if pred.size else 2, 2))
    if points is not None:
        lab = np.asarray(points["label"]).astype(int)
        k = max(k, int(lab.max()) + 1 if lab.size else 2)
        noisy = np.asarray(points.get("noisy", np.zeros(len(lab), bool)), dtype=bool)
        parts.append(
            pd.DataFrame(
                {
                    "kind": "point",
                    "x": np.asarray(points["x"], float),
                    "y": np.asarray(points["y"], float),
                    "label": lab.astype(str),
                    "noisy": np.where(noisy, "noisy", "clean"),
                    "sample": np.asarray(points.get("sample", np.arange(len(lab)))),
                }
            )
        )
    data = pd.concat(parts, ignore_index=True)
    sx = alt.Scale(domain=[float(xs[0] - dx / 2), float(xs[-1] + dx / 2)], nice=False)
    sy = alt.Scale(domain=[float(ys[0] - dy / 2), float(ys[-1] + dy / 2)], nice=False)
    base = alt.Chart(data)
    greys = alt.Scale(scheme="greys", domain=[0, 0.5])
    heat = (
        base.transform_filter(alt.datum.kind == "cell")
        .transform_calculate(edge="datum.m")
        .mark_rect(strokeWidth=0.5)
        .encode(
            x=alt.X("x:Q", title="x₁", scale=sx),
            x2="x2:Q",
            y=alt.Y("y:Q", title="x₂", scale=sy),
            y2="y2:Q",
            color=alt.Color("m:Q", title="‖M‖", scale=greys),
            # a stroke of the cell's own grey hides the white anti-aliasing seams; it
            # encodes a copy of m so that the legend-less channel does not hide the legend
            stroke=alt.Stroke("edge:Q", scale=greys, legend=None),
            tooltip=[
                alt.Tooltip("m:Q", title="‖M‖", format=".3f"),
                alt.Tooltip("pred:Q", title="prediction"),
            ],
        )
    )
    edges = (
        base.transform_filter(alt.datum.kind == "edge")
        .mark_square(size=6, color="black")
        .encode(
            x="x:Q",
            y="y:Q",
        )
    )
    classes = [str(i) for i in range(k)]
    pts = (
        base.transform_filter(alt.datum.kind == "point")
        .mark_point(filled=True, size=28, clip=True)
        .encode(
            x="x:Q",
            y="y:Q",
            color=alt.Color(
                "label:N", title="label", scale=alt.Scale(domain=classes, range=_palette(k))
            ),
            shape=alt.Shape(
                "noisy:N",
                scale=alt.Scale(domain=["clean", "noisy"], range=["circle", "cross"]),
                title="label noise",
            ),
            tooltip=[
                alt.Tooltip("sample:Q", title="sample id"),
                alt.Tooltip("label:N"),
                alt.Tooltip("noisy:N"),
            ],
        )
    )
    return (
        alt.layer(heat, edges, pts)
        .resolve_scale(color="independent")
        .properties(
            height=height,
            title="Input plane: ‖M‖ of the prediction (dark = impure), boundaries",
        )
    )
