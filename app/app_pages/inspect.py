"""Inspect page: pick a run, scrub through its checkpoints, follow samples."""

from __future__ import annotations

import numpy as np
import streamlit as st
import streamlit.components.v1 as components

from app import charts, maps, share, state, uploads
from app.run_picker import CURRENT, KEY, chosen_folder, pick_run, remember_step
from app.tables.scrub import nearest_position, scrub_indices
from app.views import (
    blowup_step,
    chart_inputs_on_top,
    keep_live_charts_opaque,
    picked,
    picked_sample,
    plain,
    show_chart,
    show_claims,
    status_line,
)
from ijr_core.claims import run_claims
from ijr_core.protocol import RunLike


def scrubbed(run: RunLike, indices: np.ndarray, options: tuple) -> tuple[int, int, str]:
    """(scrubber position shown, position the chart starts at, the chart's key).

    The step lives in the browser: the scrub chart's point selection ``at`` moves every
    chart at once and reports its position back (a rerun follows for the server's views).
    The position is that report when the chart in place has one, else the step remembered
    (Theory shares it), else the last checkpoint; Play steps the chart's slider in the
    browser (:func:`play_in_browser`) and ends at the last position. The chart starts at
    that position and keeps its key (and the browser its view) until the chart itself has
    to change: other options, other checkpoints, another start (a new key, never reused,
    so the browser cannot restore a stale selection into it)."""
    steps = [int(s) for s in run.sample_steps]
    sig = (st.session_state.get(KEY), len(steps), len(indices), *options)
    serial, old_sig, start = st.session_state.get("inspect_anchor", (0, None, None))
    chosen = None
    if old_sig == sig:
        chosen = picked(st.session_state.get(f"inspect_scrub_{serial}"), charts.SCRUB_PARAM,
                        "checkpoint")
    if chosen is not None and 0 <= chosen < len(indices):
        pos = chosen
    else:
        kept = state.remembered("inspect_step")
        pos = nearest_position(indices, steps.index(kept) if kept in steps else len(steps) - 1)
        if old_sig != sig or start != pos:
            serial, start = serial + 1, pos
    if st.session_state.get("playing") and pos >= len(indices) - 1:
        st.session_state["playing"] = False
        # a new chart at the last step: the full rerun would reset the slider to its start
        st.session_state["inspect_anchor"] = (serial + 1, sig, pos)
        remember_step(steps[int(indices[pos])])
        st.rerun(scope="app")  # the button says Play again
    st.session_state["inspect_anchor"] = (serial, sig, start)
    remember_step(steps[int(indices[pos])])
    return pos, start, f"inspect_scrub_{serial}"


# Play moves the scrub chart's own slider, one position per tick, as a key press would: the
# charts move in the browser and report each step back like a user's scrub. The script runs
# in a component's frame of the same origin and ends with it (Pause removes the frame).
_PLAY_JS = """<script>
const tick = () => {
  const input = window.parent.document.querySelector('.vega-bindings input[type=range]');
  if (!input || +input.value >= +input.max) return;
  input.stepUp();
  input.dispatchEvent(new Event('input', {bubbles: true}));
};
setInterval(tick, %d);
</script>"""


def play_in_browser(interval_ms: int = 700) -> None:
    """Advance the scrub chart's slider every ``interval_ms`` while this element is shown."""
    components.html(_PLAY_JS % int(interval_ms), height=0)


def _index_of(run: RunLike, sample_id: int | None) -> int | None:
    if sample_id is None:
        return None
    hits = np.flatnonzero(np.asarray(run.sample_ids) == sample_id)
    return int(hits[0]) if hits.size else None


def _take_pick(event) -> None:
    """Follow a click on a sample in the chart; only a new one, as the chart's selection
    stays (a scrub reruns the page and must not undo a pick made in the table since)."""
    sid = picked_sample(event)
    if sid is not None and sid != st.session_state.get("inspect_chart_pick"):
        st.session_state["inspect_chart_pick"] = sid
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


