"""Learning-rate sweeps: one run per η from the same initialisation and data.

A :class:`Sweep` holds the runs and derives what SCIENCE.md plots across η: the
(η × probe step) matrix of ⟨‖M‖⟩, the final ⟨‖J‖²⟩ per η (implicit Jacobian
regularization: larger η ends with smaller ‖J‖), the largest sharpness per η, and any
metric at a matched training loss.

On the CPU the runs are spread over every core: one thread per core (this one included)
takes runs from a shared queue, each run with one torch thread (the thread count of the
process is set to 1 for the sweep and restored after). Torch releases the GIL inside its
kernels, so threads scale like processes here, without the seconds each worker process
spends importing torch and without sending runs between processes (measured in
bench/bench_sweep.py). A GPU sweep runs one run after the other.

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
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ijr_core.run import (
    Run,
    RunFormatError,
    atomic_write_text,
    load_run,
    now_iso,
    read_json_object,
)

SWEEP_SCHEMA_VERSION = 1

SweepCallback = Callable[[int, float, Run], None]


class SweepControl:
    """Stops a running :func:`sweep_lr` from another thread; ``stop()`` is thread-safe,
    idempotent and returns at once (the runs in progress end at their next step).

    One control per sweep. ``stopped`` is True from ``stop()`` on."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._event = threading.Event()
        self._hooks: list[Callable[[], None]] = []

    def stop(self) -> None:
        """Start no more runs and stop the ones in progress (status "stopped")."""
        with self._lock:
            if self._event.is_set():
                return
            self._event.set()
            hooks, self._hooks = self._hooks, []
        for hook in hooks:
            hook()

    @property
    def stopped(self) -> bool:
        return self._event.is_set()

    def _on_stop(self, hook: Callable[[], None]) -> None:
        """Call ``hook()`` when stopped (at once when already stopped)."""
        with self._lock:
            if not self._event.is_set():
                self._hooks.append(hook)
                return
        hook()

    def _detach(self) -> None:
        """Forget the hooks of a sweep that has ended."""
        with self._lock:
            self._hooks = []

    def _training_control(self):
        """A TrainingControl for one run in this process, stopped with the sweep."""
        from ijr_core.trainer import TrainingControl

        return TrainingControl(stop_event=self._event)


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
        never gets there): comparisons at matched training loss."""
        out = np.full(len(self.runs), np.nan)
        for i, run in enumerate(self.runs):
            hit = np.flatnonzero(run.scalar("train_loss") <= target)
            if len(hit):
                out[i] = run.scalar(name)[hit[0]]
        return out

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


def run_folder_name(index: int, lr: float) -> str:
    """Folder name of the index-th run of a sweep, e.g. ``lr-03-0.25``."""
    return f"lr-{index:02d}-{lr:g}"


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


def default_workers(config, n_runs: int) -> int:
    """Runs trained at once in a sweep: one per CPU core on the CPU, 1 on an accelerator."""
    from ijr_core.config import resolve_device, usable_cores

    if resolve_device(config.device).type != "cpu":
        return 1
    return max(1, min(n_runs, usable_cores()))


def sweep_lr(
    config,
    lrs: Sequence[float],
    out_dir: str | os.PathLike | None = None,
    workers: int | None = None,
    callback: SweepCallback | None = None,
    control: SweepControl | None = None,
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
    """
    lrs_arr = _check_lrs(lrs)
    configs = [config.replace(lr=float(lr)) for lr in lrs_arr]
    n = default_workers(config, len(configs)) if workers is None else int(workers)
    if n < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    n = min(n, len(configs))  # no idle workers
    if control is None:
        control = SweepControl()
    elif not isinstance(control, SweepControl):
        raise TypeError(f"control must be a SweepControl, got {type(control).__name__}")
    names = [run_folder_name(i, lr) for i, lr in enumerate(lrs_arr)]
    meta = {"created": now_iso(), "workers": n}
    folder = None if out_dir is None else Path(out_dir)
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
        _write_sweep_json(folder, config, lrs_arr, names, meta, status="running")
    try:
        runs = _run_all(configs, folder, names, lrs_arr, callback, n, control)
    except BaseException as exc:
        status = "stopped" if isinstance(exc, KeyboardInterrupt) else "failed"
        if folder is not None:
            with contextlib.suppress(OSError):  # keep the original error
                _write_sweep_json(folder, config, lrs_arr, names, meta, status=status)
        raise
    finally:
        control._detach()
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


def _run_all(configs, folder, names, lrs, callback, n, control) -> list[Run | None]:
    """Train the configs with ``n`` threads (this one included) taking runs from one queue
    (None: never started). A failing run or callback stops the others and is re-raised."""
    from ijr_core.trainer import train

    jobs = _JobQueue(len(configs))
    control._on_stop(jobs.close)
    runs: list[Run | None] = [None] * len(configs)
    errors: list[BaseException] = []
    report = threading.Lock()

    def work() -> None:
        while (i := jobs.take()) is not None:
            try:
                out = None if folder is None else folder / names[i]
                run = train(configs[i], out_dir=out, control=control._training_control())
                with report:
                    runs[i] = run
                    if callback is not None:
                        callback(i, float(lrs[i]), run)
            except BaseException as exc:
                errors.append(exc)
                control.stop()  # the sweep has failed: the other runs need not finish
                return

    helpers = [threading.Thread(target=work, name=f"ijr-sweep-{k}", daemon=True)
               for k in range(n - 1)]
    with _one_torch_thread(bool(helpers)):
        started: list[threading.Thread] = []
        try:
            for t in helpers:
                t.start()
                started.append(t)
            work()
            for t in started:
                while t.is_alive():  # a timed join, so that Ctrl-C reaches this thread
                    t.join(0.2)
        except BaseException:  # e.g. KeyboardInterrupt here: stop the helpers' runs too
            control.stop()
            for t in started:
                t.join()
            raise
    if errors:
        raise errors[0]
    return runs


_THREADS_LOCK = threading.Lock()
_THREADS_USERS = 0
_THREADS_BEFORE = 0


@contextlib.contextmanager
def _one_torch_thread(active: bool):
    """While parallel sweeps run, torch uses one intra-op thread per run (the setting is
    process-wide); the count from before the first of any overlapping sweeps comes back after
    the last one ends."""
    global _THREADS_USERS, _THREADS_BEFORE
    import torch

    if not active:
        yield
        return
    with _THREADS_LOCK:
        if _THREADS_USERS == 0:
            _THREADS_BEFORE = torch.get_num_threads()
            torch.set_num_threads(1)
        _THREADS_USERS += 1
    try:
        yield
    finally:
        with _THREADS_LOCK:
            _THREADS_USERS -= 1
            if _THREADS_USERS == 0:
                torch.set_num_threads(_THREADS_BEFORE)


class _JobQueue:
    """Indices 0..n-1 handed out once each (thread-safe); closing stops handing out."""

    def __init__(self, n: int) -> None:
        self._lock = threading.Lock()
        self._todo = list(range(n))
        self._closed = False

    def take(self) -> int | None:
        with self._lock:
            return None if self._closed or not self._todo else self._todo.pop(0)

    def close(self) -> None:
        with self._lock:
            self._closed = True


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
