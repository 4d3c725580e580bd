"""Controls of the sections that train in the background (sweep, grid, optimizers): the
base config, Start / Stop, a progress fragment, wrapping up an ended job and the picker
of saved folders. A job lives in ``session_state["<prefix>_job"]`` (:mod:`app.jobs`); the
folder it wrote is opened through ``session_state["<prefix>_open"]``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import streamlit as st

from app import runs_store, session, views
from ijr_core.config import PRESETS, ConfigError, RunConfig


def fmt_time(seconds: float) -> str:
    """Seconds as "42 s", or minutes ("2.5 min") from two minutes on."""
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def base_config(prefix: str) -> RunConfig | None:
    """Preset picker + overrides in query form ("steps=300&width=64"); None on error."""
    names = list(PRESETS)
    c1, c2 = st.columns([1, 2])
    preset = c1.selectbox(
        "Base preset",
        names,
        key=f"{prefix}_preset",
        help="The config every run starts from.",
    )
    overrides = c2.text_input(
        "Overrides (field=value&…)",
        key=f"{prefix}_overrides",
        help="Any RunConfig fields, URL-query style, e.g. steps=300&width=64&seed=1. "
        "The query string of a Train page link (preset=…&…) works too.",
    )
    try:
        return RunConfig.from_query(overrides or "", base=PRESETS[preset])
    except ConfigError as exc:
        st.error(f"Invalid override — {exc}")
    except ValueError as exc:
        st.error(f"Invalid override: {exc}")
    return None


def job_progress(job_key: str, label: str) -> None:
    """A fragment that redraws the progress of the job in session_state[job_key] every
    second and reruns the page once when it ends."""

    @st.fragment(run_every=1.0)
    def _poll() -> None:
        job = st.session_state.get(job_key)
        if job is None:
            return
        p = job.progress()
        if job.alive:
            if "line" in p:  # a grid: done/total, running, failed, ETA
                extra = p["line"]
            elif "runs_done" in p:
                extra = f"run {p['runs_done']}/{p['runs']} done"
            else:
                extra = f"{p['current']} ({p['index'] + 1}/{p['runs']})"
            st.progress(p["fraction"], text=f"{label}: {extra} · {fmt_time(p['elapsed'])}")
        else:
            st.session_state[f"{job_key}_ended"] = True
            st.rerun(scope="app")

    _poll()


def finish_job(job_key: str, open_key: str) -> None:
    """After a job ended: show its error, or select its folder for viewing."""
    job = st.session_state.get(job_key)
    if job is None or job.alive:
        return
    st.session_state.pop(job_key)
    st.session_state.pop(f"{job_key}_ended", None)
    if job.error:
        st.session_state[f"{job_key}_error"] = job.error
    if job.out_dir.exists():
        st.session_state[open_key] = str(job.out_dir)


def job_section_head(prefix: str, intro: str) -> RunConfig | None:
    """Top of a job section: wrap up its ended job (``{prefix}_job``), say what it does,
    pick the base config."""
    finish_job(f"{prefix}_job", f"{prefix}_open")
    st.markdown(intro)
    return base_config(prefix)


def job_controls(
    job_key: str,
    start_label: str,
    prefix: str,
    new_job: Callable,
    ready: bool,
    progress_label: str,
    what: str,
):
    """Start and Stop buttons (keys ``{prefix}_start``, ``{prefix}_stop``) of the background
    job kept in session_state[job_key], its progress bar while it runs and the error of the
    last one. ``new_job()`` builds the job when Start is pressed (enabled when ``ready`` and
    no job runs). Stop keeps what the job trained so far (status "stopped"). Returns the
    running job, or None."""
    job = st.session_state.get(job_key)
    c1, c2 = st.columns([1, 4])
    start = c1.button(
        start_label, key=f"{prefix}_start", type="primary", disabled=not ready or job is not None
    )
    if start:
        job = new_job().start()
        st.session_state[job_key] = job
        st.session_state.pop(f"{job_key}_error", None)
    if job is not None:
        if c2.button("■ Stop", key=f"{prefix}_stop"):
            job.stop()
        job_progress(job_key, progress_label)
    if st.session_state.get(f"{job_key}_error"):
        st.error(f"The {what} failed: {views.plain(st.session_state[f'{job_key}_error'])}")
    return job


def launch_and_open(
    prefix: str,
    start_label: str,
    new_job: Callable,
    ready: bool,
    show_folder: Callable[[Path], None],
    *,
    kind: str | None = None,
    progress_label: str | None = None,
    what: str | None = None,
) -> None:
    """Start/Stop/progress of the ``{prefix}_job`` (see :func:`job_controls`), then the
    picker (``{prefix}_open``) of saved folders of ``kind`` (default ``prefix``); the chosen
    one is shown with ``show_folder`` while no job runs."""
    kind = kind or prefix
    what = what or prefix
    job = job_controls(f"{prefix}_job", start_label, prefix, new_job, ready=ready,
                       progress_label=progress_label or prefix.capitalize(), what=what)
    st.divider()
    folder = open_picker(kind, f"{prefix}_open", what)
    if folder is not None and job is None:
        show_folder(folder)


def open_picker(kind: str, key: str, what: str) -> Path | None:
    """Select box of the saved sweeps / comparisons, newest first; the demo sweeps /
    comparisons follow (read-only), so a first visit opens a demo."""
    options = {
        str(e.path): e.label for e in runs_store.list_entries(session.runs_dir()) if e.kind == kind
    }
    saved = bool(options)
    options.update({str(e.path): e.label for e in runs_store.demo_entries(kind)})
    if not options:
        st.caption(f"No saved {what} yet.")
        return None
    if not saved:
        button = {"sweep": "▶ Run sweep", "grid": "▶ Run grid"}.get(kind, "▶ Compare")
        st.caption(
            f"No saved {what} yet: showing the precomputed demo. Press **{button}** above "
            "to train your own; it is then opened here."
        )
    if st.session_state.get(key) not in options:
        st.session_state[key] = next(iter(options))
    label = f"Open a saved {what}" if saved else f"Open a {what}"
    chosen = st.selectbox(label, list(options), format_func=options.get, key=key)
    return Path(chosen) if chosen else None
