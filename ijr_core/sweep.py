"""Learning-rate sweeps: one run per η from the same initialisation and data.

A :class:`Sweep` holds the runs and derives what SCIENCE.md plots across η: the
(η × probe step) matrix of ⟨‖M‖⟩, the final ⟨‖J‖²⟩ per η (implicit Jacobian
regularization: larger η ends with smaller ‖J‖), the largest sharpness per η, and any
metric at a matched training loss.

A sweep is the grid (:mod:`ijr_core.grid`) over the single axis ``lr``, trained by the
same engine and executors (:mod:`ijr_core.executors`: threads of this process by default,
one run per core, or Ray); it keeps its own index file and folder names.

A :class:`SweepControl` stops a running sweep from another thread (a UI): runs not yet
started are never started, runs in progress (in this process or in a worker) stop at their
next step with status "stopped", keeping what they recorded, and the sweep folder then lists
the runs that did start, with status "stopped".

On disk a sweep is a folder: ``sweep.json`` (schema_version, base config, learning rates,
run folder names, status) and one run folder per η. While a sweep is running (or after it was
stopped or killed) the runs that have not written a run folder yet are skipped on loading.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ijr_core.executors import SweepControl, ThreadExecutor, default_workers
from ijr_core.grid_axes import expand
from ijr_core.grid_engine import GridProgress, GridSink, train_all
from ijr_core.names import sweep_member_name as run_folder_name
from ijr_core.protocol import RunLike
from ijr_core.run import (
    Run,
    RunFormatError,
    atomic_write_text,
    load_run,
    now_iso,
    read_json_object,
)

__all__ = ["Sweep", "SweepControl", "default_workers", "is_sweep_folder", "load_sweep",
           "matched_loss_point", "run_folder_name", "sweep_lr"]

SWEEP_SCHEMA_VERSION = 1

SweepCallback = Callable[[int, float, Run], None]


def matched_loss_point(run: RunLike, target: float,
                       name: str = "jac_spectral_sq_mean") -> tuple[float, float]:
    """(step, value of ``name``) at the first probe whose training loss is ≤ ``target``;
    (NaN, NaN) when the run never gets there. Comparing runs at a matched training loss
    separates implicit regularization from "this run simply trained longer"."""
    hit = np.flatnonzero(np.asarray(run.scalar("train_loss"), dtype=float) <= target)
    if not len(hit):
        return math.nan, math.nan
    return float(run.scalar("step")[hit[0]]), float(run.scalar(name)[hit[0]])


@dataclass
class Sweep:
    """Runs of one base config at several learning rates (``lrs[i]`` ↔ ``runs[i]``)."""

    config: Any
    lrs: np.ndarray
    runs: list[Run]
    meta: dict = field(default_factory=dict)

    @property
    def steps(self) -> np.ndarray:
        """Union of the probe steps of all runs, sorted (columns of :meth:`matrix`)."""
        all_steps = [r.scalars["step"] for r in self.runs]
        return np.unique(np.concatenate(all_steps)) if all_steps else np.zeros(0, np.int64)

    def matrix(self, name: str = "m_norm_mean") -> np.ndarray:
        """(η × step) matrix of a scalar metric; NaN where a run has no probe at a step
        (e.g. after it diverged). Rows follow ``lrs``, columns :attr:`steps`."""
        steps = self.steps
        out = np.full((len(self.runs), len(steps)), np.nan)
        for i, run in enumerate(self.runs):
            s = run.scalars
            cols = np.searchsorted(steps, s["step"])
            out[i, cols] = run.scalar(name)
        return out

    def m_norm_matrix(self) -> np.ndarray:
        """(η × step) matrix of ⟨‖M‖⟩."""
        return self.matrix("m_norm_mean")

    def final(self, name: str) -> np.ndarray:
        """Last finite value of a metric per η (NaN when never recorded)."""
        return np.array([r.last(name) for r in self.runs])

    def final_jac(self, kind: str = "spectral") -> np.ndarray:
        """Final ⟨‖J‖²⟩ per η (``kind`` "spectral" or "frobenius")."""
        if kind not in ("spectral", "frobenius"):
            raise ValueError(f"kind must be 'spectral' or 'frobenius', got {kind!r}")
        return self.final(f"jac_{kind}_sq_mean")

    def max_sharpness(self) -> np.ndarray:
        """Largest recorded sharpness ‖H‖ per η."""
        return np.array([np.nanmax(r.scalar("sharpness"), initial=-np.inf) for r in self.runs])

    def at_loss(self, target: float, name: str = "jac_spectral_sq_mean") -> np.ndarray:
        """Per η, ``name`` at the first probe whose train loss ≤ ``target`` (NaN if the run
        never gets there): comparisons at matched training loss (:func:`matched_loss_point`)."""
        return np.array([matched_loss_point(run, target, name)[1] for run in self.runs],
                        dtype=float)

    @property
    def statuses(self) -> list[str]:
        return [r.status for r in self.runs]

    @property
    def status(self) -> str:
        """"finished"; "stopped" when the sweep was stopped before all its runs were done
        (``meta["not_started"]`` then lists the learning rates never trained); a loaded sweep
        folder can also say "running" or "failed" (a sweep in progress, killed or failed)."""
        return self.meta.get("status") or "finished"

    def save(self, out_dir: str | os.PathLike) -> Path:
        """Write the sweep folder: every run plus sweep.json (atomic writes)."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        names = [run_folder_name(i, lr) for i, lr in enumerate(self.lrs)]
        for name, run in zip(names, self.runs, strict=True):
            run.save(out / name)
        _write_sweep_json(out, self.config, self.lrs, names, self.meta, status=self.status)
        return out


