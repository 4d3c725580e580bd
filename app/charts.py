"""Altair charts of a run: pure functions, data in and ``altair`` chart out.

No streamlit here: the same functions render in the app, in Jupyter and in HTML reports.
They take a :class:`ijr_core.run.Run` (or any object with the same attributes:
``config``, ``scalars``, ``samples``, ``sample_steps``, ``sample_ids``, ``sample_labels``,
``sample_noisy``, ``phase_spans()``) or the plain arrays it carries.

Every chart keeps all its data in one top-level DataFrame with a ``kind`` column, and
each layer selects its rows with a filter. The spec therefore does not depend on the
data, so a live view can replace the data without rebuilding the chart
(see :func:`split_spec`). Symbols follow SCIENCE.md: ‖H‖ sharpness, ‖G‖ Gauss–Newton
norm, λ* the per-sample weight of the identity ‖G‖ = ⟨λ*‖J‖²⟩, ‖M‖ = λ_max(diag p − ppᵀ).
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import altair as alt
import numpy as np
import pandas as pd

# Heatmaps carry up to HEATMAP_MARKS rows; Altair's default 5000-row guard would stop
# them in notebooks and reports (Streamlit uses its own data transformer).
alt.data_transformers.disable_max_rows()

MAX_MARKS = 50_000
HEATMAP_MARKS = 40_000

# Font sizes for a projector at the back of a room (the app's theme uses 12 px ticks and
# legends); the app merges this into every chart's config (app.views.readable).
READABLE_CONFIG = {
    "axis": {"labelFontSize": 14, "titleFontSize": 15},
    "legend": {"labelFontSize": 15, "titleFontSize": 14, "symbolSize": 140},
    "title": {"fontSize": 18},
}

PHASE_COLORS = {"I": "#c6dbef", "II": "#fdd0a2", "III": "#c7e9c0", "U": "#fcbba1"}
PHASE_NAMES = {"I": "I beginning", "II": "II ARP", "III": "III later", "U": "unstable ≫ 2/η"}

# key -> (scalar name, legend label, colour); top-k eigenvalues beyond the first are added.
SHARPNESS_SERIES = (
    ("H", "sharpness", "‖H‖", "#1f77b4"),
    ("G", "gn_sharpness", "‖G‖", "#ff7f0e"),
    ("LJ", "lambda_star_jac", "⟨λ*‖J‖²⟩", "#2ca02c"),
    ("two_eta", "two_over_eta", "2/η", "#d62728"),
)
SAMPLE_METRICS = {
    "m_norm": "‖M‖",
    "lambda_star": "λ*",
    "jac_spectral_sq": "‖J‖²",
    "jac_frobenius_sq": "‖J‖² Frobenius",
    "p_max": "p_max",
    "correct": "correct",
}
HEATMAP_ORDERS = ("class", "final impurity", "first correct", "noisy first", "sample id")
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


# --------------------------------------------------------------------------- helpers


def _scalars(run: Any) -> Mapping[str, np.ndarray]:
    return run if isinstance(run, Mapping) else run.scalars


def _cfg(run: Any, name: str, default: Any = None) -> Any:
    return getattr(getattr(run, "config", None), name, default)


def probe_mode_label(runs: Sequence[Any]) -> str:
    """"probe mode: train" (or the modes of several runs): which function the curvature of
    a chart that compares with 2/η belongs to (ijr_core/model_view.py)."""
    modes = []
    for run in runs:
        meta = getattr(run, "meta", None) or {}
        mode = meta.get("probe_mode") or _cfg(run, "probe_mode", None)
        if mode and mode not in modes:
            modes.append(str(mode))
    if not modes:
        return "probe mode not recorded"
    return ("probe mode: " if len(modes) == 1 else "probe modes: ") + ", ".join(modes)


def n_classes(run: Any) -> int:
    """K of a run: from its metadata, else its config, else the largest label + 1."""
    meta = getattr(run, "meta", None) or {}
    if meta.get("n_classes"):
        return int(meta["n_classes"])
    labels = np.asarray(getattr(run, "sample_labels", []))
    guess = int(labels.max()) + 1 if labels.size else 0
    if _cfg(run, "dataset") in ("blobs", "spirals"):
        return max(int(_cfg(run, "n_classes", 2)), guess)
    return max(guess, 2)


def step_domain(run: Any) -> list[float]:
    """x-domain of the step axis: [0, configured steps] so live charts do not rescale."""
    steps = _cfg(run, "steps")
    recorded = np.asarray(_scalars(run).get("step", [0]), dtype=float)
    last = float(recorded.max()) if recorded.size else 0.0
    return [0.0, float(max(steps or 0, last, 1))]


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


def _spans(run: Any, spans: Sequence | None) -> Sequence:
    if spans is not None:
        return spans
    fn = getattr(run, "phase_spans", None)
    if fn is None:
        return []
    try:
        return fn()
    except (KeyError, ValueError):
        return []


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
    base: alt.Chart, labels: list[str], colors: list[str], y: alt.Y, dashed: Sequence[str] = ()
) -> list[alt.Chart]:
    color = alt.Color(
        "series:N",
        scale=alt.Scale(domain=labels, range=colors),
        legend=alt.Legend(title=None, orient="top"),
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


def split_spec(chart: alt.TopLevelMixin) -> tuple[dict, pd.DataFrame]:
    """(Vega-Lite spec without data, the chart's top-level DataFrame).

    The spec is identical for any data of the same shape of chart, so a live view can
    keep the spec and swap only the data (Streamlit then updates the view in place)."""
    return _spec_dict(chart), chart.data


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


# --------------------------------------------------------------------------- scalar charts

_SCALAR_COLUMNS = ("kind", "key", "series", "step", "value", "phase", "start", "end")


def sharpness_series(scalars: Mapping[str, np.ndarray]) -> list[tuple[str, str, str, str]]:
    """(key, scalar name, label, colour) of the sharpness panel, top-k eigenvalues included."""
    out = list(SHARPNESS_SERIES[:1])
    k = 2
    while f"sharpness_{k}" in scalars:
        out.append((f"H{k}", f"sharpness_{k}", f"‖H‖ λ{k}", "#9ecae1"))
        k += 1
    return out + list(SHARPNESS_SERIES[1:])


def _x_domain(domain: tuple) -> alt.X:
    return alt.X("step:Q", title="step", scale=alt.Scale(domain=list(domain), nice=False))


def sharpness_chart(
    run: Any, spans: Sequence | None = None, height: int = 280, as_spec: bool = False
):
    """‖H‖ (top-k), ‖G‖, ⟨λ*‖J‖²⟩ and the 2/η line over steps, phases I/II/III shaded.

    2/η is the recorded ``two_over_eta`` scalar drawn as a step function (step-after), so a
    learning rate changed mid-run shows as a jump of the line at the probe after the change.
    While a run is live the line runs on to the end of the step axis (its last value, a
    row of kind "eta_end") so the target ‖H‖ climbs towards is visible from the start,
    and the y axis leaves headroom above 2/η (an invisible row of kind "pad")."""
    scalars = _scalars(run)
    series = sharpness_series(scalars)
    domain = tuple(step_domain(run))
    lines = _long(scalars, [(k, n, lab) for k, n, lab, _ in series if k != "two_eta"])
    eta = _long(scalars, [("two_eta", "two_over_eta", "2/η")]).assign(kind="eta")
    extra = []
    if len(eta):
        if float(eta["step"].iloc[-1]) < domain[1]:
            end = {"kind": "eta_end", "key": "two_eta", "series": "2/η", "step": domain[1]}
            extra.append(pd.DataFrame([{**end, "value": float(eta["value"].iloc[-1])}]))
        top = 1.12 * float(eta["value"].max())
        extra.append(pd.DataFrame({"kind": ["pad"], "step": [domain[0]], "value": [top]}))
    data = _frame(lines, eta, *extra, phase_frame(_spans(run, spans)), columns=_SCALAR_COLUMNS)
    params = {
        "series": tuple((k, lab, c) for k, _, lab, c in series),
        "domain": domain,
        "height": height,
        "mode": probe_mode_label([run]) if not isinstance(run, Mapping) else "",
    }
    return _finish(_sharpness_template, params, data, as_spec)


@functools.lru_cache(maxsize=32)
def _sharpness_template(series: tuple, domain: tuple, height: int,
                        mode: str = "") -> alt.LayerChart:
    labels = [lab for _, lab, _ in series]
    colors = [c for *_, c in series]
    base = alt.Chart()
    y = alt.Y("value:Q", title="top eigenvalue", scale=alt.Scale(zero=True))
    eta_line = (
        base.transform_filter((alt.datum.kind == "eta") | (alt.datum.kind == "eta_end"))
        .mark_line(interpolate="step-after", strokeDash=[6, 3], strokeWidth=2)
        .encode(
            x="step:Q",
            y=y,
            color=alt.Color(
                "series:N",
                scale=alt.Scale(domain=labels, range=colors),
                legend=alt.Legend(title=None, orient="top"),
            ),
            tooltip=[alt.Tooltip("step:Q"), alt.Tooltip("value:Q", title="2/η", format=".4g")],
        )
    )
    pad = (  # headroom above 2/η: an invisible point at 1.12 · max 2/η
        base.transform_filter(alt.datum.kind == "pad").mark_point(opacity=0).encode(x="step:Q", y=y)
    )
    # ⟨λ*‖J‖²⟩ = ‖G‖ by construction: dashed on top, so the ‖G‖ line shows through the gaps
    lj = [lab for k, lab, _ in series if k == "LJ"]
    layers = [_phase_layer(base), *_line_layers(base, labels, colors, y, dashed=lj), eta_line,
              pad]
    keys = [(k, lab) for k, lab, _ in series]
    layers += _hover_layers(base, keys, "hover_sharpness")
    return (
        alt.layer(*layers)
        .encode(x=_x_domain(domain))
        .properties(height=height, title="Sharpness against the edge of stability 2/η"
                    + (f" ({mode})" if mode else ""))
    )


def m_norm_chart(run: Any, spans: Sequence | None = None, height: int = 240, as_spec: bool = False):
    """⟨‖M‖⟩ over steps (the inverted U), phases shaded, the uniform-prediction level 1/K."""
    scalars = _scalars(run)
    k = n_classes(run)
    lines = _long(scalars, [("M", "m_norm_mean", "⟨‖M‖⟩")])
    level = pd.DataFrame({"kind": ["level"], "value": [1.0 / k], "series": [f"1/K = {1 / k:.3g}"]})
    data = _frame(lines, level, phase_frame(_spans(run, spans)), columns=_SCALAR_COLUMNS)
    params = {
        "top": 1.05 if _cfg(run, "loss") == "mse" else 0.5,
        "domain": tuple(step_domain(run)),
        "height": height,
    }
    return _finish(_m_norm_template, params, data, as_spec)


@functools.lru_cache(maxsize=32)
def _m_norm_template(top: float, domain: tuple, height: int) -> alt.LayerChart:
    y = alt.Y("value:Q", title="⟨‖M‖⟩", scale=alt.Scale(domain=[0, top]))
    base = alt.Chart()
    rule = (
        base.transform_filter(alt.datum.kind == "level")
        .mark_rule(strokeDash=[4, 4], color="#666")
        .encode(y="value:Q", tooltip=[alt.Tooltip("series:N", title="uniform p")])
    )
    text = (
        base.transform_filter(alt.datum.kind == "level")
        .mark_text(align="left", dx=4, dy=-6, color="#444")
        .encode(y="value:Q", x=alt.value(2), text="series:N")
    )
    layers = [_phase_layer(base), *_line_layers(base, ["⟨‖M‖⟩"], ["#9467bd"], y), rule, text]
    layers += _hover_layers(base, [("M", "⟨‖M‖⟩")], "hover_m")
    return (
        alt.layer(*layers)
        .encode(x=_x_domain(domain))
        .properties(height=height, title="Mean impurity ⟨‖M‖⟩")
    )


JACOBIAN_SERIES = (
    ("JS", "jac_spectral_sq_mean", "⟨‖J‖²⟩"),
    ("JF", "jac_frobenius_sq_mean", "⟨‖J‖²⟩ Frobenius"),
)
LOSS_SERIES = (("train", "train_loss", "train"), ("test", "test_loss", "test"))
ACCURACY_SERIES = (("train", "train_acc", "train"), ("test", "test_acc", "test"))


def _positive(data: pd.DataFrame) -> pd.DataFrame:
    """Drop line rows a log scale cannot show (value ≤ 0)."""
    return data[~((data["kind"] == "line") & (data["value"] <= 0))].reset_index(drop=True)


# The charts of a few named series: series, colors, y title, chart title, hover parameter.
PAIR_CHARTS = {
    "jacobian": (
        JACOBIAN_SERIES,
        ("#8c564b", "#e377c2"),
        "Jacobian norm²",
        "Logit-Jacobian norms",
        "hover_j",
    ),
    "loss": (LOSS_SERIES, ("#1f77b4", "#ff7f0e"), "loss", "Loss", "hover_loss"),
    "accuracy": (ACCURACY_SERIES, ("#1f77b4", "#ff7f0e"), "accuracy", "Accuracy", "hover_acc"),
}


def jacobian_chart(run: Any, log: bool = False, height: int = 240, as_spec: bool = False):
    """⟨‖J‖²⟩ (spectral, λ_max(JᵀJ)) and ⟨‖J‖_F²⟩ (tr JᵀJ) over steps; optional log y."""
    return _pair_chart(run, "jacobian", height, as_spec, log=log)


def loss_chart(run: Any, log: bool = True, height: int = 220, as_spec: bool = False):
    """Train and test loss over steps (log y by default: catapult spikes stay readable)."""
    return _pair_chart(run, "loss", height, as_spec, log=log)


def accuracy_chart(run: Any, height: int = 220, as_spec: bool = False):
    """Train and test accuracy over steps, y fixed to [0, 1]."""
    return _pair_chart(run, "accuracy", height, as_spec, y_domain=(0, 1))


# A log axis labelled at 1, 2 and 5 × 10^k, from 1000 on in SI form (20k, not "20,000"
# beside "10,000"), overlapping labels dropped: Vega's default labels every tick it draws.
LOG_AXIS = alt.Axis(
    labelOverlap="greedy",
    labelExpr="indexof([1, 2, 5], round(datum.value / pow(10, floor(log(datum.value) / LN10 "
              "+ 1e-9)))) < 0 ? '' : datum.value >= 1000 ? format(datum.value, '~s') "
              ": format(datum.value, '~g')",
)


def _pair_chart(run: Any, kind: str, height: int, as_spec: bool, log=False, y_domain=None):
    """The PAIR_CHARTS ``kind`` of ``run`` over steps (see :func:`_pair_template`); on a log
    y scale the values ≤ 0 are dropped."""
    series, colors, y_title, title, hover = PAIR_CHARTS[kind]
    data = _frame(_long(_scalars(run), series), columns=_SCALAR_COLUMNS)
    data = _positive(data) if log else data
    params = {
        "series": series,
        "colors": colors,
        "y_title": y_title,
        "log": log,
        "y_domain": y_domain,
        "title": title,
        "hover": hover,
        "domain": tuple(step_domain(run)),
        "height": height,
    }
    return _finish(_pair_template, params, data, as_spec)


@functools.lru_cache(maxsize=64)
def _pair_template(series, colors, y_title, log, y_domain, title, hover, domain, height):
    """Line chart of a few named series (train/test, spectral/Frobenius) with hover."""
    axis = alt.Axis()
    if log:
        scale = alt.Scale(type="log")
        axis = LOG_AXIS
    elif y_domain is not None:
        scale = alt.Scale(domain=list(y_domain))
    else:
        scale = alt.Scale(zero=True)
    y = alt.Y("value:Q", title=y_title, scale=scale, axis=axis)
    base = alt.Chart()
    labels = [lab for *_, lab in series]
    dashed = ["test"] if "test" in labels else []
    layers = _line_layers(base, labels, list(colors), y, dashed=dashed)
    layers += _hover_layers(base, [(k, lab) for k, _, lab in series], hover)
    return alt.layer(*layers).encode(x=_x_domain(domain)).properties(height=height, title=title)


# --------------------------------------------------------------------------- per-sample views


def first_correct_index(correct: np.ndarray) -> np.ndarray:
    """Per sample, the first checkpoint index with correct > 0.5 (C when never)."""
    hit = np.asarray(correct) > 0.5
    c = hit.shape[0]
    return np.where(hit.any(axis=0), hit.argmax(axis=0), c)


def sample_order(run: Any, order: str, metric: str = "m_norm") -> np.ndarray:
    """Permutation of the samples for the heatmap rows.

    class: by label, then final ‖M‖ descending; final impurity: final ‖M‖ descending;
    first correct: checkpoint of first correct classification (never = last), then label;
    noisy first: noisy labels on top, then class; sample id: ascending id."""
    samples = run.samples
    labels = np.asarray(run.sample_labels)
    final_m = np.nan_to_num(np.asarray(samples["m_norm"])[-1], nan=-1.0)
    if order == "class":
        return np.lexsort((-final_m, labels))
    if order == "final impurity":
        return np.argsort(-final_m, kind="stable")
    if order == "first correct":
        return np.lexsort((labels, first_correct_index(samples["correct"])))
    if order == "noisy first":
        return np.lexsort((-final_m, labels, ~np.asarray(run.sample_noisy, dtype=bool)))
    if order == "sample id":
        return np.argsort(np.asarray(run.sample_ids), kind="stable")
    raise ValueError(f"unknown order {order!r}; known: {', '.join(HEATMAP_ORDERS)}")


def _step_edges(steps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    steps = np.asarray(steps, dtype=float)
    if steps.size == 1:
        return steps, steps + 1.0
    gap = np.diff(steps)
    return steps, np.append(steps[1:], steps[-1] + np.median(gap))


def heatmap_bins(n_samples: int, n_checkpoints: int, max_marks: int = HEATMAP_MARKS) -> int:
    """Samples per heatmap row so that rows × checkpoints ≤ max_marks."""
    return max(1, math.ceil(n_samples * max(n_checkpoints, 1) / max_marks))


def heatmap_frame(
    run: Any, metric: str = "m_norm", order: str = "class", max_marks: int = HEATMAP_MARKS
) -> tuple[pd.DataFrame, int]:
    """(cells, samples per row): one row of cells per bin of consecutive (ordered) samples,
    the cell value the mean of the metric over the bin at that checkpoint."""
    values = np.asarray(run.samples[metric], dtype=np.float32)  # (C, S)
    c, s = values.shape
    perm = sample_order(run, order)
    b = heatmap_bins(s, c, max_marks)
    rows = math.ceil(s / b)
    pad = rows * b - s
    ordered = values[:, perm]
    if pad:
        ordered = np.concatenate([ordered, np.full((c, pad), np.nan, np.float32)], axis=1)
    with quiet_nan():
        binned = np.nanmean(ordered.reshape(c, rows, b), axis=2)  # (C, rows)
    ids = np.asarray(run.sample_ids)[perm]
    labels = np.asarray(run.sample_labels)[perm]
    noisy = np.asarray(run.sample_noisy, dtype=np.float32)[perm]
    first = np.arange(rows) * b
    noisy_frac = np.add.reduceat(noisy, first) / np.diff(np.append(first, s))
    start, end = _step_edges(run.sample_steps)
    cells = pd.DataFrame(
        {
            "kind": "cell",
            "row": np.tile(np.arange(rows, dtype=np.float32), c),
            "step": np.repeat(start, rows).astype(np.float32),
            "step_end": np.repeat(end, rows).astype(np.float32),
            "value": binned.reshape(-1),
            "sample": np.tile(ids[first], c),
            "label": np.tile(labels[first], c),
            "noisy": np.tile(noisy_frac.astype(np.float32), c),
        }
    )
    return cells, b


@contextlib.contextmanager
def quiet_nan():
    """Silences numpy's warnings about all-NaN bins or columns ('mean of empty slice',
    invalid values)."""
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


def _metric_domain(run: Any, metric: str) -> list[float] | None:
    if metric in ("p_max", "correct"):
        return [0.0, 1.0]
    if metric in ("m_norm", "lambda_star"):
        return [0.0, 1.0] if _cfg(run, "loss") == "mse" else [0.0, 0.5]
    return None


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


def heatmap_chart(
    run: Any,
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
    domain = _metric_domain(run, metric)
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
    return _finish(_heatmap_template, params, data, as_spec)


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
            "x1": float(_step_edges(steps)[1][-1])}


def heatmap_cursor_chart(
    run: Any,
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
    n = len(run.sample_ids)
    b = heatmap_bins(n, len(steps), max_marks)
    x = _heatmap_x_domain(steps, mark_noisy)
    at = float(steps[c]) if len(steps) else 0.0
    # the step number goes left of the marker in the last fifth, where it would run off
    side = "right" if at > x["x0"] + 0.8 * (x["x1"] - x["x0"]) else "left"
    data = pd.DataFrame({"step": [at], "y": [-0.8], "side": [side],
                         "text": [f"step {int(steps[c])}" if len(steps) else ""]})
    params = {"y_title": _heatmap_y_title(order, b), **x,
              "title": f"{SAMPLE_METRICS.get(metric, metric)} per sample over training"}
    return _finish(_heatmap_cursor_template, params, data, as_spec)


@functools.lru_cache(maxsize=64)
def _heatmap_cursor_template(y_title, x0, x1, title) -> alt.LayerChart:
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
    marker = base.mark_point(shape="triangle-down", size=220, filled=True, color="#222",
                             opacity=1)
    labels = [base.transform_filter(alt.datum.side == side)
              .mark_text(align=side, dx=10 if side == "left" else -10, fontSize=14, color="#222")
              .encode(text="text:N") for side in ("left", "right")]
    return alt.layer(marker, *labels).properties(height=22, title=title,
                                               view=alt.ViewBackground(stroke=None))


@functools.lru_cache(maxsize=64)
def _heatmap_template(label, y_title, binned, rows, x0, x1, domain, height,
                      title) -> alt.LayerChart:
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
        .properties(name="pick_view")
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
    run: Any,
    metric: str = "m_norm",
    step_index: int = -1,
    bins: int = 30,
    height: int = 240,
    as_spec: bool = False,
):
    """Distribution of a per-sample metric at one checkpoint, stacked by class.

    Bin edges are fixed over the whole run (0 .. max over checkpoints) so scrubbing moves
    the bars, not the axis."""
    values = np.asarray(run.samples[metric], dtype=np.float64)
    domain = _metric_domain(run, metric)
    if domain:
        lo, hi = domain
    else:
        finite = values[np.isfinite(values)]
        hi = (float(finite.max()) if finite.size else 1.0) or 1.0
        lo = 0.0 if not finite.size else min(0.0, float(finite.min()))
    edges = np.linspace(lo, hi, bins + 1)
    v = values[step_index]
    labels = np.asarray(run.sample_labels)
    idx = np.clip(np.digitize(v, edges) - 1, 0, bins - 1)
    ok = np.isfinite(v)
    k = n_classes(run)
    counts = np.zeros((bins, k), dtype=np.int64)
    np.add.at(counts, (idx[ok], np.clip(labels[ok], 0, k - 1)), 1)
    bb, kk = np.meshgrid(np.arange(bins), np.arange(k), indexing="ij")
    data = pd.DataFrame(
        {
            "lo": edges[bb.ravel()],
            "hi": edges[bb.ravel() + 1],
            "class": kk.ravel().astype(str),
            "count": counts.ravel(),
        }
    )
    data = data[data["count"] > 0].reset_index(drop=True)
    params = {
        "label": SAMPLE_METRICS.get(metric, metric),
        "lo": float(lo),
        "hi": float(hi),
        "step": float(edges[1] - edges[0]),
        "k": k,
        "height": height,
    }
    return _finish(_histogram_template, params, data, as_spec)


@functools.lru_cache(maxsize=64)
def _histogram_template(label, lo, hi, step, k, height) -> alt.Chart:
    classes = [str(i) for i in range(k)]
    return (
        alt.Chart()
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


def _palette(k: int) -> list[str]:
    return [CATEGORY10[i % 10] for i in range(k)]


def _subsample(n: int, max_points: int) -> np.ndarray:
    return np.arange(n) if n <= max_points else np.linspace(0, n - 1, max_points).astype(int)


def sample_table(run: Any, step_index: int = -1) -> pd.DataFrame:
    """One row per sample at a checkpoint: id, label, noisy, and every per-sample metric."""
    df = pd.DataFrame(
        {
            "sample": np.asarray(run.sample_ids),
            "label": np.asarray(run.sample_labels),
            "noisy": np.asarray(run.sample_noisy, dtype=bool),
        }
    )
    for key in run.samples:
        df[key] = np.asarray(run.samples[key][step_index], dtype=np.float64)
    if "correct" in df:
        df["correct"] = df["correct"] > 0.5
    return df


def scatter_chart(
    run: Any,
    step_index: int = -1,
    color_by: str = "class",
    max_points: int = MAX_MARKS // 2,
    height: int = 320,
    as_spec: bool = False,
):
    """λ*(x) against ‖M(x)‖ per sample at a checkpoint, with the diagonal λ* = ‖M‖: the
    theorem's bound λ* ≤ ‖M‖ says every point lies on or below it. Click selects a sample."""
    df = sample_table(run, step_index)
    df = df.iloc[_subsample(len(df), max_points)]
    df = df[np.isfinite(df["m_norm"].to_numpy()) & np.isfinite(df["lambda_star"].to_numpy())]
    top = _metric_domain(run, "m_norm")[1]
    lim = float(max(top, df["m_norm"].max() if len(df) else 0.0))
    lim = float(max(lim, df["lambda_star"].max() if len(df) else 0.0))
    df = df.assign(
        kind="point",
        cls=df["label"].astype(str),
        noisy_label=np.where(df["noisy"], "noisy", "clean"),
    )
    diag = pd.DataFrame({"kind": "diag", "m_norm": [0.0, lim], "lambda_star": [0.0, lim]})
    data = pd.concat([df, diag], ignore_index=True)
    for col in ("cls", "noisy_label"):
        data[col] = data[col].fillna("")
    params = {"lim": lim, "color_by": color_by, "k": n_classes(run), "height": height}
    return _finish(_scatter_template, params, data, as_spec)


