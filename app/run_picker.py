"""The run picker shared by Inspect and Theory: the session's current run, saved runs,
demo runs (the list of :func:`app.runs_store.run_options`). The choice and the scrubbed step
survive page switches (kept with :mod:`app.state`)."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from app import runs_store, session, state
from app.views import plain
from ijr_core.protocol import RunLike
from ijr_core.run import RunFormatError

CURRENT = runs_store.CURRENT
KEY = "inspect_run"


def run_options() -> dict[str, str]:
    """Option value -> label: the session's current run, saved runs, demo runs."""
    live = st.session_state.get("job") is not None
    return {o.key: o.label for o in runs_store.run_options(session.runs_dir(), current=live)}


def pick_run(label: str = "Run"):
    """Draw the run select box; return the chosen Run (None with a message if none)."""
    options = run_options()
    if not options:
        st.info("No runs yet: train one on the **Train** page.")
        return None
    started = st.session_state.pop("inspect_source", None)  # set when Start is pressed
    kept = state.remembered(KEY)
    if started in options:
        st.session_state[KEY] = started
    elif KEY not in st.session_state and kept in options:
        st.session_state[KEY] = kept
    if st.session_state.get(KEY) not in options:
        st.session_state[KEY] = next(iter(options))
    choice = st.selectbox(
        label,
        list(options),
        format_func=options.get,
        key=KEY,
        help="The current session's run, runs saved in the runs folder, or a demo run.",
    )
    state.remember(KEY, choice)
    if choice == CURRENT:
        return st.session_state["job"].snapshot()
    try:
        return runs_store.load_cached(Path(choice))
    except RunFormatError as exc:
        st.error(f"Cannot open this run: {plain(exc)}")
        return None


def chosen_folder() -> Path | None:
    """The folder of the run picked: a saved run's, or the session's run once it has
    ended and been saved (its folder then holds run.json); None while it trains."""
    choice = st.session_state.get(KEY)
    if choice is None:
        return None
    if choice != CURRENT:
        return Path(choice)
    job = st.session_state.get("job")
    if job is None or not job.done or getattr(job, "out_dir", None) is None:
        return None
    folder = Path(job.out_dir)
    return folder if (folder / "run.json").is_file() else None


def remember_step(step: int) -> None:
    state.remember("inspect_step", int(step))


def remembered_step(run: RunLike) -> int:
    """Checkpoint index of the step last scrubbed on Inspect (the last one by default)."""
    steps = [int(s) for s in run.sample_steps]
    step = st.session_state.get("inspect_step", state.remembered("inspect_step"))
    return steps.index(step) if step in steps else len(steps) - 1
