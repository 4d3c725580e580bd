"""Compare · Learning-rate sweep: train one config at several η in the background, then
the (η × step) heatmap, final ⟨‖J‖²⟩ and max ‖H‖ against η, overlays, table and claims."""

from __future__ import annotations

import time
from collections.abc import Mapping
from functools import partial
from pathlib import Path

import streamlit as st

from app import captions, charts, jobs, runs_store, session, share, views
from app.sections.common import built_caption, open_folder, overlay_grid, show, x_axis_radio
from app.sections.jobs_ui import job_section_head, launch_and_open
from app.tables.access import SweepLike
from ijr_core import claims, values
from ijr_core.protocol import RunLike

INTRO = (
    "Train one base config at several learning rates (same data and initialisation), "
    "then see impurity over η and training, and the implicit Jacobian regularization "
    "across η."
)


def parse_lrs(text: str) -> list[float]:
    """Learning rates from "0.1, 0.5, 1" or a log-spaced range "start:stop:n" (the grammar
    of ijr_core.values, shared with the command line)."""
    return values.parse_lrs(text)


def sweep_section() -> None:
    config = job_section_head("sweep", INTRO)
    c1, c2 = st.columns([2, 1])
    lrs_text = c1.text_input(
        "Learning rates η",
        key="sweep_lrs",
        help="A list (0.1, 0.5, 1) or a log-spaced range start:stop:n.",
    )
    workers = c2.number_input(
        "Runs at once (0 = one per CPU core)", 0, 64, key="sweep_workers"
    )
    try:
        lrs = parse_lrs(lrs_text)
    except ValueError as exc:
        st.error(f"Learning rates: {exc}")
        lrs = None
    if config is not None and lrs:
        st.caption(
            f"{len(lrs)} runs × {config.steps} steps · 2/η = "
            + ", ".join(f"{2 / x:.3g}" for x in lrs)
        )

    def new_job() -> jobs.SweepJob:
        out = session.runs_dir() / jobs.stamp_name(f"sweep-{config.name or config.dataset}")
        return jobs.SweepJob(config, lrs, out, workers=int(workers) or None)

    launch_and_open("sweep", "▶ Run sweep", new_job, config is not None and bool(lrs),
                    show_sweep)


def show_sweep(folder: Path) -> None:
    t0 = time.perf_counter()
    load = partial(runs_store.open_sweep, load=runs_store.load_cached)
    sweep = open_folder(load, folder, "sweep")
    if sweep is None:
        return
    if sweep.meta.get("status") not in (None, "finished"):
        st.warning(f"This sweep is {sweep.meta.get('status')}: showing the runs saved so far.")
    sweep_views(sweep, charts.sweep_runs(sweep))
    built_caption(t0)
    share.download_panel("sweep_dl", folder=folder)


def sweep_views(sweep: SweepLike, runs: Mapping[str, RunLike], grouped: bool = False) -> None:
    """The views of an η sweep: heatmap, final ⟨‖J‖²⟩ and max ‖H‖ against η, overlays
    (``runs``; with ``grouped`` seed groups as mean ± std bands) and the table."""
    metric = st.columns([1, 2])[0].selectbox(
        "Heatmap of",
        list(charts.HEATMAP_METRICS),
        format_func=charts.HEATMAP_METRICS.get,
        key="sweep_heat_metric",
        help="‖H‖ / (2/η) = 1 is the edge of stability.",
    )
    show(charts.sweep_heatmap_chart(sweep, metric), "sweep_heatmap")
    st.caption(captions.sweep_heatmap(sweep.lrs, sweep.runs))
    matched = st.columns([1, 2])[0].number_input(
        "⟨‖J‖²⟩ also at training loss ≤ (0 = off)",
        min_value=0.0,
        step=0.05,
        format="%.3g",
        key="sweep_matched",
        help="Runs with a larger η train faster; at a matched training loss the comparison "
        "is not confounded by how far each run got.",
    )
    matched = float(matched) or None
    table = charts.sweep_final_frame(sweep, matched)  # the chart points and the table
    c1, c2 = st.columns(2)
    with c1:
        show(charts.final_jac_chart(sweep, matched, final=table), "sweep_final_jac")
        st.caption(
            "Implicit Jacobian regularization: at the edge of stability ⟨λ\\*‖J‖²⟩ ≈ 2/η, so "
            "at a matched training loss a larger η has the smaller Jacobian (the “at loss” "
            "points). The final values need not fall with η: after the loss is matched, runs "
            "keep fitting for different numbers of steps."
        )
    with c2:
        show(charts.max_sharpness_chart(sweep, final=table), "sweep_max_h")
        st.caption(
            "Dashed: ‖H‖ = 2/η. Runs at the edge of stability reach the diagonal; "
            "a point far above it is an early catapult."
        )
    x_axis = x_axis_radio(st, "sweep_x")
    overlay_grid(runs, "sweep", x_axis=x_axis, group_seeds=grouped)
    columns = {
        key: (st.column_config.TextColumn(head) if fmt is None
              else st.column_config.NumberColumn(head, format=fmt))
        for key, (head, fmt) in {**charts.SWEEP_COLUMNS,
                                 **charts.SEED_COLUMNS}.items()
    }
    st.dataframe(table, width="stretch", hide_index=True, column_config=columns)
    if matched is not None and table["jac_at_loss"].isna().any():
        # the table shows a missing number as "None", not as an empty cell
        st.caption("“None” at matched loss: that run never reached the training loss.")
    with st.expander("Claims: what held on this sweep", expanded=True):
        views.show_claims(claims.sweep_claims(sweep.lrs, sweep.runs))
