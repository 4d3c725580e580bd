"""Plain-text summaries printed by the command line: one run (config, phases, events,
first / peak / final metrics), an optimizer comparison, a sweep and a grid."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np

from ijr_core.protocol import RunLike

if TYPE_CHECKING:
    from ijr_core.grid import Grid
    from ijr_core.sweep import Sweep

SUMMARY_METRICS = ("train_loss", "train_acc", "test_acc", "sharpness", "gn_sharpness",
                   "lambda_star_jac", "two_over_eta", "m_norm_mean", "jac_spectral_sq_mean",
                   "jac_frobenius_sq_mean", "grad_evals", "wall_time")


def _fmt(x: float) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "—" if x is None or math.isnan(x) else str(x)
    return f"{x:.4g}"


def format_run(run: RunLike) -> str:
    """Summary table of one run: status, config, phases and their events, first / peak /
    final metrics."""
    from ijr_core.phases import phase_events

    cfg = run.config
    status = f"status     {run.status} at step {run.step}"
    if run.status == "diverged" and run.meta.get("diverged_reason"):
        status += f": {run.meta['diverged_reason']}"
    lines = [status]
    if run.meta.get("error"):
        lines.append(f"error      {run.meta['error']}")
    if run.meta.get("source") == "writer":  # its config holds defaults, except loss
        lr = run.last("lr")
        eta = f"η={lr:g}" if math.isfinite(lr) else "η not given"
        lines.append(f"config     your own training loop (RunWriter), model "
                     f"{run.meta.get('model', '?')}, {eta}, loss {cfg.loss}")
    elif cfg is not None:
        bs = "full batch" if cfg.batch_size is None else f"batch {cfg.batch_size}"
        lines.append(f"config     {cfg.dataset} n={cfg.n_train}, {cfg.model} "
                     f"{cfg.width}×{cfg.depth} {cfg.activation}, {cfg.optimizer} "
                     f"η={cfg.lr:g} ({bs}), loss {cfg.loss}")
    lines.append(f"source     {run.meta.get('source', '?')}, device {run.meta.get('device', '?')}, "
                 f"{len(run.probe_steps)} probes, {len(run.sample_steps)} checkpoints × "
                 f"{len(run.sample_ids)} samples")
    if run.meta.get("probe_mode") or (cfg is not None and run.meta.get("source") != "writer"):
        lines.append(f"probe mode {run.meta.get('probe_mode') or cfg.probe_mode}")
    logged = run.logged_scalars
    if logged:
        lines.append("logged     " + ", ".join(logged) + " (your loop's own scalars)")
    spans = run.phase_spans()
    if spans:
        lines.append("phases     " + ", ".join(f"{p} {a}–{b}" for p, a, b in spans))
    events = phase_events(run.phase_analysis(), run.scalars["step"])
    if events:
        lines.append("events     " + "; ".join(f"{name} at step {step}" + (
            f" ({detail})" if name == "catapult" else "") for name, step, detail in events))
    lines.append("")
    lines.append(f"{'metric':24s} {'first':>10s} {'max':>10s} {'final':>10s}")
    for name in (*SUMMARY_METRICS, *logged):
        values = run.scalar(name)
        finite = values[np.isfinite(values)]
        if not len(finite):
            continue
        lines.append(f"{name:24s} {_fmt(finite[0]):>10s} {_fmt(finite.max()):>10s} "
                     f"{_fmt(finite[-1]):>10s}")
    return "\n".join(lines)


def format_group(title: str, runs: Mapping[str, RunLike]) -> str:
    """One line per run of an optimizer comparison: optimizer, status, gradient evaluations,
    final training loss and test accuracy."""
    lines = [title, f"{'run':16s} {'optimizer':>16s} {'status':>9s} {'grad evals':>10s} "
             f"{'loss':>9s} {'test acc':>9s}"]
    for name, run in runs.items():
        opt = run.config.optimizer if run.config is not None else "?"
        lines.append(f"{name[:16]:16s} {opt:>16s} {run.status:>9s} "
                     f"{_fmt(run.last('grad_evals')):>10s} {_fmt(run.last('train_loss')):>9s} "
                     f"{_fmt(run.last('test_acc')):>9s}")
    return "\n".join(lines)


def format_sweep(sweep: Sweep) -> str:
    """One line per learning rate: status, final loss, max ‖H‖ vs 2/η, final ⟨‖J‖²⟩; a
    last line for a sweep that was stopped or is still running."""
    lines = [f"{'lr':>8s} {'2/lr':>8s} {'status':>9s} {'step':>6s} {'loss':>9s} "
             f"{'max ‖H‖':>9s} {'⟨‖M‖⟩ pk':>9s} {'⟨‖J‖²⟩':>9s}"]
    max_h, jac = sweep.max_sharpness(), sweep.final_jac()
    for i, (lr, run) in enumerate(zip(sweep.lrs, sweep.runs, strict=True)):
        m = run.scalar("m_norm_mean")
        peak = float(np.nanmax(m)) if np.isfinite(m).any() else math.nan
        lines.append(f"{lr:8.4g} {2 / lr:8.4g} {run.status:>9s} {run.step:6d} "
                     f"{_fmt(run.last('train_loss')):>9s} {_fmt(max_h[i]):>9s} "
                     f"{_fmt(peak):>9s} {_fmt(jac[i]):>9s}")
    status = sweep.status
    if status != "finished":
        not_done = sweep.meta.get("not_started") or sweep.meta.get("missing_runs") or []
        lines.append(f"sweep {status}" + (f"; not run: {', '.join(map(str, not_done))}"
                                          if not_done else ""))
    return "\n".join(lines)


def format_grid(grid: Grid) -> str:
    """One line per run: axis values, status, step, final loss, max ‖H‖, final ⟨‖J‖²⟩."""
    names = list(grid.axes)
    head = " ".join(f"{n:>10s}" for n in names)
    lines = [f"{head} {'status':>9s} {'step':>6s} {'loss':>9s} {'max ‖H‖':>9s} "
             f"{'⟨‖J‖²⟩':>9s}"]
    for values, run in zip(grid.values, grid.runs, strict=True):
        cells = " ".join(f"{_fmt(values[n]) if isinstance(values[n], float) else values[n]!s:>10}"
                         for n in names)
        if run is None:
            lines.append(f"{cells} {'not run':>9s}")
            continue
        h = run.scalar("sharpness")
        max_h = float(np.nanmax(h)) if np.isfinite(h).any() else math.nan
        lines.append(f"{cells} {run.status:>9s} {run.step:6d} "
                     f"{_fmt(run.last('train_loss')):>9s} {_fmt(max_h):>9s} "
                     f"{_fmt(run.last('jac_spectral_sq_mean')):>9s}")
    errors = grid.meta.get("errors") or {}
    for i, err in list(errors.items())[:5]:
        lines.append(f"run {i} failed: {err}")
    return "\n".join(lines)
