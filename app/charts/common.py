"""What every chart of :mod:`app.charts` shares: palette, phase shading, hover rule, line
layers, the step axis, and the one chart idiom.

The idiom: a chart function computes one top-level DataFrame (a ``kind`` column tells
the layers which rows are theirs) and the hashable parameters of its look; a template
cached on those parameters builds the data-free chart; :func:`_finish` attaches the data,
or with ``as_spec`` returns (cached spec, data). The spec therefore does not depend on
the data, so a live view can replace the data without rebuilding the chart
(:func:`split_spec`). No streamlit here.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Mapping, Sequence

import altair as alt
import numpy as np
import pandas as pd

from app.tables.access import RunOrScalars, config_value
from ijr_core.protocol import RunLike

# Heatmaps carry up to HEATMAP_MARKS rows; Altair's default 5000-row guard would stop
# them in notebooks and reports (Streamlit uses its own data transformer).
alt.data_transformers.disable_max_rows()

MAX_MARKS = 50_000


# Font sizes for a projector at the back of a room (the app's theme uses 12 px ticks and
# legends); the app merges this into every chart's config (app.views.readable).
READABLE_CONFIG = {
    "axis": {"labelFontSize": 14, "titleFontSize": 15},
    "legend": {"labelFontSize": 15, "titleFontSize": 14, "symbolSize": 140},
    "title": {"fontSize": 18},
}


PHASE_COLORS = {"I": "#c6dbef", "II": "#fdd0a2", "III": "#c7e9c0", "U": "#fcbba1"}


PHASE_NAMES = {"I": "I beginning", "II": "II ARP", "III": "III later", "U": "unstable ≫ 2/η"}


CATEGORY10 = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
)


def _palette(k: int) -> list[str]:
    """k colours: Category10, cycled."""
    return [CATEGORY10[i % len(CATEGORY10)] for i in range(k)]


def run_colors(labels: Sequence[str]) -> list[str]:
    """One colour per label (Category10, cycled)."""
    return _palette(len(labels))


def probe_mode_label(runs: Sequence[RunLike]) -> str:
    """"probe mode: train" (or the modes of several runs): which function the curvature of
    a chart that compares with 2/η belongs to (ijr_core/model_view.py)."""
    modes = []
    for run in runs:
        mode = (run.meta or {}).get("probe_mode") or config_value(run, "probe_mode")
        if mode and mode not in modes:
            modes.append(str(mode))
    if not modes:
        return "probe mode not recorded"
    return ("probe mode: " if len(modes) == 1 else "probe modes: ") + ", ".join(modes)


def _column(scalars: Mapping[str, np.ndarray], name: str, n: int) -> np.ndarray:
    col = scalars.get(name)
    return np.full(n, np.nan) if col is None else np.asarray(col, dtype=float)


def _long(
    scalars: Mapping[str, np.ndarray], series: Sequence[tuple[str, str, str]]
) -> pd.DataFrame:
    """Rows (kind="line", key, series, step, value) of the named scalars, NaNs dropped."""
    steps = np.asarray(scalars.get("step", []), dtype=float)
    frames = []
    for key, name, label in series:
        vals = _column(scalars, name, len(steps))
        ok = np.isfinite(vals)
        frames.append(
            pd.DataFrame(
                {
                    "kind": "line",
                    "key": key,
                    "series": label,
                    "step": steps[ok],
                    "value": vals[ok],
                }
            )
        )
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def phase_frame(spans: Sequence[tuple[str, int, int]]) -> pd.DataFrame:
    """Rows (kind="phase", phase, start, end) of the phase spans (phase, start, end)."""
    rows = [
        {"kind": "phase", "phase": PHASE_NAMES.get(p, p), "start": float(a), "end": float(b)}
        for p, a, b in spans
    ]
    return pd.DataFrame(rows, columns=["kind", "phase", "start", "end"])


def _spans(run: RunOrScalars, spans: Sequence | None) -> Sequence:
    """``spans`` when given, else the run's phase spans (none for a bare scalars mapping,
    or when the phases cannot be computed)."""
    if spans is not None:
        return spans
    if isinstance(run, Mapping):
        return []
    try:
        return run.phase_spans()
    except (KeyError, ValueError):
        return []


def _frame(*parts: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    """Concatenate the parts with a fixed column set (missing -> NaN / None)."""
    parts = [p.reindex(columns=columns) for p in parts if len(p)]
    if not parts:
        return pd.DataFrame({c: pd.Series(dtype=str if c == "kind" else float) for c in columns})
    out = pd.concat(parts, ignore_index=True)
    for col in out.columns:
        if not pd.api.types.is_numeric_dtype(out[col]):
            out[col] = out[col].fillna("")  # NaN is not valid JSON in a spec
    return out


def _phase_layer(base: alt.Chart) -> alt.Chart:
    names = [PHASE_NAMES[p] for p in PHASE_COLORS]
    return (
        base.transform_filter(alt.datum.kind == "phase")
        .mark_rect(opacity=0.45)
        .encode(
            x=alt.X("start:Q"),
            x2="end:Q",
            fill=alt.Fill(
                "phase:N",
                scale=alt.Scale(domain=names, range=list(PHASE_COLORS.values())),
                legend=alt.Legend(title="phase", orient="top"),
            ),
            tooltip=[
                alt.Tooltip("phase:N"),
                alt.Tooltip("start:Q", title="from step"),
                alt.Tooltip("end:Q", title="to step"),
            ],
        )
    )


def _hover_layers(base: alt.Chart, keys: Sequence[tuple[str, str]], name: str) -> list[alt.Chart]:
    """A vertical rule at the step nearest the pointer with every series' value there."""
    hover = alt.selection_point(
        name=name,
        fields=["step"],
        nearest=True,
        on="pointerover",
        clear="pointerout",
        empty=False,
    )
    rows = (alt.datum.kind == "line") | (alt.datum.kind == "eta")  # 2/η shows up too
    pivot = base.transform_filter(rows).transform_pivot(
        "key",
        value="value",
        groupby=["step"],
    )
    tips = [alt.Tooltip("step:Q")] + [
        alt.Tooltip(f"{k}:Q", title=label, format=".4g") for k, label in keys
    ]
    rule = (
        pivot.mark_rule(color="#555")
        .encode(
            x="step:Q",
            opacity=alt.condition(hover, alt.value(0.6), alt.value(0)),
            tooltip=tips,
        )
        .add_params(hover)
        .properties(name=f"{name}_view")  # a fixed view name keeps the spec data-independent
    )
    return [rule]