@functools.lru_cache(maxsize=64)
def _scatter_template(lim, color_by, k, height) -> alt.LayerChart:
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
    points = (
        base.transform_filter(alt.datum.kind == "point")
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
        .properties(name="pick_view")
    )
    line = (
        base.transform_filter(alt.datum.kind == "diag")
        .mark_line(color="#444", strokeDash=[5, 4])
        .encode(x="m_norm:Q", y="lambda_star:Q")
    )
    return alt.layer(line, points).properties(height=height, title="λ* against ‖M‖ per sample")


def top_impure(run: Any, step_index: int = -1, k: int = 10, metric: str = "m_norm") -> pd.DataFrame:
    """The k samples with the largest metric (default ‖M‖) at a checkpoint, descending."""
    df = sample_table(run, step_index)
    df = df[np.isfinite(df[metric].to_numpy())]
    return df.sort_values(metric, ascending=False, kind="stable").head(k).reset_index(drop=True)


def sample_history_frame(run: Any, sample_index: int) -> pd.DataFrame:
    """Long rows (step, metric, value) of one sample (column index into the run's samples)."""
    steps = np.asarray(run.sample_steps, dtype=float)
    frames = []
    for key in ("m_norm", "lambda_star", "p_max", "jac_spectral_sq"):
        if key in run.samples:
            v = np.asarray(run.samples[key], dtype=np.float64)[:, sample_index]
            axis = "J" if key == "jac_spectral_sq" else "prob"
            frames.append(
                pd.DataFrame(
                    {"kind": axis, "step": steps, "metric": SAMPLE_METRICS[key], "value": v}
                )
            )
    return pd.concat(frames, ignore_index=True)


def sample_history_chart(
    run: Any,
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


# --------------------------------------------------------------------------- decision map


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
