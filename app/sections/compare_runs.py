"""Compare · Runs: saved, demo and this session's live run overlaid, with their config
differences and final metrics."""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path

import streamlit as st

from app import charts, runs_store, session, views
from app.sections.common import built_caption, overlay_grid, show, x_axis_radio
from ijr_core.protocol import RunLike
from ijr_core.run import RunFormatError

CURRENT = runs_store.CURRENT_LABEL


def run_choices() -> dict[str, str]:
    """Option label -> run folder: this session's live run (from the Train page), saved runs
    (also inside sweeps/groups), then demos (:func:`app.runs_store.run_options`)."""
    live = st.session_state.get("job") is not None
    options = runs_store.run_options(session.runs_dir(), current=live, describe=False)
    return {o.short: o.key for o in options}


def logged_scalars(runs: Mapping[str, RunLike], x_axis, smoothing, group) -> None:
    """Charts of the scalars a user's own loop logged (RunWriter.log), e.g. its batch loss."""
    names = list(dict.fromkeys(n for run in runs.values() for n in run.logged_scalars))
    if not names:
        return
    st.subheader("Scalars your loop logged")
    cols = st.columns(2)
    for i, name in enumerate(names[:8]):
        with cols[i % 2]:
            show(charts.overlay_chart(runs, name, x_axis, smoothing, group),
                 f"cmp_logged_{i}")
    if len(names) > 8:
        st.caption(f"{len(names) - 8} more logged scalars are in the run's scalars.npz.")


def load_runs(labels: list[str], choices: dict[str, str]) -> dict[str, RunLike]:
    """Label -> Run for the chosen labels; unreadable ones are reported and skipped."""
    out = {}
    for label in labels:
        if label == CURRENT:
            live = st.session_state["job"].snapshot()
            if live is not None and len(live):
                out["current run"] = live
            continue
        try:
            out[label.split(" · ", 1)[-1]] = runs_store.load_cached(Path(choices[label]))
        except (RunFormatError, KeyError) as exc:
            st.error(f"Cannot open {views.plain(label)}: {views.plain(exc)}")
    return out


def _pick(choices: dict[str, str]) -> list[str]:
    """The runs multiselect; the first time this session has a live run, it is picked
    beside one demo."""
    demos = [k for k in choices if k.startswith("demo")]
    if "cmp_runs" not in st.session_state:
        st.session_state["cmp_runs"] = demos[:2]
    if CURRENT in choices and not st.session_state.get("_cmp_current_shown"):
        # the run trained in this session comes first (once), beside one demo for reference
        st.session_state["_cmp_current_shown"] = True
        st.session_state["cmp_runs"] = [CURRENT] + demos[:1]
    st.session_state["cmp_runs"] = [k for k in st.session_state["cmp_runs"] if k in choices]
    return st.multiselect(
        "Runs",
        list(choices),
        key="cmp_runs",
        help="Saved runs (also the members of sweeps and comparisons) and the demo runs.",
    )


def runs_section() -> None:
    choices = run_choices()
    if not choices:
        st.info("No runs yet: train one on the Train page, or run a sweep below.")
        return
    picked = _pick(choices)
    c1, c2, c3, c4 = st.columns(4)
    x_axis = x_axis_radio(
        c1, "cmp_x", help="η·step (the sum of η over steps) is the 'time' of gradient flow."
    )
    smoothing = c2.slider(
        "Smoothing",
        0.0,
        0.95,
        step=0.05,
        key="cmp_smooth",
        help="Debiased exponential moving average; the raw curve stays faint.",
    )
    group = c3.checkbox(
        "Mean ± std over seeds",
        key="cmp_group",
        help="Runs whose configs differ only in the seed become one band.",
    )
    log_j = c4.checkbox("log ⟨‖J‖²⟩", key="cmp_logj")
    if not picked:
        st.info("Pick one or more runs.")
        return
    t0 = time.perf_counter()
    runs = load_runs(picked, choices)
    if not runs:
        return
    overlay_grid(runs, "cmp", log_metric="jac_spectral_sq_mean" if log_j else None,
                 x_axis=x_axis, smoothing=smoothing, group_seeds=group)
    logged_scalars(runs, x_axis, smoothing, group)
    st.caption(
        "Click a legend entry to show that run alone (shift-click for several; "
        "double-click the chart to reset)."
    )
    diff = charts.config_diff(runs)
    st.subheader("Config differences")
    if diff.shape[1]:
        st.dataframe(diff, width="stretch")
    else:
        st.caption("The configs are identical.")
    st.subheader("Final metrics")
    st.dataframe(views.readable_table(charts.final_metrics(runs)), width="stretch")
    built_caption(t0)
