"""Inspect page: pick a run, scrub through its checkpoints, follow samples."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import streamlit as st

from app import charts, maps, share, state, uploads
from app.run_picker import CURRENT, KEY, pick_run, remember_step
from app.views import blowup_step, picked_sample, plain, show_chart, show_claims, status_line
from ijr_core.claims import run_claims


def step_slider(run) -> int:
    """Checkpoint index chosen with the slider (or advanced by play)."""
    steps = [int(s) for s in run.sample_steps]
    n = len(steps)
    if st.session_state.get("inspect_step") not in steps:
        kept = state.remembered("inspect_step")
        st.session_state["inspect_step"] = kept if kept in steps else steps[-1]
    if st.session_state.get("playing"):
        i = steps.index(st.session_state["inspect_step"])
        if i >= n - 1:
            st.session_state["playing"] = False
            st.rerun(scope="app")  # stops the play timer
        st.session_state["inspect_step"] = steps[i + 1]
    if n > 1:
        st.select_slider(
            "Step (checkpoint)",
            steps,
            key="inspect_step",
            help="Every view below follows this step; ▶ Play animates through training.",
        )
    else:
        st.markdown(f"One checkpoint, step {steps[0]}")
    remember_step(st.session_state["inspect_step"])
    return steps.index(st.session_state["inspect_step"])


def _index_of(run, sample_id: int | None) -> int | None:
    if sample_id is None:
        return None
    hits = np.flatnonzero(np.asarray(run.sample_ids) == sample_id)
    return int(hits[0]) if hits.size else None


def _take_pick(event) -> None:
    sid = picked_sample(event)
    if sid is not None:
        if sid != st.session_state.get("inspect_sample"):  # its history is further down
            st.toast(f"Sample {sid}: its history is shown below, next to the k most impure.")
        st.session_state["inspect_sample"] = sid


# symbols and short number formats, so that the table fits its half of the page
TABLE_COLUMNS = {
    "noisy": st.column_config.CheckboxColumn("noisy label"),
    **{
        name: st.column_config.NumberColumn(charts.SAMPLE_METRICS[name], format=fmt)
        for name, fmt in (
            ("m_norm", "%.3f"),
            ("lambda_star", "%.3f"),
            ("p_max", "%.3f"),
            ("jac_spectral_sq", "%.1f"),
            ("jac_frobenius_sq", "%.1f"),
        )
    },
}


def sample_views(run, c: int) -> None:
    sid = st.session_state.get("inspect_sample")
    j = _index_of(run, sid)
    top, hist = st.columns([1, 1.3])
    with top:
        st.session_state.setdefault("inspect_topk", 10)
        k = st.number_input("k most impure", min_value=1, max_value=100, key="inspect_topk")
        table = charts.top_impure(run, c, int(k))
        if maps.has_params(run) and len(table):
            table.insert(2, "prediction", maps.predictions_at(run, c)[_rows(run, table["sample"])])
        event = st.dataframe(
            table,
            key="inspect_table",
            on_select="rerun",
            selection_mode="single-row",
            hide_index=True,
            height=260,
            column_config=TABLE_COLUMNS,
        )
        rows = event.selection.rows if event else []
        if rows:
            st.session_state["inspect_sample"] = int(table["sample"].iloc[rows[0]])
            j = _index_of(run, st.session_state["inspect_sample"])
    with hist:
        if j is None:
            st.info("Click a sample in the heatmap, the scatter or the table to see its history.")
        else:
            show_chart(charts.sample_history_chart(run, j, c, as_spec=True), key="inspect_history")
            st.caption(
                "This sample's ‖M‖, λ\\*, p_max (left axis) and ‖J‖² (right) over training; "
                "the red rule is the scrubbed step."
            )


def _rows(run, sample_ids) -> np.ndarray:
    pos = {int(s): i for i, s in enumerate(np.asarray(run.sample_ids))}
    return np.array([pos[int(s)] for s in sample_ids], dtype=int)


def plane_or_images(run, c: int) -> None:
    meta = run.meta or {}
    if not maps.has_params(run):
        return
    try:
        if meta.get("is_2d"):
            grid, points = maps.decision_grid(run, c)
            show_chart(charts.decision_map_chart(grid, points), key="inspect_map")
            st.caption(
                "The input plane at the scrubbed step: dark where the prediction is impure "
                "(high ‖M‖), black dots on decision boundaries, crosses are noisy labels."
            )
        elif meta.get("is_image"):
            thumbnails(run, c)
    except Exception as exc:  # noqa: BLE001 - a view that cannot be rebuilt must not break the page
        st.warning(
            f"This view could not be recomputed from the parameter snapshot: {plain(exc)}"
        )


def thumbnails(run, c: int, n: int = 8) -> None:
    table = charts.sample_table(run, c).sort_values("m_norm", ascending=False)
    pred = maps.predictions_at(run, c)
    for title, rows in (("Most impure", table.head(n)), ("Least impure", table.tail(n))):
        st.markdown(f"**{title} samples at this step**")
        cols = st.columns(n)
        for col, (_, row) in zip(cols, rows.iterrows(), strict=False):
            i = _rows(run, [row["sample"]])[0]
            col.image(maps.thumbnail_png(run, int(row["sample"])), width="stretch")
            noisy = "*" if row["noisy"] else ""
            col.caption(
                f"#{int(row['sample'])} y={int(row['label'])}{noisy} ŷ={pred[i]} "
                f"‖M‖={row['m_norm']:.2f}"
            )


OPTION_KEYS = ("inspect_metric", "inspect_order", "inspect_noisy", "inspect_color", "inspect_topk")


def views(run) -> None:
    state.keep("inspect", OPTION_KEYS)
    c = step_slider(run)
    step = int(run.sample_steps[c])
    onset = blowup_step(run)
    if onset is not None and step >= onset:
        st.warning(
            f"The training loss had blown up by step {onset}: from there on these per-sample "
            "values describe a diverged network (predictions saturate, ‖M‖ → 0), not training. "
            "Scrub back before that step to see the run itself."
        )
    opts = st.columns([1, 1, 1, 1])
    metric = opts[0].selectbox(
        "Per-sample value",
        ["m_norm", "lambda_star", "jac_spectral_sq", "jac_frobenius_sq", "p_max"],
        format_func=lambda m: charts.SAMPLE_METRICS[m],
        key="inspect_metric",
    )
    order = opts[1].selectbox("Sort samples by", charts.HEATMAP_ORDERS, key="inspect_order")
    st.session_state.setdefault("inspect_noisy", True)
    mark_noisy = opts[2].toggle("Mark noisy labels", key="inspect_noisy")
    color_by = opts[3].selectbox("Scatter colour", ["class", "noisy"], key="inspect_color")
    # The cursor is its own small chart: the heatmap's data then stays the same while
    # scrubbing and the browser does not redraw tens of thousands of cells per step.
    show_chart(charts.heatmap_cursor_chart(run, c, order, mark_noisy, metric=metric,
                                           as_spec=True), key="inspect_heat_cursor")
    event = show_chart(
        charts.heatmap_chart(run, metric, c, order, mark_noisy, as_spec=True, title=False),
        key=f"inspect_heat_{metric}_{order}_{mark_noisy}",
        on_select="rerun",
    )
    _take_pick(event)
    st.caption(
        f"Each row is a sample (or a bin of samples), each column a checkpoint; ▼ marks "
        f"step {step}. Red marks on the left: noisy labels. Click a cell for its history."
    )
    left, right = st.columns(2)
    with left:
        show_chart(charts.histogram_chart(run, metric, c, as_spec=True), key="inspect_hist")
        st.caption("How the per-sample values are spread at this step, coloured by class.")
    with right:
        event = show_chart(
            charts.scatter_chart(run, c, color_by, as_spec=True),
            key=f"inspect_scatter_{color_by}",
            on_select="rerun",
        )
        _take_pick(event)
        st.caption("The theorem's bound: λ\\* ≤ ‖M‖, so no point lies above the dashed diagonal.")
    plane_or_images(run, c)
    sample_views(run, c)
    state.save("inspect", OPTION_KEYS)


def _refresh_button() -> None:
    if st.button("Refresh", key="btn_refresh", icon=":material/refresh:"):
        st.rerun()


def page() -> None:
    st.title("IJR explorer · Inspect")
    with st.sidebar:
        uploads.run_zip_uploader()
    run = pick_run()
    if run is None:
        if st.session_state.get(KEY) == CURRENT:  # started, first probe not recorded yet
            st.info("The current run is starting: its first probe (step 0) is not recorded "
                    "yet.")
            _refresh_button()
        return
    st.markdown(
        f"Status: {status_line(run.status, run)} · step {run.step} · "
        f"{len(run.sample_ids)} samples × {len(run.sample_steps)} checkpoints"
    )
    choice = st.session_state.get(KEY)
    share.download_panel("inspect_dl", run=run,
                         folder=None if choice == CURRENT else Path(choice))
    if run.status in ("running", "paused"):
        st.caption("This run is still training: the views show it as of this page load.")
        _refresh_button()
    with st.expander("Claims: what held on this run"):
        show_claims(run_claims(run))
    if not len(run.sample_steps):
        st.info("This run has no checkpoint yet.")
        return
    playing = st.session_state.get("playing", False)
    if st.session_state.get("inspect_step") == int(run.sample_steps[-1]) and not playing:
        start_over = True  # Play from the last step starts from the beginning
    else:
        start_over = False
    if st.button(
        "Pause" if playing else "Play",
        key="btn_play",
        icon=":material/pause:" if playing else ":material/play_arrow:",
        disabled=len(run.sample_steps) < 2,
        help="Animate the step slider through training.",
    ):
        st.session_state["playing"] = not playing
        if start_over and not playing:
            st.session_state["inspect_step"] = int(run.sample_steps[0])
        st.rerun()
    st.fragment(views, run_every=0.7 if playing else None)(run)


page()
