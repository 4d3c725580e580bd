"""Train page: configure in the sidebar, train live, watch the paper's story unfold."""

from __future__ import annotations

import math

import streamlit as st

from app import captions, charts, config_ui, runs_store, session, uploads, views
from app.views import plain, show_chart, show_claims, status_line
from ijr_core.claims import run_claims
from ijr_core.config import ConfigError, RunConfig
from ijr_core.protocol import RunLike
from ijr_core.run import RunFormatError

# Captions that state numbers or shapes are computed from the run shown (app/captions.py).
CAPTIONS = {
    "loss": "A loss spike that comes back down is a catapult, not divergence (log scale).",
}


def _job() -> session.TrainingJob | None:
    return st.session_state.get("job")


def _start(config: RunConfig) -> None:
    old = _job()
    if old is not None and old.alive:
        old.stop()
    job = session.TrainingJob(config).start()  # owned by this browser session
    st.session_state["job"] = job
    _fill_live(config.lr, config.rho)
    st.session_state["inspect_source"] = "current"


def _fill_live(lr: float, rho: float) -> None:
    """Show ``lr`` and ``rho`` in the live fields, with no error from an earlier entry."""
    st.session_state["live_lr"] = f"{lr:g}"
    st.session_state["live_rho"] = f"{rho:g}"
    st.session_state.pop("live_error", None)
    st.session_state.pop("live_note", None)


def _set_live(name: str) -> None:
    """Apply the typed η or ρ to the running job, validated like the sidebar's field (a
    ConfigError message, not a silent red box, for 0, −5 or text)."""
    job = _job()
    if job is None or not job.alive:
        return
    try:
        value = getattr(RunConfig.from_dict({name: st.session_state[f"live_{name}"]},
                                            base=job.config), name)
    except ConfigError as exc:
        st.session_state["live_error"] = f"Not applied — {exc}"
        return
    st.session_state.pop("live_error", None)
    (job.set_lr if name == "lr" else job.set_rho)(value)
    where = "paused at" if job.pause_requested else "running at"
    st.session_state["live_note"] = (
        f"η = {value:g} sent ({where} step {job.control.step}): applied before the next step "
        f"and probed at once, so the 2/η line moves to {2 / value:.4g} from that step."
        if name == "lr" else f"ρ = {value:g} sent: applied from the next step."
    )


def controls(config: RunConfig, error) -> None:
    job = _job()
    running = job is not None and job.alive
    c1, c2, c3, c4, c5 = st.columns([1, 1, 1, 1.4, 1.4], vertical_alignment="bottom")
    if c1.button(
        "▶ Start",
        key="btn_start",
        type="primary",
        disabled=config is None or running,
        help="Train the sidebar config in the background.",
    ):
        _start(config)
        st.rerun()
    paused = running and job.pause_requested
    if paused:
        if c2.button("Resume", key="btn_resume", icon=":material/resume:"):
            job.resume()
            st.rerun()
    elif c2.button("Pause", key="btn_pause", icon=":material/pause:", disabled=not running):
        job.pause()
        st.rerun()
    if c3.button(
        "Stop",
        key="btn_stop",
        icon=":material/stop:",
        disabled=not running,
        help="End the run; everything recorded is kept and saved.",
    ):
        job.stop()
        job.join(timeout=5)
        st.rerun()
    if not running:  # idle: the live fields show the sidebar's values
        _fill_live(config.lr if config else 0.5, config.rho if config else 0.05)
    for col, name, label, tip in (
        (c4, "lr", "η live", "Change the learning rate while training (Enter applies it): "
         "the 2/η line moves and ‖H‖ re-settles."),
        (c5, "rho", "ρ live", "Perturbation radius of SAM / ASAM / EJR, applied from the "
         "next step."),
    ):
        col.text_input(label, key=f"live_{name}", on_change=_set_live, args=(name,),
                       disabled=not running, help=tip)
    if st.session_state.get("live_error"):
        st.error(st.session_state["live_error"])
    elif running and st.session_state.get("live_note"):
        st.success(st.session_state["live_note"], icon=":material/check:")
    if running:
        st.caption(
            "Try it: double η mid-run — the dashed 2/η line halves and the sharpness "
            "drops to settle near it."
        )


def progress(job: session.TrainingJob, run: RunLike | None) -> None:
    p = job.progress()
    status = job.status
    probes = len(run.scalars.get("step", [])) if run is not None else 0
    st.progress(
        p["fraction"],
        text=f"step {p['step']} / {p['steps']} · {p['steps_per_s']:.1f} steps/s · "
        f"{p['elapsed']:.1f} s elapsed · {probes} probe{'' if probes == 1 else 's'}",
    )
    line = status_line(status, run)
    changes = (run.meta.get("lr_changes") or []) if run is not None else []
    if changes:
        line += " · η " + ", ".join(f"→ {lr:g} at step {int(step)}" for step, lr in changes[-3:])
    if job.error:
        st.error(f"Training could not start: {plain(job.error)}")
    elif status in session.FINAL:
        line += f" · saved to `{job.out_dir}`"
    st.markdown(f"Status: {line}")


