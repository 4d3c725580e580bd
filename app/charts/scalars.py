"""Charts of a run's scalar series over steps: the sharpness panel (‖H‖, ‖G‖, ⟨λ*‖J‖²⟩
against 2/η), ⟨‖M‖⟩, the logit-Jacobian norms, loss and accuracy; phases I/II/III shaded.

Pure functions ``run -> altair`` (or, with ``as_spec``, (cached spec, data)); see
:mod:`app.charts.common`. Symbols follow SCIENCE.md: ‖H‖ sharpness, ‖G‖ Gauss–Newton norm,
λ* the per-sample weight of the identity ‖G‖ = ⟨λ*‖J‖²⟩, ‖M‖ = λ_max(diag p − ppᵀ).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence

import altair as alt
import numpy as np
import pandas as pd

from app.charts.common import (
    _finish,
    _frame,
    _hover_layers,
    _line_layers,
    _long,
    _phase_layer,
    _spans,
    _x_domain,
    phase_frame,
    probe_mode_label,
)
from app.tables import RunOrScalars, config_value, n_classes, scalars_of, step_domain

# key -> (scalar name, legend label, colour); top-k eigenvalues beyond the first are added.
SHARPNESS_SERIES = (
    ("H", "sharpness", "‖H‖", "#1f77b4"),
    ("G", "gn_sharpness", "‖G‖", "#ff7f0e"),
    ("LJ", "lambda_star_jac", "⟨λ*‖J‖²⟩", "#2ca02c"),
    ("two_eta", "two_over_eta", "2/η", "#d62728"),
)


_SCALAR_COLUMNS = ("kind", "key", "series", "step", "value", "phase", "start", "end")


def sharpness_series(scalars: Mapping[str, np.ndarray]) -> list[tuple[str, str, str, str]]:
    """(key, scalar name, label, colour) of the sharpness panel, top-k eigenvalues included."""
    out = list(SHARPNESS_SERIES[:1])
    k = 2
    while f"sharpness_{k}" in scalars:
        out.append((f"H{k}", f"sharpness_{k}", f"‖H‖ λ{k}", "#9ecae1"))
        k += 1
    return out + list(SHARPNESS_SERIES[1:])


def sharpness_chart(
    run: RunOrScalars, spans: Sequence | None = None, height: int = 280, as_spec: bool = False
):
    """‖H‖ (top-k), ‖G‖, ⟨λ*‖J‖²⟩ and the 2/η line over steps, phases I/II/III shaded.

    2/η is the recorded ``two_over_eta`` scalar drawn as a step function (step-after), so a
    learning rate changed mid-run shows as a jump of the line at the probe after the change.
    While a run is live the line runs on to the end of the step axis (its last value, a
    row of kind "eta_end") so the target ‖H‖ climbs towards is visible from the start,
    and the y axis leaves headroom above 2/η (an invisible row of kind "pad")."""
    scalars = scalars_of(run)
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


def m_norm_chart(
    run: RunOrScalars, spans: Sequence | None = None, height: int = 240, as_spec: bool = False
):
    """⟨‖M‖⟩ over steps (the inverted U), phases shaded, the uniform-prediction level 1/K."""
    scalars = scalars_of(run)
    k = n_classes(run)
    lines = _long(scalars, [("M", "m_norm_mean", "⟨‖M‖⟩")])
    level = pd.DataFrame({"kind": ["level"], "value": [1.0 / k], "series": [f"1/K = {1 / k:.3g}"]})
    data = _frame(lines, level, phase_frame(_spans(run, spans)), columns=_SCALAR_COLUMNS)
    params = {
        "top": 1.05 if config_value(run, "loss") == "mse" else 0.5,
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
    # one series, named by the title and the axis: a legend for it would sit beside the
    # phase legend, which fills the top of a half-width chart, and be cut off there
    layers = [_phase_layer(base), *_line_layers(base, ["⟨‖M‖⟩"], ["#9467bd"], y, legend=False),
              rule, text]
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


def jacobian_chart(run: RunOrScalars, log: bool = False, height: int = 240, as_spec: bool = False):
    """⟨‖J‖²⟩ (spectral, λ_max(JᵀJ)) and ⟨‖J‖_F²⟩ (tr JᵀJ) over steps; optional log y."""
    return _pair_chart(run, "jacobian", height, as_spec, log=log)


def loss_chart(run: RunOrScalars, log: bool = True, height: int = 220, as_spec: bool = False):
    """Train and test loss over steps (log y by default: catapult spikes stay readable)."""
    return _pair_chart(run, "loss", height, as_spec, log=log)


def accuracy_chart(run: RunOrScalars, height: int = 220, as_spec: bool = False):
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


def _pair_chart(run: RunOrScalars, kind: str, height: int, as_spec: bool, log=False, y_domain=None):
    """The PAIR_CHARTS ``kind`` of ``run`` over steps (see :func:`_pair_template`); on a log
    y scale the values ≤ 0 are dropped."""
    series, colors, y_title, title, hover = PAIR_CHARTS[kind]
    data = _frame(_long(scalars_of(run), series), columns=_SCALAR_COLUMNS)
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
