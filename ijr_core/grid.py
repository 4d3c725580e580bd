"""Grids of runs: one base config and any RunConfig fields as axes (η × seed × optimizer …).

``run_grid(base, {"lr": [0.1, 0.5], "seed": [0, 1, 2]}, out_dir)`` trains the Cartesian
product (the last axis varying fastest) with an executor (:mod:`ijr_core.executors`:
threads of this process by default, or Ray). Every configuration is built and validated
before anything starts: an unknown field or a value the field does not allow raises
:class:`~ijr_core.config.ConfigError` naming the field.

On disk a grid is a folder: ``grid.json`` (schema_version, kind "grid", status, base
config, axes, and per run its folder, axis values and configuration key) and one run folder
per configuration. A run is identified by its configuration, not its folder name:
:func:`config_key` hashes every field except ``name`` and ``device`` (a run trained on a GPU
worker is the same run). Running the same grid into the same folder again (after a killed
driver, a Ctrl-C, a failed run) resumes it: runs complete on disk (status "finished" or
"diverged": a run that diverges is a result, not a failure) are kept, whatever their folder
is called, and only the others are trained.

:func:`train_all` is the one engine: :func:`ijr_core.sweep.sweep_lr` is the grid over the
single axis ``lr`` with its own index file (sweep.json).

Layout: this module holds :class:`Grid`, :func:`run_grid` and the grid folder (grid.json,
resume, loading) and keeps every name below importable from here; the axes, their
expansion and :func:`config_key` are in :mod:`ijr_core.grid_axes`, the training engine
(:class:`GridProgress`, :class:`GridSink`, :func:`train_all`) in :mod:`ijr_core.grid_engine`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ijr_core.config import ConfigError, RunConfig
from ijr_core.executors import SweepControl, ThreadExecutor
from ijr_core.grid_axes import MAX_RUNS, config_key, expand, parse_axes
from ijr_core.grid_engine import GridProgress, GridSink, train_all
from ijr_core.names import grid_member_name
from ijr_core.run import STATUSES, Run, RunFormatError, atomic_write_text, load_run, now_iso

__all__ = [
    "GRID_SCHEMA_VERSION", "MAX_INDEX_BYTES", "RESULTS", "Grid", "GridCallback", "complete_runs",
    "is_grid_folder", "load_grid", "run_grid", "seed_mean_run",
    # from grid_axes and grid_engine, for the code that imports them from here
    "MAX_RUNS", "GridProgress", "GridSink", "config_key", "expand",
    "parse_axes", "train_all",
]

GRID_SCHEMA_VERSION = 1
MAX_INDEX_BYTES = 8 * 1024 * 1024  # grid.json / run.json read when resuming
RESULTS = ("finished", "diverged")  # complete on disk: never trained again

GridCallback = Callable[[int, dict, Run], None]


@dataclass
class Grid:
    """Runs of a grid: ``values[i]`` (axis values) ↔ ``runs[i]`` ↔ ``folders[i]``; runs that
    were not trained (yet) are None."""

    config: RunConfig
    axes: dict[str, list]
    values: list[dict]
    runs: list[Run | None]
    folders: list[str]
    meta: dict = field(default_factory=dict)

    @property
    def status(self) -> str:
        return self.meta.get("status") or "finished"

    def present(self) -> dict[str, Run]:
        """Folder name -> run, for the runs that exist."""
        return {f: r for f, r in zip(self.folders, self.runs, strict=True) if r is not None}

    def sweep(self, fixed: Mapping | None = None):
        """A :class:`ijr_core.sweep.Sweep` over η of the runs whose other axes take the
        ``fixed`` values (default: the first value of each): one row per η, the mean over
        seeds (:func:`seed_mean_run`, with ``<metric>_std`` columns for bands)."""
        from ijr_core.sweep import Sweep

        if "lr" not in self.axes:
            raise ValueError("this grid has no lr axis")
        fixed = dict(fixed or {})
        others = [a for a in self.axes if a not in ("lr", "seed")]
        want = {a: fixed.get(a, self.axes[a][0]) for a in others}
        lrs, runs = [], []
        for lr in self.axes["lr"]:
            members = [r for v, r in zip(self.values, self.runs, strict=True)
                       if r is not None and v["lr"] == lr
                       and all(v[a] == want[a] for a in others)]
            if members:
                lrs.append(float(lr))
                runs.append(seed_mean_run(members))
        base = self.config.replace(**{a: want[a] for a in others}) if others else self.config
        return Sweep(config=base, lrs=np.asarray(lrs, dtype=np.float64), runs=runs,
                     meta={"status": self.status, "grid": want})


def seed_mean_run(runs: Sequence[Run]) -> Run:
    """A run whose scalars are the mean over ``runs`` (seeds of one configuration) at each
    step any of them recorded (NaN-aware: a run that diverged stops counting), with
    ``<metric>_std`` the standard deviation (ddof 0) beside each metric. A single run is
    returned as it is. Status: "diverged" or "failed" if any member was, else "finished"
    when all finished, else "stopped"."""
    if len(runs) == 1:
        return runs[0]
    steps = np.unique(np.concatenate([r.scalars["step"] for r in runs]))
    names = [k for k in runs[0].scalars if k != "step"]
    cols: dict[str, list[float]] = {}
    for name in names:
        stack = np.full((len(runs), len(steps)), np.nan)
        for j, run in enumerate(runs):
            at = np.searchsorted(steps, run.scalars["step"])
            stack[j, at] = run.scalar(name)
        seen = np.isfinite(stack).any(axis=0)
        mean = np.full(len(steps), np.nan)
        std = np.full(len(steps), np.nan)
        mean[seen] = np.nanmean(stack[:, seen], axis=0)
        std[seen] = np.nanstd(stack[:, seen], axis=0)
        cols[name], cols[f"{name}_std"] = mean.tolist(), std.tolist()
    statuses = {r.status for r in runs}
    status = next((s for s in ("diverged", "failed") if s in statuses),
                  "finished" if statuses == {"finished"} else "stopped")
    out = Run(runs[0].config, status=status,
              meta={"seeds": [getattr(r.config, "seed", None) for r in runs],
                    "source": "seed mean"})
    out._steps = [int(s) for s in steps]
    out._cols = cols
    out.step = int(steps[-1]) if len(steps) else 0
    return out


def run_grid(
    base: RunConfig,
    axes: Mapping[str, Sequence],
    out_dir: str | os.PathLike | None = None,
    executor=None,
    callback: GridCallback | None = None,
    control: SweepControl | None = None,
    progress: Callable[[GridProgress], None] | None = None,
) -> Grid:
    """Train the grid ``base`` × ``axes`` and return it (see the module docstring).

    ``executor``: :class:`~ijr_core.executors.ThreadExecutor` (default) or
    :class:`~ijr_core.executors.RayExecutor`. With ``out_dir`` the grid folder is written
    there, and runs already complete in it are kept (resume). ``callback(i, values, run)``
    follows each run as it ends; ``progress(p)`` receives the :class:`GridProgress` before
    training starts (to poll from a UI). ``control`` stops the grid: runs in progress keep
    what they recorded (threads) or are cancelled (Ray); every finished run stays loadable.
    A run that cannot be trained is counted as failed (grid status "failed") and the
    others go on; training the grid again retries it."""
    if isinstance(axes, Mapping):  # numpy arrays as plain lists (JSON, comparisons)
        axes = {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in axes.items()}
    plan = expand(base, axes)
    configs = [c for _, c in plan]
    values = [v for v, _ in plan]
    keys = [config_key(c) for c in configs]
    if len(set(keys)) < len(keys):
        raise ConfigError(next(iter(axes)), None, "two runs of the grid have the same "
                                                  "configuration (a repeated value?)")
    executor = executor if executor is not None else ThreadExecutor()
    control = control if control is not None else SweepControl()
    if not isinstance(control, SweepControl):
        raise TypeError(f"control must be a SweepControl, got {type(control).__name__}")
    folder = None if out_dir is None else Path(out_dir)
    names = [grid_member_name(i, v) for i, v in enumerate(values)]
    runs: list[Run | None] = [None] * len(plan)
    kept: set[int] = set()
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
        found = complete_runs(folder)
        for i, key in enumerate(keys):
            if key in found:
                names[i] = found[key]
                kept.add(i)
        taken = {names[i] for i in kept}
        for i in set(range(len(plan))) - kept:
            if names[i] in taken:  # a kept run of another configuration has this name
                names[i] = f"{names[i]}-{keys[i][:8]}"
        for i in kept:
            runs[i] = load_run(folder / names[i])
    todo = [i for i in range(len(plan)) if i not in kept]
    meta = {"created": now_iso(), **executor.describe(), "resumed": len(kept)}
    tracker = GridProgress({i: configs[i].steps for i in todo}, len(plan), skipped=len(kept))
    if progress is not None:
        progress(tracker)
    sink = GridSink(len(plan), tracker, fail_fast=False,
                    callback=None if callback is None
                    else lambda i, run: callback(i, values[i], run))
    write = (lambda status: None) if folder is None else (
        lambda status: _write_grid_json(folder, base, axes, values, names, keys, meta, status,
                                        sink, tracker))
    write("running")
    jobs = [(i, configs[i], None if folder is None else folder / names[i]) for i in todo]
    try:
        train_all(jobs, executor, sink, control)
    except BaseException as exc:
        write("stopped" if isinstance(exc, KeyboardInterrupt) else "failed")
        raise
    for i in todo:
        runs[i] = sink.runs[i]
    if control.stopped:
        status = "stopped"
    elif sink.errors or any(r is None or r.status not in RESULTS for r in runs):
        status = "failed"
    else:
        status = "finished"
    meta["status"] = status
    write(status)
    return Grid(config=base, axes={k: list(v) for k, v in axes.items()}, values=values,
                runs=runs, folders=names, meta={**meta, "errors": dict(sink.errors)})


def _write_grid_json(folder, base, axes, values, names, keys, meta, status, sink,
                     tracker) -> None:
    counts = tracker.snapshot()
    doc = {
        "schema_version": GRID_SCHEMA_VERSION,
        "kind": "grid",
        "status": status,
        "config": base.to_dict(),
        "axes": {k: list(v) for k, v in axes.items()},
        "runs": list(names),
        "values": values,
        "keys": keys,
        "meta": {**{k: v for k, v in meta.items() if k != "status"}, "updated": now_iso(),
                 "done": counts["done"], "failed": counts["failed"],
                 "retries": counts["retries"], "errors": {str(k): v for k, v in
                                                          sink.errors.items()}},
    }
    atomic_write_text(folder / "grid.json", json.dumps(doc, indent=2, default=str) + "\n")


def _read_small_json(path: Path) -> dict | None:
    """A JSON object from a file of at most MAX_INDEX_BYTES, else None."""
    try:
        if path.stat().st_size > MAX_INDEX_BYTES:
            return None
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def complete_runs(folder: Path) -> dict[str, str]:
    """Configuration key -> folder name of every run directly in ``folder`` that is
    complete on disk (run.json says "finished" or "diverged" and holds a valid config)."""
    out: dict[str, str] = {}
    for sub in sorted(Path(folder).iterdir()):
        if not sub.is_dir() or sub.is_symlink():
            continue
        doc = _read_small_json(sub / "run.json")
        if not doc or doc.get("status") not in RESULTS or not isinstance(doc.get("config"), dict):
            continue
        try:
            key = config_key(RunConfig.from_dict(doc["config"]))
        except (ValueError, TypeError):
            continue
        out.setdefault(key, sub.name)
    return out


def load_grid(grid_dir: str | os.PathLike, load: Callable[[Path], Run] = load_run) -> Grid:
    """Load a grid folder (each run read with ``load``, e.g. a cached loader). A grid that
    is not finished (running, stopped, failed, killed) holds the runs saved so far (None for
    the others); in a finished one every run must be there. RunFormatError says what is
    wrong with a damaged one."""
    folder = Path(grid_dir)
    path = folder / "grid.json"
    if not path.is_file():
        raise RunFormatError(f"{path} is missing (not a grid folder)")
    doc = _read_small_json(path)
    if doc is None:
        raise RunFormatError(f"{path} is not a JSON object of at most "
                             f"{MAX_INDEX_BYTES // 2**20} MiB")
    if doc.get("schema_version") != GRID_SCHEMA_VERSION or doc.get("kind") != "grid":
        raise RunFormatError(f"{path} has an unknown schema_version or kind")
    names, values, axes = doc.get("runs"), doc.get("values"), doc.get("axes")
    if (not isinstance(names, list) or not isinstance(values, list)
            or not isinstance(axes, dict) or len(names) != len(values)
            or len(names) > MAX_RUNS):
        raise RunFormatError(f"{path}: 'runs', 'values' and 'axes' do not match")
    status = doc.get("status")
    if status not in STATUSES:
        raise RunFormatError(f"{path} has status {status!r}")
    try:
        config = RunConfig.from_dict(doc.get("config") or {})
    except (ValueError, TypeError) as exc:
        raise RunFormatError(f"{path}: invalid config: {exc}") from None
    root = folder.resolve()
    runs: list[Run | None] = []
    for name, value in zip(names, values, strict=True):
        if not isinstance(name, str) or not isinstance(value, dict) or \
                set(value) != set(axes) or (folder / name).resolve().parent != root:
            raise RunFormatError(f"{path}: bad run entry {str(name)[:80]!r}")
        if status != "finished" and not (folder / name / "run.json").is_file():
            runs.append(None)
            continue
        runs.append(load(folder / name))
    meta = {**(doc.get("meta") if isinstance(doc.get("meta"), dict) else {}), "status": status}
    return Grid(config=config, axes={str(k): list(v) if isinstance(v, list) else [v]
                                     for k, v in axes.items()},
                values=values, runs=runs, folders=list(names), meta=meta)


def is_grid_folder(path: str | os.PathLike) -> bool:
    """True when ``path`` holds a grid.json."""
    return (Path(path) / "grid.json").is_file()
