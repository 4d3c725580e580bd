"""Compare page: runs side by side, learning-rate sweeps, optimizer comparisons, managing
and sharing runs. Charts come from app/charts/ (tables from app/tables.py); training runs in
background jobs (app/jobs.py) whose progress a fragment polls, so the page never freezes."""

from __future__ import annotations

import importlib.util
import logging
import time
from pathlib import Path

import altair as alt
import streamlit as st

from app import captions, charts, jobs, runs_store, session, share, store, uploads, views
from app.state import keep, save
from ijr_core import claims, values
from ijr_core import grid as grid_lib
from ijr_core.config import OPTIMIZER_NAMES, PRESETS, ConfigError, RunConfig
from ijr_core.run import RunFormatError

SECTIONS = ("Runs", "Learning-rate sweep", "Grid", "Optimizers", "Manage & share")
OVERLAYS = ("sharpness", "m_norm_mean", "jac_spectral_sq_mean", "test_acc")
CAPTIONS = {
    "m_norm_mean": "Impurity ⟨‖M‖⟩ of each run: look for the inverted U (with more than two "
    "classes) and for which run leaves the high-impurity phase first.",
    "jac_spectral_sq_mean": "Implicit Jacobian regularization: compare runs at the same "
    "training loss, not at the last step (a smaller η trains more slowly, so its Jacobian "
    "has grown less by then).",
    "test_acc": "Test accuracy: compare the early peaks and how much each run loses once "
    "it starts fitting noisy labels.",
    "train_loss": "Training loss per step: SAM and EJR spend two gradient evaluations on "
    "each step, so compare wall time too.",
}


def overlay_caption(metric: str, runs: dict) -> str:
    """The caption under an overlay: measured on the runs shown where it states a result."""
    return captions.overlay_sharpness(runs) if metric == "sharpness" else CAPTIONS[metric]