def live_charts(run: RunLike | None, key_prefix: str) -> None:
    if run is None or not len(run.scalars.get("step", [])):
        st.info("Waiting for the first probe (step 0)…")
        return
    show_chart(charts.run_chart("sharpness", run, as_spec=True), key=f"{key_prefix}_sharp")
    h, g, lj = (run.last(n) for n in ("sharpness", "gn_sharpness", "lambda_star_jac"))
    note = ""
    if all(math.isfinite(v) for v in (h, g, lj)) and g:
        two = run.last("two_over_eta")
        note = f" Now ‖H‖/‖G‖ = {h / g:.3f}, ⟨λ\\*‖J‖²⟩/‖G‖ = {lj / g:.4f}, 2/η = {two:.3g}."
    st.caption(captions.sharpness(run) + note)
    left, right = st.columns(2)
    with left:
        show_chart(charts.run_chart("m_norm", run, as_spec=True), key=f"{key_prefix}_m")
        st.caption(captions.m_norm(run))
        show_chart(charts.run_chart("loss", run, as_spec=True), key=f"{key_prefix}_loss")
        st.caption(CAPTIONS["loss"])
    with right:
        log = bool(st.session_state.get(f"{key_prefix}_jlog", False))
        show_chart(charts.run_chart("jacobian", run, log=log, as_spec=True), key=f"{key_prefix}_j")
        # its own line: in a narrow column beside the caption the label was cut to "l…"
        st.toggle("log y", key=f"{key_prefix}_jlog", help="Log scale for the Jacobian norms.")
        st.caption(captions.jacobian(run))
        show_chart(charts.run_chart("accuracy", run, as_spec=True), key=f"{key_prefix}_acc")
        st.caption(captions.accuracy(run))
    with st.expander("Claims: what held on this run", expanded=True):
        show_claims(run_claims(run))


def live_view() -> None:
    job = _job()
    if job is None:
        return
    run = job.snapshot()
    progress(job, run)
    if run is None or not len(run.scalars.get("step", [])):
        # until the first probe (step 0, taken before any step) keep a picture on screen
        st.info("Starting: loading the data and building the model; the first probe (step 0) "
                "comes next. Meanwhile, the precomputed demo closest to this config:")
        demo_view(job.config, intro=False)
    else:
        live_charts(run, "live")
    if job.done and st.session_state.get("_was_running"):
        st.session_state["_was_running"] = False
        st.rerun(scope="app")  # stop the timer and refresh the buttons


def demo_view(config: RunConfig, intro: bool = True) -> None:
    """The shipped demo run closest to ``config`` (same dataset), saying how it differs."""
    match = runs_store.matching_demo(config) if config is not None else None
    if match is None:
        if intro:
            st.info("Press **Start** to train the sidebar config live (no precomputed demo "
                    "for this dataset).")
        return
    folder, diff = match
    try:
        run = runs_store.load_cached(folder)
    except RunFormatError as exc:
        st.warning(
            f"The demo run could not be loaded ({exc}); rebuild it with "
            "`python assets/make_demo_runs.py`. Press **Start** to train live."
        )
        return
    shown = run.config.to_dict() if run.config is not None else {}
    want = config.to_dict()
    differs = ", ".join(f"{k} = {shown.get(k)!r} (sidebar: {want[k]!r})" for k in diff)
    text = (f"Precomputed demo run **{folder.name}**: "
            + ("the same setting as the sidebar." if not diff else f"differs in {differs}."))
    if intro:
        text += " Press **Start** to train the sidebar config live; the charts then update "
        text += "every second."
    st.info(text)
    live_charts(run, "demo")


def page() -> None:
    st.title("IJR explorer · Train")
    st.caption(
        "Train a small classifier and watch 2/η ≈ ‖H‖ ≈ ‖G‖ = ⟨λ\\*‖J‖²⟩ and the "
        "impurity ⟨‖M‖⟩ evolve: implicit Jacobian regularization weighted by impurity."
    )
    uploads.csv_upload_sidebar()
    config, error = config_ui.sidebar_config()
    if error:
        st.sidebar.error(error)
        st.error(f"Invalid configuration — {error}")
    else:
        config_ui.mirror_to_url(config)
    if st.session_state.get("_query_error"):
        errors = st.session_state.pop("_query_error")
        st.warning(
            f"{len(errors)} part{'s' if len(errors) > 1 else ''} of the link "
            f"{'were' if len(errors) > 1 else 'was'} not valid and left out; the rest of the "
            "link was applied:\n" + "\n".join(f"- {e}" for e in errors)
        )
    if st.session_state.pop("_csv_link", False):
        st.warning("This link was made for an uploaded CSV file; files are not part of links. "
                   "Upload it again under **Your own data (CSV)** in the sidebar: the link's "
                   "other settings are applied.")
    controls(config, error)
    job = _job()
    if job is None:
        demo_view(config)
        return
    running = job.alive
    st.session_state["_was_running"] = running
    views.keep_live_charts_opaque()
    st.fragment(live_view, run_every=1.0 if running else None)()


page()