def _line_layers(
    base: alt.Chart, labels: list[str], colors: list[str], y: alt.Y, dashed: Sequence[str] = (),
    legend: bool = True,
) -> list[alt.Chart]:
    color = alt.Color(
        "series:N",
        scale=alt.Scale(domain=labels, range=colors),
        legend=alt.Legend(title=None, orient="top") if legend else None,
    )
    dash = alt.StrokeDash(
        "series:N",
        scale=alt.Scale(domain=labels, range=[[6, 3] if s in dashed else [1, 0] for s in labels]),
        legend=None,
    )
    lines = base.transform_filter(alt.datum.kind == "line")
    line = lines.mark_line(strokeWidth=2).encode(
        x=alt.X("step:Q"),
        y=y,
        color=color,
        strokeDash=dash,
    )
    points = lines.mark_circle(size=16).encode(
        x="step:Q",
        y=y,
        color=color,
        tooltip=[
            alt.Tooltip("series:N"),
            alt.Tooltip("step:Q"),
            alt.Tooltip("value:Q", format=".4g"),
        ],
    )
    return [line, points]


def _x_domain(domain: tuple) -> alt.X:
    # about ten ticks whatever the width: Vega's width/40 gave 31 labels on a 600-step
    # report chart, and the last (flush with the axis end) ran into its neighbour ("580600")
    return alt.X("step:Q", title="step", scale=alt.Scale(domain=list(domain), nice=False),
                 axis=alt.Axis(tickCount=10, labelOverlap=True))


def split_spec(chart: alt.TopLevelMixin) -> tuple[dict, pd.DataFrame]:
    """(Vega-Lite spec without data, the chart's top-level DataFrame).

    The spec is identical for any data of the same shape of chart, so a live view can
    keep the spec and swap only the data (Streamlit then updates the view in place)."""
    return _spec_dict(chart), chart.data


def _spec_dict(chart: alt.TopLevelMixin) -> dict:
    spec = chart.properties(data=alt.Data(name="table")).to_dict(validate=False)
    spec.pop("datasets", None)
    spec.pop("data", None)
    spec.get("config", {}).pop("view", None)
    if not spec.get("config"):
        spec.pop("config", None)
    return spec


@functools.lru_cache(maxsize=128)
def _cached_spec(template: Callable, params: tuple) -> str:
    return json.dumps(_spec_dict(template(**dict(params))))


def _finish(template: Callable, params: dict, data: pd.DataFrame, as_spec: bool):
    """The chart (template with the data attached) or, with ``as_spec``, (spec, data) where
    the spec comes from a cache: scrubbing then rebuilds only the data."""
    key = tuple(sorted(params.items()))
    if as_spec:
        return json.loads(_cached_spec(template, key)), data
    return template(**params).properties(data=data)
