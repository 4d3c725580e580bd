"""Compare · Grid: every combination of a few config fields, trained on this machine or a
Ray cluster; a grid with an ``lr`` axis opens with the sweep's views."""

from __future__ import annotations

import importlib.util
import time
from functools import partial
from pathlib import Path

import streamlit as st

from app import charts, jobs, runs_store, session, share, views
from app.sections.common import built_caption, open_folder, overlay_grid
from app.sections.compare_sweep import sweep_views
from app.sections.jobs_ui import job_section_head, launch_and_open
from ijr_core import grid as grid_lib
from ijr_core.config import ConfigError

WHERE = ("this machine", "Ray cluster")
INTRO = (
    "Train every combination of a few settings (η × seed × optimizer …), on this machine "
    "or on a Ray cluster; a grid with an `lr` axis opens like a sweep, seeds as mean ± std."
)


def grid_section() -> None:
    config = job_section_head("grid", INTRO)
    text = st.text_area(
        "Axes (one per line: field=values)",
        key="grid_axes",
        height=100,
        help="Any config field; values as a list (0.1, 0.5) or a range start:stop:n "
        "(log-spaced for positive reals, e.g. lr=0.1:1:4; evenly spaced for whole numbers, "
        "e.g. seed=0:4:5).",
    )
    c1, c2 = st.columns([1, 2])
    where = c1.radio("Where", WHERE, key="grid_where", horizontal=True)
    address = None
    if where == WHERE[1]:
        address = c2.text_input(
            "Ray address",
            key="grid_ray",
            placeholder="empty: a local Ray started now · auto · host:6379",
            help="The head of a cluster started with `ray start --head`; every node needs "
            "this project (see README, “Running on a cluster”). Runs come back here and are "
            "saved in the runs folder.",
        )
    axes, error = None, None
    try:
        axes = grid_lib.parse_axes([line for line in text.splitlines() if line.strip()])
        if config is not None:
            plan = grid_lib.expand(config, axes)
            st.caption(
                f"{len(plan)} runs × {config.steps} steps ("
                + " × ".join(f"{len(v)} {k}" for k, v in axes.items())
                + ")"
            )
    except (ConfigError, ValueError) as exc:
        error = str(exc)
        st.error(f"Axes — {exc}")
    if where == WHERE[1] and importlib.util.find_spec("ray") is None:
        error = "Ray is not installed here (pip install -r requirements.txt)"
        st.error(error)

    def new_job() -> jobs.GridJob:
        out = session.runs_dir() / jobs.stamp_name(f"grid-{config.name or config.dataset}")
        return jobs.GridJob(config, axes, out, ray_address=address)

    launch_and_open("grid", "▶ Run grid", new_job,
                    config is not None and axes is not None and error is None, show_grid)


def show_grid(folder: Path) -> None:
    t0 = time.perf_counter()
    grid = open_folder(partial(grid_lib.load_grid, load=runs_store.load_cached), folder, "grid")
    if grid is None:
        return
    present = sum(r is not None for r in grid.runs)
    if grid.status != "finished":
        st.warning(
            f"This grid is {grid.status}: showing the {present} of {len(grid.runs)} runs saved "
            "so far. Running the same grid into this folder again resumes it."
        )
    if not present:
        return
    others = [a for a in grid.axes if a not in ("lr", "seed")]
    fixed = {}
    cols = st.columns(max(1, len(others)))
    for col, axis in zip(cols, others, strict=False):
        options = list(range(len(grid.axes[axis])))
        pick = col.selectbox(axis, options, key=f"grid_fix_{axis}",
                             format_func=lambda k, a=axis: str(grid.axes[a][k]))
        fixed[axis] = grid.axes[axis][pick]
    runs = charts.grid_runs(grid, fixed)
    seeds = len(grid.axes.get("seed", [0])) > 1
    if "lr" in grid.axes:
        sweep_views(grid.sweep(fixed), runs, grouped=seeds)
        if seeds:
            st.caption("Rows of the heatmap and points against η: the mean over seeds; "
                       "overlays: mean ± std bands per η.")
    else:
        overlay_grid(runs, "grid", group_seeds=seeds)
        st.dataframe(views.readable_table(charts.final_metrics(runs)), width="stretch")
    built_caption(t0)
    share.download_panel("grid_dl", folder=folder)