def sample_views(run: RunLike, c: int) -> None:
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


def _rows(run: RunLike, sample_ids) -> np.ndarray:
    pos = {int(s): i for i, s in enumerate(np.asarray(run.sample_ids))}
    return np.array([pos[int(s)] for s in sample_ids], dtype=int)


def plane_or_images(run: RunLike, c: int) -> None:
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


def thumbnails(run: RunLike, c: int, n: int = 8) -> None:
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


def _scrub_chart(run: RunLike, options: tuple, start: int) -> tuple[dict, dict]:
    """charts.scrub_chart's (spec, datasets), kept for the next rerun: a scrub's report
    reruns the page with the same run and options, and rebuilding every checkpoint's rows
    (about 0.1 s for 1000 samples × 100 checkpoints) would only delay the server's views."""
    memo = st.session_state.get("inspect_scrub_memo")
    if memo and memo[0] is run and memo[1] == (options, start):
        return memo[2]
    chart = charts.scrub_chart(run, *options, start=start, as_spec=True)
    st.session_state["inspect_scrub_memo"] = (run, (options, start), chart)
    return chart


def views(run: RunLike) -> None:
    state.keep("inspect", OPTION_KEYS)
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
    indices = scrub_indices(len(run.sample_steps))
    pos, start, key = scrubbed(run, indices, (metric, order, mark_noisy, color_by))
    c = int(indices[pos])
    step = int(run.sample_steps[c])
    if len(indices) > 1:
        st.caption(
            "**Scrub** with the checkpoint slider above the charts (or click the strip over "
            "the heatmap, arrow keys once it has focus): the charts follow at once, in the "
            "browser; the table, the images and a sample's history follow a moment later."
        )
    # One chart, so one step drives all of it. Its key changes only with its options or
    # its start: scrubbing never re-sends it, and the heatmap is not redrawn per step.
    event = show_chart(_scrub_chart(run, (metric, order, mark_noisy, color_by), start),
                       key=key, on_select="rerun", selections=("pick", charts.SCRUB_PARAM))
    _take_pick(event)
    st.caption(
        "Heatmap: each row is a sample (or a bin of samples), each column a checkpoint; ▼ "
        "marks the step shown. Red marks on the left: noisy labels. Below it, at that step: "
        "how the values are spread, by class, and λ\\* against ‖M‖ (the theorem's bound "
        "λ\\* ≤ ‖M‖: no point lies above the dashed diagonal). Click a cell or a point for "
        "its sample's history."
    )
    onset = blowup_step(run)
    if onset is not None and step >= onset:
        st.warning(
            f"The training loss had blown up by step {onset}: from there on these per-sample "
            "values describe a diverged network (predictions saturate, ‖M‖ → 0), not training. "
            "Scrub back before that step to see the run itself."
        )
    st.markdown(f"**At step {step}** (checkpoint {c + 1} of {len(run.sample_steps)}):")
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
    share.download_panel("inspect_dl", run=run, folder=chosen_folder())
    if run.status in ("running", "paused"):
        st.caption("This run is still training: the views show it as of this page load.")
        _refresh_button()
    with st.expander("Claims: what held on this run"):
        show_claims(run_claims(run))
    if not len(run.sample_steps):
        st.info("This run has no checkpoint yet.")
        return
    playing = st.session_state.get("playing", False)
    keep_live_charts_opaque()  # a scrub's rerun must not fade the charts it just moved
    chart_inputs_on_top()
    if state.remembered("inspect_step") == int(run.sample_steps[-1]) and not playing:
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
            remember_step(int(run.sample_steps[0]))
        # a new chart, starting at the step shown: the page's full rerun resets the range
        # input of the chart in place to the value it started at (its view keeps the step
        # scrubbed since), so Play would step from there, or stop at once at the last one
        serial = st.session_state.get("inspect_anchor", (0,))[0]
        st.session_state["inspect_anchor"] = (serial + 1, None, None)
        st.rerun()
    if playing:
        play_in_browser()
    st.fragment(views)(run)


page()
