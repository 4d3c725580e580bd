"""Small Streamlit helpers shared by the pages (the only app module besides pages that
calls ``st.*`` for charts)."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import streamlit as st

from app import charts
from ijr_core.protocol import RunLike


def show_chart(
    chart, key: str, on_select: str | None = None, selections: tuple[str, ...] = ("pick",)
):
    """Render an Altair chart, or the (spec, data) pair a chart function returns with
    ``as_spec=True``, through ``st.vega_lite_chart`` with the data passed apart from the
    spec: a re-render with new data keeps the same spec and the browser updates the view
    in place (no flicker). Returns the selection state of the params ``selections`` when
    ``on_select`` is given."""
    spec, data = chart if isinstance(chart, tuple) else charts.split_spec(chart)
    if isinstance(data, dict):  # named datasets of a compound chart (charts.scrub_chart)
        spec, data = {**spec, "datasets": data}, None
    # fit the width to the column; the height given by the chart is the plot's own height
    spec.setdefault("autosize", {"type": "fit-x", "contains": "padding"})
    readable(spec)
    kwargs = {"key": key}
    if on_select:
        kwargs.update(on_select=on_select, selection_mode=list(selections))
    return st.vega_lite_chart(data, spec, **kwargs)


def readable(spec: dict) -> dict:
    """Merge charts.READABLE_CONFIG (larger fonts for a lecture room) under the spec's own
    config, in place; the chart's own settings win."""
    config = spec.setdefault("config", {})
    for part, values in charts.READABLE_CONFIG.items():
        config[part] = {**values, **config.get(part, {})}
    return spec


def picked_sample(event) -> int | None:
    """The sample id of a chart's 'pick' selection event, if any."""
    return picked(event, "pick", "sample")


def picked(event, param: str, field: str) -> int | None:
    """The integer ``field`` of the first point chosen in a chart's point selection
    ``param`` (a selection event or state), if any."""
    if not event:
        return None
    try:
        points = event["selection"][param]
    except (KeyError, TypeError):
        return None
    if isinstance(points, list) and points:
        value = points[0].get(field) if isinstance(points[0], dict) else None
        try:
            return None if value is None else int(value)
        except (TypeError, ValueError):
            return None
    return None


_ACTIVE = re.compile(r"([\\\[\]()<>`$*]|:(?=[A-Za-z/]))")


def plain(text: object, limit: int = 2000) -> str:
    """``text`` as Markdown that shows it literally: the marks that make Markdown active
    (brackets and parentheses, angle brackets, backticks, $, *, backslash, and a colon
    before a letter or "/", which starts a directive such as ``:red[`` or a link such as
    ``http://``) are backslash-escaped, so text from a run or a file (an error message, a
    name) cannot become a link, an image the browser fetches, a colour directive, HTML or
    LaTeX. Cut to ``limit`` characters; newlines become spaces."""
    s = " ".join(str(text).split())
    if len(s) > limit:
        s = s[:limit] + "…"
    return _ACTIVE.sub(r"\\\1", s)


def status_line(status: str, run: RunLike | None) -> str:
    """One-line status with the step where a run diverged / failed / stopped (what comes
    from the run's metadata shown as plain text)."""
    meta = {} if run is None else run.meta or {}
    if status == "diverged":
        why = plain(meta.get("diverged_reason", ""))
        return f":red[**diverged**] at step {plain(meta.get('diverged_at'))} ({why})"
    if status == "failed":
        return f":red[**failed**]: {plain(meta.get('error', 'unknown error'))}"
    if meta.get("interrupted") and status in ("running", "paused"):
        return f":orange[**interrupted**] while {status}: {plain(meta['interrupted'])}"
    if status == "stopped":
        stopped = meta.get("stopped_at", "?" if run is None else run.step)
        return f":orange[**stopped**] at step {plain(stopped)}"
    if status == "finished":
        return ":green[**finished**]"
    if status == "paused":
        return ":orange[**paused**]"
    return f":blue[**{status}**]"


def blowup_step(run: RunLike, factor: float = 100.0) -> int | None:
    """First recorded step where the training loss is infinite or above ``factor`` × its
    first finite value (None if never): from there a diverging run's per-sample values
    describe a blown-up network, not training. NaN is a gap (rows logged between probes
    have no training loss), except in the last row of a diverged run."""
    steps = np.asarray(run.scalars.get("step", []), dtype=float)
    loss = np.asarray(run.scalars.get("train_loss", []), dtype=float)
    finite = np.isfinite(loss)
    if not finite.any():
        return None
    with np.errstate(invalid="ignore"):
        bad = np.isinf(loss) | (finite & (loss > factor * max(loss[finite][0], 1e-12)))
    if np.isnan(loss[-1]) and run.status == "diverged":
        bad[-1] = True
    hits = np.flatnonzero(bad)
    return int(steps[hits[0]]) if len(hits) else None


def readable_table(frame):
    """``frame`` styled for display: floats to 4 significant digits ("3862", not
    "3861.7966"), missing values as "—"."""
    floats = [c for c in frame.columns if pd.api.types.is_float_dtype(frame[c])]
    return frame.style.format("{:.4g}", subset=floats, na_rep="—")


def show_claims(claims) -> None:
    """The claims scorecard (app.scorecard's table) with its caption; long texts wrap."""
    from app import scorecard

    st.table(scorecard.claims_frame(claims).set_index("claim"))
    st.caption(scorecard.CAPTION)


# Streamlit fades every element of a fragment while it re-runs; a live run re-runs each
# second, so its charts would flash grey once a second. The values are at most a second old.
_NO_STALE_FADE = (
    "<style>[data-testid='stElementContainer'][data-stale='true']"
    "{opacity:1 !important;transition:none !important}</style>"
)


# Vega puts the inputs bound to a chart's params below the chart; the scrubber's slider
# belongs above it, next to the strip it moves, which names the step
_BINDINGS_ON_TOP = (
    "<style>.vega-embed:has(>.vega-bindings){display:flex;flex-direction:column}"
    ".vega-embed>.vega-bindings{order:-1;margin:0 0 4px 0}"
    ".vega-embed .vega-bind input[type=range]{width:min(60vw,560px) !important}"
    # the range's own number is a position on the slider, not a step: the chart labels it
    ".vega-embed .vega-bind input[type=range]+span{display:none}"
    "</style>"
)


def chart_inputs_on_top() -> None:
    """Show the inputs bound to a chart's params above the chart (call once per page run)."""
    st.html(_BINDINGS_ON_TOP)


def keep_live_charts_opaque() -> None:
    """Keep elements at full opacity while a fragment re-runs (call once per page run)."""
    st.html(_NO_STALE_FADE)