# Widget defaults live in session state (not in the widget calls), and every key below is
# re-assigned at the start of each run: Streamlit drops the state of widgets that are not
# drawn in a run, and only one section (and one page) is drawn at a time.
DEFAULTS = {
    "cmp_section": SECTIONS[0],
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


def keep_state() -> None:
    """Fill in defaults and keep the page's widget values across sections and pages."""
    keep("compare", KEEP, DEFAULTS)


# --------------------------------------------------------------------------- helpers


CURRENT = runs_store.CURRENT_LABEL


def run_choices() -> dict[str, str]:
    """Option label -> run folder: this session's live run (from the Train page), saved runs
    (also inside sweeps/groups), then demos (:func:`app.runs_store.run_options`)."""
    live = st.session_state.get("job") is not None
    options = runs_store.run_options(session.runs_dir(), current=live, describe=False)
    return {o.short: o.key for o in options}


def logged_scalars(runs, x_axis, smoothing, group) -> None:
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


def load_runs(labels: list[str], choices: dict[str, str]) -> dict:
    """Label -> Run for the chosen labels; unreadable ones are reported and skipped."""
    out = {}
    for label in labels:
        if label == CURRENT:
            live = st.session_state["job"].snapshot()
            if live is not None and len(live):
                out["current run"] = live
            continue
        try:
            out[label.split(" · ", 1)[-1]] = store.load_cached(Path(choices[label]))
        except (RunFormatError, KeyError) as exc:
            st.error(f"Cannot open {views.plain(label)}: {views.plain(exc)}")
    return out


def show(chart, key: str) -> None:
    """Render at the column's width; the chart's height stays the plot's own height."""
    chart = chart.properties(autosize=alt.AutoSizeParams(type="fit-x", contains="padding"))
    st.vega_lite_chart(spec=views.readable(chart.to_dict()), width="stretch", key=key)


def parse_lrs(text: str) -> list[float]:
    """Learning rates from "0.1, 0.5, 1" or a log-spaced range "start:stop:n" (the grammar
    of ijr_core.values, shared with the command line)."""
    return values.parse_lrs(text)


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


def _fmt_time(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


# --------------------------------------------------------------------------- runs


def runs_section() -> None:
    choices = run_choices()
    if not choices:
        st.info("No runs yet: train one on the Train page, or run a sweep below.")
        return
    demos = [k for k in choices if k.startswith("demo")]
    if "cmp_runs" not in st.session_state:
        st.session_state["cmp_runs"] = demos[:2]
    if CURRENT in choices and not st.session_state.get("_cmp_current_shown"):
        # the run trained in this session comes first (once), beside one demo for reference
        st.session_state["_cmp_current_shown"] = True
        st.session_state["cmp_runs"] = [CURRENT] + demos[:1]
    st.session_state["cmp_runs"] = [k for k in st.session_state["cmp_runs"] if k in choices]
    picked = st.multiselect(
        "Runs",
        list(choices),
        key="cmp_runs",
        help="Saved runs (also the members of sweeps and comparisons) and the demo runs.",
    )
    c1, c2, c3, c4 = st.columns(4)
    x_axis = c1.radio(
        "x axis",
        list(charts.X_AXES),
        key="cmp_x",
        horizontal=True,
        format_func=charts.X_AXES.get,
        help="η·step (the sum of η over steps) is the 'time' of gradient flow.",
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
    cols = st.columns(2)
    for i, metric in enumerate(OVERLAYS):
        chart = charts.overlay_chart(
            runs,
            metric,
            x_axis,
            smoothing,
            group,
            log_y=log_j and metric == "jac_spectral_sq_mean",
        )
        with cols[i % 2]:
            show(chart, f"cmp_chart_{metric}")
            st.caption(overlay_caption(metric, runs))
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
    st.caption(f"Built in {1000 * (time.perf_counter() - t0):.0f} ms (server).")


# --------------------------------------------------------------------------- jobs


def _job_progress(job_key: str, label: str) -> None:
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
            st.progress(p["fraction"], text=f"{label}: {extra} · {_fmt_time(p['elapsed'])}")
        else:
            st.session_state[f"{job_key}_ended"] = True
            st.rerun(scope="app")

    _poll()


def _finish_job(job_key: str, open_key: str) -> None:
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


def _job_section_head(job_key: str, open_key: str, intro: str, prefix: str) -> RunConfig | None:
    """Top of a job section: wrap up its ended job, say what it does, pick the base config."""
    _finish_job(job_key, open_key)
    st.markdown(intro)
    return base_config(prefix)


def _job_controls(
    job_key: str,
    start_label: str,
    prefix: str,
    new_job,
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
        _job_progress(job_key, progress_label)
    if st.session_state.get(f"{job_key}_error"):
        st.error(f"The {what} failed: {views.plain(st.session_state[f'{job_key}_error'])}")
    return job


def _launch_and_open(kind: str, start_label: str, new_job, ready: bool, show_folder) -> None:
    """Start/Stop/progress of the ``{kind}_job`` (see :func:`_job_controls`), then the picker
    of saved ``kind`` folders; the chosen one is shown with ``show_folder`` while no job
    runs."""
    job = _job_controls(f"{kind}_job", start_label, kind, new_job, ready=ready,
                        progress_label=kind.capitalize(), what=kind)
    st.divider()
    folder = _open_picker(kind, f"{kind}_open", kind)
    if folder is not None and job is None:
        show_folder(folder)


def _group_options(kind: str) -> dict[str, str]:
    return {
        str(e.path): e.label for e in runs_store.list_entries(session.runs_dir()) if e.kind == kind
    }


def demo_sweep_entries(kind: str = "sweep") -> list[runs_store.Entry]:
    """The demo sweeps (or, kind "group", optimizer comparisons) shipped in
    assets/demo_runs, as read-only entries."""
    out = []
    if kind not in ("sweep", "group"):  # no demo grids are shipped
        return out
    paths = store.demo_sweeps() if kind == "sweep" else store.demo_groups()
    what = "η sweep" if kind == "sweep" else "optimizers"
    for path in paths:
        members = runs_store.group_members(path)
        label = f"{path.name} · {what} · {len(members)} runs · demo (read-only)"
        out.append(runs_store.Entry(path, kind, label, members))
    return out


def _open_picker(kind: str, key: str, what: str) -> Path | None:
    """Select box of the saved sweeps / comparisons, newest first; the demo sweeps /
    comparisons follow (read-only), so a first visit opens a demo."""
    options = _group_options(kind)
    saved = bool(options)
    options.update({str(e.path): e.label for e in demo_sweep_entries(kind)})
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


# --------------------------------------------------------------------------- sweep


def sweep_section() -> None:
    config = _job_section_head(
        "sweep_job",
        "sweep_open",
        "Train one base config at several learning rates (same data and "
        "initialisation), then see impurity over η and training, and the implicit "
        "Jacobian regularization across η.",
        prefix="sweep",
    )
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

    _launch_and_open("sweep", "▶ Run sweep", new_job, config is not None and bool(lrs),
                     show_sweep)


def show_sweep(folder: Path) -> None:
    t0 = time.perf_counter()
    try:
        sweep = runs_store.open_sweep(folder, load=store.load_cached)
    except (RunFormatError, ValueError) as exc:
        st.error(f"Cannot open this sweep: {views.plain(exc)}")
        return
    if sweep.meta.get("status") not in (None, "finished"):
        st.warning(f"This sweep is {sweep.meta.get('status')}: showing the runs saved so far.")
    sweep_views(sweep, charts.sweep_runs(sweep))
    st.caption(f"Built in {1000 * (time.perf_counter() - t0):.0f} ms (server).")
    share.download_panel("sweep_dl", folder=folder)


def sweep_views(sweep, runs: dict, grouped: bool = False) -> None:
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
    c1, c2 = st.columns(2)
    with c1:
        show(charts.final_jac_chart(sweep, matched), "sweep_final_jac")
        st.caption(
            "Implicit Jacobian regularization: at the edge of stability ⟨λ\\*‖J‖²⟩ ≈ 2/η, so "
            "at a matched training loss a larger η has the smaller Jacobian (the “at loss” "
            "points). The final values need not fall with η: after the loss is matched, runs "
            "keep fitting for different numbers of steps."
        )
    with c2:
        show(charts.max_sharpness_chart(sweep), "sweep_max_h")
        st.caption(
            "Dashed: ‖H‖ = 2/η. Runs at the edge of stability reach the diagonal; "
            "a point far above it is an early catapult."
        )
    x_axis = st.radio(
        "x axis",
        list(charts.X_AXES),
        key="sweep_x",
        horizontal=True,
        format_func=charts.X_AXES.get,
    )
    cols = st.columns(2)
    for i, metric in enumerate(OVERLAYS):
        with cols[i % 2]:
            chart = charts.overlay_chart(runs, metric, x_axis, group_seeds=grouped)
            show(chart, f"sweep_chart_{metric}")
            st.caption(overlay_caption(metric, runs))
    table = charts.sweep_final_frame(sweep, matched)
    columns = {
        key: (st.column_config.TextColumn(head) if fmt is None
              else st.column_config.NumberColumn(head, format=fmt))
        for key, (head, fmt) in {**charts.SWEEP_COLUMNS,
                                 **charts.SEED_COLUMNS}.items()
    }
    st.dataframe(table, width="stretch", hide_index=True, column_config=columns)
    if matched is not None and table["jac_at_loss"].isna().any():
        st.caption("Empty “at matched loss” cells: that run never reached the training loss.")
    with st.expander("Claims: what held on this sweep", expanded=True):
        views.show_claims(claims.sweep_claims(sweep.lrs, sweep.runs))


# --------------------------------------------------------------------------- grid

WHERE = ("this machine", "Ray cluster")


def grid_section() -> None:
    config = _job_section_head(
        "grid_job",
        "grid_open",
        "Train every combination of a few settings (η × seed × optimizer …), on this "
        "machine or on a Ray cluster; a grid with an `lr` axis opens like a sweep, seeds "
        "as mean ± std.",
        prefix="grid",
    )
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

    _launch_and_open("grid", "▶ Run grid", new_job,
                     config is not None and axes is not None and error is None, show_grid)


def show_grid(folder: Path) -> None:
    t0 = time.perf_counter()
    try:
        grid = grid_lib.load_grid(folder, load=store.load_cached)
    except (RunFormatError, ValueError) as exc:
        st.error(f"Cannot open this grid: {views.plain(exc)}")
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
        c = st.columns(2)
        for i, metric in enumerate(OVERLAYS):
            with c[i % 2]:
                chart = charts.overlay_chart(runs, metric, group_seeds=seeds)
                show(chart, f"grid_chart_{metric}")
                st.caption(overlay_caption(metric, runs))
        st.dataframe(views.readable_table(charts.final_metrics(runs)), width="stretch")
    st.caption(f"Built in {1000 * (time.perf_counter() - t0):.0f} ms (server).")
    share.download_panel("grid_dl", folder=folder)


# --------------------------------------------------------------------------- optimizers


def parse_batch(text: str) -> int | None:
    """Mini-batch size from the text box: empty = full batch, else a whole number."""
    text = text.strip()
    if not text:
        return None
    if not text.isdigit():
        raise ValueError(f"mini-batch size: {text!r} is not a whole number (empty = full batch)")
    return int(text)


def optimizer_section() -> None:
    config = _job_section_head(
        "opt_job",
        "opt_open",
        "The same config and seed trained by several methods: does EJR (or SAM, or the "
        "explicit penalty) end with a smaller Jacobian and a better test accuracy? "
        "EJR's update is the project's own definition (see Theory).",
        prefix="opt",
    )
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

    job = _job_controls(
        "opt_job",
        "▶ Compare",
        "opt",
        new_job,
        ready=configs is not None and error is None,
        progress_label="Training",
        what="comparison",
    )
    st.divider()
    folder = _open_picker("group", "opt_open", "comparison")
    if folder is not None and job is None:
        show_group(folder)


def show_group(folder: Path) -> None:
    try:
        group = runs_store.load_group(folder)
    except (RunFormatError, ValueError) as exc:
        st.error(f"Cannot open this comparison: {views.plain(exc)}")
        return
    runs = group["runs"]
    if not runs:
        st.info("This comparison has no finished runs.")
        return
    grouped = any(len(m) > 1 for m in charts.seed_groups(runs).values())
    if grouped:
        st.dataframe(views.readable_table(charts.optimizer_summary(runs)), width="stretch")
        with st.expander("Every run"):
            st.dataframe(views.readable_table(charts.optimizer_table(runs)),
                         width="stretch")
    else:
        st.dataframe(views.readable_table(charts.optimizer_table(runs)), width="stretch")
    st.caption(
        "Test accuracy and the last recorded ⟨‖J‖²⟩ and ‖H‖; wall time includes the "
        "probes. Mini-batch methods are measured full-batch at the probes."
    )
    cols = st.columns(2)
    for i, metric in enumerate(("sharpness", "jac_spectral_sq_mean", "test_acc", "train_loss")):
        with cols[i % 2]:
            chart = charts.overlay_chart(runs, metric, group_seeds=grouped)
            show(chart, f"opt_chart_{metric}")
            st.caption(overlay_caption(metric, runs))
    with st.expander("Claims: what held in this comparison", expanded=True):
        views.show_claims(claims.group_claims(runs))
    share.download_panel("opt_dl", folder=folder)


# --------------------------------------------------------------------------- manage & share


def manage_section() -> None:
    root = session.runs_dir()
    st.markdown(f"Runs folder: `{root}`")
    uploads.run_zip_uploader(root)
    entries = {str(e.path): e for e in runs_store.list_entries(root)}
    demos = {
        str(p): runs_store.Entry(p, "run", f"{p.name} · demo (read-only)")
        for p in store.demo_runs()
    }
    demos.update({str(e.path): e for e in [*demo_sweep_entries(),
                                           *demo_sweep_entries("group")]})
    options = {**entries, **demos}
    if not options:
        st.info("Nothing saved yet.")
        return
    if st.session_state.get("manage_item") not in options:
        st.session_state["manage_item"] = next(iter(options))
    chosen = st.selectbox(
        "Run, sweep or comparison",
        list(options),
        format_func=lambda k: f"{options[k].kind} · {options[k].label}",
        key="manage_item",
    )
    entry = options[chosen]
    editable = chosen in entries
    if editable:
        rename_delete(entry, root)
    else:
        st.caption("A demo shipped with the app: read-only (download it, or train your own).")
    run, readable = None, True
    if entry.kind == "run":
        try:
            run = store.load_cached(entry.path)
        except RunFormatError as exc:
            readable = False
            st.error(f"Cannot open this run: {views.plain(exc)}")
    if entry.path.exists():  # a damaged run: its zip only (no report to build)
        share.download_panel("manage_dl", run=run, folder=entry.path, report=readable)


def _do_rename(entry, root: Path) -> None:
    new = st.session_state.get(f"manage_new_name:{entry.path}", "")
    try:
        target = runs_store.rename(entry.path, new, root)
    except (runs_store.StoreError, OSError) as exc:
        st.session_state["manage_msg"] = ("error", f"Cannot rename: {exc}")
        return
    st.session_state["manage_item"] = str(target)
    st.session_state["manage_msg"] = ("success", f"Renamed to {target.name}.")


def _do_delete(entry, root: Path) -> None:
    try:
        runs_store.delete(entry.path, root)
    except (runs_store.StoreError, OSError) as exc:
        st.session_state["manage_msg"] = ("error", f"Cannot delete: {exc}")
    else:
        st.session_state["manage_msg"] = ("success", f"Deleted {entry.name}.")
        st.session_state.pop("manage_item", None)
    st.session_state.pop("manage_confirm", None)


def rename_delete(entry, root: Path) -> None:
    msg = st.session_state.pop("manage_msg", None)
    if msg:
        getattr(st, msg[0])(msg[1])
    c1, c2, c3 = st.columns([3, 1, 1], vertical_alignment="bottom")
    c1.text_input("New name", entry.name, key=f"manage_new_name:{entry.path}")
    c2.button("Rename", key="manage_rename", on_click=_do_rename, args=(entry, root))
    if c3.button("Delete…", key="manage_delete"):
        st.session_state["manage_confirm"] = str(entry.path)
    if st.session_state.get("manage_confirm") == str(entry.path):
        st.warning(
            f"Delete **{entry.name}** ({entry.kind}) and all its files? This cannot be undone."
        )
        d1, d2, _ = st.columns([1, 1, 4])
        d1.button(
            "Yes, delete",
            key="manage_confirm_yes",
            type="primary",
            on_click=_do_delete,
            args=(entry, root),
        )
        if d2.button("Cancel", key="manage_confirm_no"):
            st.session_state.pop("manage_confirm", None)
            st.rerun()


# --------------------------------------------------------------------------- page


def main() -> None:
    keep_state()
    st.title("IJR explorer · Compare")
    st.markdown("Overlay runs, sweep the learning rate, compare optimizers.")
    section = st.radio(
        "Section", SECTIONS, key="cmp_section", horizontal=True, label_visibility="collapsed"
    )
    if section == "Runs":
        runs_section()
    elif section == "Learning-rate sweep":
        sweep_section()
    elif section == "Grid":
        grid_section()
    elif section == "Optimizers":
        optimizer_section()
    else:
        manage_section()
    save("compare", KEEP)


try:
    main()
except Exception as exc:  # noqa: BLE001 - a page shows a message, never a traceback
    logging.getLogger("app.compare").exception("Compare page failed")  # the server log keeps it
    st.error(f"Something went wrong on this page: {type(exc).__name__}: {views.plain(exc)}")