def _write_sweep_json(out: Path, config, lrs, names, meta, status: str) -> None:
    doc = {
        "schema_version": SWEEP_SCHEMA_VERSION,
        "kind": "lr_sweep",
        "status": status,
        "config": config.to_dict(),
        "lrs": [float(x) for x in lrs],
        "runs": list(names),
        "meta": {**{k: v for k, v in meta.items() if k != "status"}, "updated": now_iso()},
    }
    atomic_write_text(out / "sweep.json", json.dumps(doc, indent=2, default=str) + "\n")


def _check_lrs(lrs: Sequence[float]) -> np.ndarray:
    try:
        arr = np.asarray([float(x) for x in lrs], dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"learning rates must be numbers, got {lrs!r}") from None
    if arr.ndim != 1 or len(arr) == 0:
        raise ValueError("need at least one learning rate")
    bad = [x for x in arr if not (math.isfinite(x) and x > 0)]
    if bad:
        raise ValueError(f"learning rates must be finite and > 0, got {bad[0]}")
    return arr


def sweep_lr(
    config,
    lrs: Sequence[float],
    out_dir: str | os.PathLike | None = None,
    workers: int | None = None,
    callback: SweepCallback | None = None,
    control: SweepControl | None = None,
    executor=None,
) -> Sweep:
    """Train ``config`` once per learning rate and collect the runs in a :class:`Sweep`.

    ``workers``: runs trained at once, each in its own thread (None = :func:`default_workers`;
    1 = one run after the other in this thread; never more than there are runs). Parallel
    runs use one torch thread each, for the whole process while the sweep lasts; their
    results are identical whatever ``workers`` > 1 is, and can differ from a ``workers=1``
    sweep on several torch threads in the last float32 digits (reductions split
    differently). ``callback(i, lr, run)`` is called as each run completes (possibly from a
    worker thread, never two at once).
    With ``out_dir`` the sweep folder is written there (runs autosave while training).
    ``control`` (a :class:`SweepControl`) lets another thread stop the sweep: the returned
    Sweep (and sweep.json) then holds only the runs that started, with ``status ==
    "stopped"`` and ``meta["not_started"]`` the learning rates never trained.
    ``executor``: where the runs train (default ``ThreadExecutor(workers)``; a
    :class:`~ijr_core.executors.RayExecutor` sends them to a Ray cluster).
    """
    lrs_arr = _check_lrs(lrs)
    configs = [c for _, c in expand(config, {"lr": [float(x) for x in lrs_arr]})]
    if executor is None:
        executor = ThreadExecutor(workers)
    if control is None:
        control = SweepControl()
    elif not isinstance(control, SweepControl):
        raise TypeError(f"control must be a SweepControl, got {type(control).__name__}")
    names = [run_folder_name(i, lr) for i, lr in enumerate(lrs_arr)]
    n = executor.workers_for(config, len(configs)) if hasattr(executor, "workers_for") else None
    meta = {"created": now_iso(), "workers": n}
    folder = None if out_dir is None else Path(out_dir)
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
        _write_sweep_json(folder, config, lrs_arr, names, meta, status="running")
    tracker = GridProgress({i: c.steps for i, c in enumerate(configs)}, len(configs))
    sink = GridSink(len(configs), tracker, fail_fast=True,
                    callback=None if callback is None
                    else lambda i, run: callback(i, float(lrs_arr[i]), run))
    jobs = [(i, c, None if folder is None else folder / names[i]) for i, c in enumerate(configs)]
    try:
        train_all(jobs, executor, sink, control)
    except BaseException as exc:
        status = "stopped" if isinstance(exc, KeyboardInterrupt) else "failed"
        if folder is not None:
            with contextlib.suppress(OSError):  # keep the original error
                _write_sweep_json(folder, config, lrs_arr, names, meta, status=status)
        raise
    runs = sink.runs
    started = [i for i, run in enumerate(runs) if run is not None]
    stopped = len(started) < len(runs) or any(runs[i].status == "stopped" for i in started)
    meta["status"] = "stopped" if stopped else "finished"
    if len(started) < len(runs):
        meta["not_started"] = [float(lrs_arr[i]) for i in range(len(runs)) if runs[i] is None]
    lrs_arr = lrs_arr[started]
    if folder is not None:
        _write_sweep_json(folder, config, lrs_arr, [names[i] for i in started], meta,
                          status=meta["status"])
    return Sweep(config=config, lrs=lrs_arr, runs=[runs[i] for i in started], meta=meta)


