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
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ijr_core.config import ConfigError, RunConfig
from ijr_core.executors import SweepControl, ThreadExecutor
from ijr_core.names import grid_member_name
from ijr_core.run import STATUSES, Run, RunFormatError, atomic_write_text, load_run, now_iso
from ijr_core.values import parse_values

GRID_SCHEMA_VERSION = 1
MAX_RUNS = 1000
MAX_INDEX_BYTES = 8 * 1024 * 1024  # grid.json / run.json read when resuming
IDENTITY_EXCLUDED = ("name", "device")
RESULTS = ("finished", "diverged")  # complete on disk: never trained again

GridCallback = Callable[[int, dict, Run], None]


# --------------------------------------------------------------------------- axes


def parse_axes(specs: Mapping[str, str] | Sequence[str]) -> dict[str, list]:
    """Axes from ``["lr=0.1,0.5", "seed=0:2:3"]`` or ``{"lr": "0.1,0.5"}``: each field's
    values in the grammar of :mod:`ijr_core.values`, typed like the field ("none" for an
    optional one). Raises ConfigError naming the field."""
    from ijr_core.config import _field_types
    from ijr_core.config_codec import parse_str

    pairs = []
    if isinstance(specs, Mapping):
        pairs = list(specs.items())
    else:
        for spec in specs:
            name, sep, text = str(spec).partition("=")
            if not sep:
                raise ConfigError(name.strip() or None, spec,
                                  "an axis is FIELD=VALUES, e.g. lr=0.1,0.5 or seed=0:2:3")
            pairs.append((name.strip(), text))
    types = _field_types()
    axes: dict[str, list] = {}
    for name, text in pairs:
        if name not in types:
            raise ConfigError(name, text, f"unknown field {name!r}; known fields: "
                                          f"{', '.join(types)}")
        if name in axes:
            raise ConfigError(name, text, "this axis is given twice")
        base, _ = types[name]
        kind = base if base in (int, float) else str
        try:
            axes[name] = parse_values(
                text, kind, name,
                parse_one=lambda tok, n=name: parse_str(n, tok, types[n]),
            )
        except ConfigError:
            raise
        except ValueError as exc:
            raise ConfigError(name, text, str(exc).removeprefix(f"{name}: ")) from None
    return axes


def expand(base: RunConfig, axes: Mapping[str, Sequence]) -> list[tuple[dict, RunConfig]]:
    """(axis values, config) of every run, the last axis varying fastest; every config is
    validated here. ConfigError (naming the field) on an unknown field, an empty axis, a
    value the field does not allow, or more than MAX_RUNS runs."""
    if not isinstance(base, RunConfig):
        raise TypeError(f"base must be a RunConfig, got {type(base).__name__}")
    if not isinstance(axes, Mapping) or not axes:
        raise ConfigError(None, axes, "give at least one axis, e.g. {'lr': [0.1, 0.5]}")
    axes = {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in axes.items()}
    names = list(axes)
    known = base.to_dict()
    for name in names:
        if name not in known:
            raise ConfigError(name, axes[name], f"unknown field {name!r}; known fields: "
                                                f"{', '.join(known)}")
        values = axes[name]
        if isinstance(values, (str, bytes)) or not isinstance(values, Sequence) or not values:
            raise ConfigError(name, values, "an axis needs a non-empty list of values")
    total = math.prod(len(axes[n]) for n in names)
    if total > MAX_RUNS:
        raise ConfigError(names[0], total, f"a grid has at most {MAX_RUNS} runs, this one "
                                           f"{' × '.join(str(len(axes[n])) for n in names)}")
    return [(combo, _replace(base, combo))
            for combo in (dict(zip(names, vals, strict=True))
                          for vals in itertools.product(*(axes[n] for n in names)))]


def _replace(base: RunConfig, combo: dict) -> RunConfig:
    try:
        return base.replace(**combo)
    except ConfigError as exc:
        if len(combo) == 1:
            raise
        what = ", ".join(f"{k}={v}" for k, v in combo.items())
        raise ConfigError(exc.field, exc.value, f"{exc.allowed} (in the run {what})") from None
    except (TypeError, ValueError) as exc:
        name = next(iter(combo))
        raise ConfigError(name, combo[name], str(exc)) from None


def config_key(config: RunConfig | Mapping) -> str:
    """Identity of a run: a hash of its configuration without ``name`` and ``device``."""
    d = config.to_dict() if isinstance(config, RunConfig) else dict(config)
    doc = {k: v for k, v in sorted(d.items()) if k not in IDENTITY_EXCLUDED}
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:20]


# --------------------------------------------------------------------------- progress


