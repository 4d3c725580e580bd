"""Compare page: runs side by side, learning-rate sweeps, grids, optimizer comparisons,
managing and sharing runs. A dispatcher: the page keeps its widget values and draws the
chosen section (one module each in app/sections/); training runs in background jobs
(app/jobs.py) whose progress a fragment polls, so the page never freezes."""

from __future__ import annotations

import logging

import streamlit as st

from app import views
from app.sections.compare_grid import grid_section
from app.sections.compare_optimizers import optimizer_section
from app.sections.compare_runs import runs_section
from app.sections.compare_sweep import sweep_section
from app.sections.manage_runs import manage_section
from app.state import keep, save

SECTIONS = {
    "Runs": runs_section,
    "Learning-rate sweep": sweep_section,
    "Grid": grid_section,
    "Optimizers": optimizer_section,
    "Manage & share": manage_section,
}

# Widget defaults live in session state (not in the widget calls), and every key below is
# re-assigned at the start of each run: Streamlit drops the state of widgets that are not
# drawn in a run, and only one section (and one page) is drawn at a time.
DEFAULTS = {
    "cmp_section": next(iter(SECTIONS)),
    "cmp_x": "step",
    "cmp_smooth": 0.0,
    "cmp_group": False,
    "cmp_logj": False,
    "sweep_preset": "lr-sweep",
    "sweep_overrides": "",
    "sweep_lrs": "0.2, 0.3, 0.4, 0.5",
    "sweep_workers": 0,
    "sweep_x": "step",
    "sweep_matched": 0.1,
    "sweep_heat_metric": "m_norm_mean",
    "grid_preset": "lr-sweep",
    "grid_overrides": "",
    "grid_axes": "lr=0.3, 0.5, 1, 1.5\nseed=0, 1, 2",
    "grid_where": "this machine",
    "grid_ray": "",
    "opt_preset": "ejr-vs-sam",
    "opt_overrides": "",
    "opt_methods": ["gd", "sgd", "sam", "ejr"],
    "opt_batch": "64",
    "opt_seeds": "",
}
KEEP = (*DEFAULTS, "cmp_runs", "sweep_open", "grid_open", "opt_open", "manage_item")


def main() -> None:
    keep("compare", KEEP, DEFAULTS)
    st.title("IJR explorer · Compare")
    st.markdown("Overlay runs, sweep the learning rate, compare optimizers.")
    section = st.radio(
        "Section", list(SECTIONS), key="cmp_section", horizontal=True,
        label_visibility="collapsed",
    )
    SECTIONS[section]()
    save("compare", KEEP)


try:
    main()
except Exception as exc:  # noqa: BLE001 - a page shows a message, never a traceback
    logging.getLogger("app.compare").exception("Compare page failed")  # the server log keeps it
    st.error(f"Something went wrong on this page: {type(exc).__name__}: {views.plain(exc)}")
