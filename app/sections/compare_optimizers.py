"""Compare · Optimizers: one config and seed(s) trained by several methods (GD, SGD, SAM,
EJR …) in the background; the comparison's tables, overlays and claims."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from app import charts, jobs, runs_store, session, share, views
from app.sections.common import open_folder, overlay_grid
from app.sections.jobs_ui import job_section_head, launch_and_open
from ijr_core import claims
from ijr_core.config import OPTIMIZER_NAMES, ConfigError

INTRO = (
    "The same config and seed trained by several methods: does EJR (or SAM, or the explicit "
    "penalty) end with a smaller Jacobian and a better test accuracy? EJR's update is the "
    "project's own definition (see Theory)."
)


def parse_batch(text: str) -> int | None:
    """Mini-batch size from the text box: empty = full batch, else a whole number."""
    text = text.strip()
    if not text:
        return None
    if not text.isdigit():
        raise ValueError(f"mini-batch size: {text!r} is not a whole number (empty = full batch)")
    return int(text)


def optimizer_section() -> None:
    config = job_section_head("opt", INTRO)
    c1, c2 = st.columns([2, 1])
    methods = c1.multiselect("Methods", list(OPTIMIZER_NAMES), key="opt_methods")
    batch_text = c2.text_input("Mini-batch size (not gd; empty = full batch)", key="opt_batch")
    seeds_text = st.text_input(
        "Seeds (shared by every method; several give mean ± std)",
        key="opt_seeds",
        placeholder="the base config's seed",
        help="e.g. 0, 1, 2 — each method trains once per seed from the same initialisations. "
        "Empty: the base config's seed.",
    )
    configs, error = None, None
    try:
        batch = parse_batch(batch_text)
        seeds = jobs.parse_seeds(seeds_text)
        if config is not None and methods:
            configs = jobs.optimizer_configs(config, methods, batch, seeds)
            st.caption(f"{len(configs)} runs × {config.steps} steps, one after the other.")
    except (ConfigError, ValueError) as exc:
        error = str(exc)
        st.error(f"Invalid setting — {exc}")

    def new_job() -> jobs.OptimizerJob:
        name = jobs.stamp_name(f"optimizers-{config.name or config.dataset}")
        return jobs.OptimizerJob(configs, session.runs_dir() / name)

    launch_and_open("opt", "▶ Compare", new_job, configs is not None and error is None,
                    show_group, kind="group", progress_label="Training", what="comparison")


def show_group(folder: Path) -> None:
    group = open_folder(runs_store.load_group, folder, "comparison")
    if group is None:
        return
    runs = group["runs"]
    if not runs:
        st.info("This comparison has no finished runs.")
        return
    grouped = any(len(m) > 1 for m in charts.seed_groups(runs).values())
    table = views.readable_table(charts.optimizer_table(runs))
    if grouped:
        st.dataframe(views.readable_table(charts.optimizer_summary(runs)), width="stretch")
        with st.expander("Every run"):
            st.dataframe(table, width="stretch")
    else:
        st.dataframe(table, width="stretch")
    st.caption(
        "Test accuracy and the last recorded ⟨‖J‖²⟩ and ‖H‖; wall time includes the "
        "probes. Mini-batch methods are measured full-batch at the probes."
    )
    overlay_grid(runs, "opt", ("sharpness", "jac_spectral_sq_mean", "test_acc", "train_loss"),
                 group_seeds=grouped)
    with st.expander("Claims: what held in this comparison", expanded=True):
        views.show_claims(claims.group_claims(runs))
    share.download_panel("opt_dl", folder=folder)