class GridProgress:
    """Counts of a grid while it trains (thread-safe): runs done / total, running, failed,
    skipped (complete on disk already), retried starts, and an ETA from the steps done so
    far: elapsed · (1 − f) / f, f = steps done / steps of the runs this session trains."""

    def __init__(self, steps: Mapping[int, int], total: int, skipped: int = 0) -> None:
        self._lock = threading.Lock()
        self._steps_of = dict(steps)  # index -> steps of the runs to train
        self.total, self.skipped = total, skipped
        self._step: dict[int, int] = {}
        self._running: set[int] = set()
        self._done: dict[int, str] = {}
        self._failed: set[int] = set()
        self._attempts: dict[int, int] = {}
        self.nodes: dict[int, str] = {}  # index -> node of its latest start (Ray)
        self._t0 = time.perf_counter()

    def started(self, i: int, attempt: int = 1, node: str | None = None) -> None:
        """Run ``i`` started (its ``attempt``-th start: a Ray task retried after its worker
        or node died starts again from step 0); idempotent."""
        with self._lock:
            if i in self._done or i in self._failed:
                return
            if attempt > self._attempts.get(i, 0):
                self._attempts[i] = attempt
                self._step[i] = 0
            self._running.add(i)
            if node is not None:
                self.nodes[i] = node

    def steps(self) -> dict[int, int]:
        """Index -> step reached (last probe) of each run trained this session."""
        with self._lock:
            return dict(self._step)

    def running(self) -> dict[int, str | None]:
        """Index -> node (None in this process) of each run in progress."""
        with self._lock:
            return {i: self.nodes.get(i) for i in self._running}

    def step(self, i: int, step: int) -> None:
        with self._lock:
            if i in self._running:
                self._step[i] = max(0, min(int(step), self._steps_of.get(i, step)))

    def done(self, i: int, status: str) -> None:
        with self._lock:
            self._running.discard(i)
            self._done[i] = status
            self._step[i] = self._steps_of.get(i, 0)
            if status == "failed":
                self._failed.add(i)

    def failed(self, i: int) -> None:
        with self._lock:
            self._running.discard(i)
            self._failed.add(i)

    def snapshot(self) -> dict:
        with self._lock:
            todo = sum(self._steps_of.values())
            done_steps = sum(self._step.get(i, 0) for i in self._steps_of)
            finished = len(self._done) - len(self._failed & set(self._done))
            running, failed = len(self._running), len(self._failed)
            retries = sum(a - 1 for a in self._attempts.values())
            diverged = sum(1 for s in self._done.values() if s == "diverged")
        elapsed = time.perf_counter() - self._t0
        frac = done_steps / todo if todo else 1.0
        eta = elapsed * (1 - frac) / frac if 0 < frac < 1 else (0.0 if frac >= 1 else None)
        return {"total": self.total, "done": self.skipped + finished, "skipped": self.skipped,
                "running": running, "failed": failed, "diverged": diverged, "retries": retries,
                "fraction": (self.skipped + finished) / self.total if self.total else 1.0,
                "step_fraction": frac, "elapsed": elapsed, "eta": eta}

    def line(self, elapsed: bool = True) -> str:
        """One line: ``4/6 done · 2 running · 0 failed · elapsed 40 s · eta 31 s``."""
        s = self.snapshot()
        eta = "?" if s["eta"] is None else f"{s['eta']:.0f} s"
        extra = f" · {s['skipped']} resumed" if s["skipped"] else ""
        extra += f" · {s['retries']} retried" if s["retries"] else ""
        extra += f" · elapsed {s['elapsed']:.0f} s" if elapsed else ""
        return (f"{s['done']}/{s['total']} done · {s['running']} running · "
                f"{s['failed']} failed{extra} · eta {eta}")


class GridSink:
    """What executors report to: keeps the runs, updates the progress, calls the callback
    (``callback(i, run)``, never two at once). A run that cannot be trained at all stops the
    grid when ``fail_fast`` (sweeps), else it is counted as failed and the grid goes on."""

    def __init__(self, n: int, progress: GridProgress, callback=None,
                 fail_fast: bool = True) -> None:
        self.runs: list[Run | None] = [None] * n
        self.errors: dict[int, str] = {}
        self.progress, self.callback, self.fail_fast = progress, callback, fail_fast
        self._lock = threading.Lock()

    def started(self, i: int, attempt: int = 1, node: str | None = None) -> None:
        self.progress.started(i, attempt, node)

    def step(self, i: int, step: int) -> None:
        self.progress.step(i, step)

    def done(self, i: int, run: Run) -> None:
        with self._lock:
            self.runs[i] = run
            self.progress.done(i, run.status)
            if self.callback is not None:
                self.callback(i, run)

    def failed(self, i: int, exc: BaseException) -> bool:
        with self._lock:
            self.errors[i] = f"{type(exc).__name__}: {exc}"[:500]
            self.progress.failed(i)
        return self.fail_fast


def train_all(jobs, executor, sink: GridSink, control: SweepControl) -> None:
    """Train ``jobs`` ((index, config, folder) triples) with ``executor``, reporting to
    ``sink``; detaches the control afterwards. The one engine of grids and sweeps."""
    try:
        executor.run(list(jobs), sink, control)
    finally:
        control._detach()


# --------------------------------------------------------------------------- the grid


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