def _plain_name(name: str) -> bool:
    """A single path component naming a sub-folder: no separators, not "." or "..",
    not hidden, at most 255 characters."""
    return (
        0 < len(name) <= 255 and "/" not in name and "\\" not in name and "\0" not in name
        and not name.startswith(".")
    )


def load_sweep(sweep_dir: str | os.PathLike) -> Sweep:
    """Load a sweep folder; a damaged one raises :class:`RunFormatError` saying what is wrong.

    A sweep that is still running, or was stopped or killed, lists runs that may not have
    written their folder yet: those are skipped (``meta["missing_runs"]`` names them). In a
    finished sweep every run must be there."""
    folder = Path(sweep_dir)
    path = folder / "sweep.json"
    if not path.exists():
        raise RunFormatError(f"{path} is missing (not a sweep folder)")
    doc = read_json_object(path)
    if doc.get("schema_version") != SWEEP_SCHEMA_VERSION:
        version = doc.get("schema_version")
        raise RunFormatError(f"{path} has unknown schema_version {version!r}")
    for key in ("config", "lrs", "runs"):
        if key not in doc:
            raise RunFormatError(f"{path} has no {key!r}")
    lrs, names, meta = doc["lrs"], doc["runs"], doc.get("meta", {})
    if not isinstance(lrs, list) or not all(isinstance(x, (int, float)) for x in lrs):
        raise RunFormatError(f"{path}: 'lrs' must be a list of numbers")
    if not isinstance(names, list) or not all(isinstance(x, str) for x in names):
        raise RunFormatError(f"{path}: 'runs' must be a list of folder names")
    for name in names:  # checked before any is looked up: says nothing about outside paths
        if not _plain_name(name):
            raise RunFormatError(f"{path}: run {name[:80]!r} is not a folder name inside the sweep")
    if not isinstance(meta, dict):
        raise RunFormatError(f"{path}: 'meta' must be an object")
    if len(lrs) != len(names):
        raise RunFormatError(f"{path}: {len(lrs)} learning rates but {len(names)} runs")
    from ijr_core.config import RunConfig

    try:
        config = RunConfig.from_dict(doc["config"])
    except (ValueError, TypeError) as exc:
        raise RunFormatError(f"{path}: invalid config: {exc}") from None
    status = doc.get("status")
    kept, missing = [], []
    for i, name in enumerate(names):
        if status != "finished" and not (folder / name / "run.json").exists():
            missing.append(name)
        else:
            kept.append(i)
    runs = [load_run(folder / names[i]) for i in kept]
    meta = {**meta, "status": status}
    if missing:
        meta["missing_runs"] = missing
    return Sweep(config=config, lrs=np.asarray([lrs[i] for i in kept], dtype=np.float64),
                 runs=runs, meta=meta)


def is_sweep_folder(path: str | os.PathLike) -> bool:
    """True when ``path`` holds a sweep.json."""
    return (Path(path) / "sweep.json").exists()
