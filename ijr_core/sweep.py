"""Learning-rate sweeps: one run per η from the same initialisation and data.

A :class:`Sweep` holds the runs and derives what SCIENCE.md plots across η: the
(η × probe step) matrix of ⟨‖M‖⟩, the final ⟨‖J‖²⟩ per η (implicit Jacobian
regularization: larger η ends with smaller ‖J‖), the largest sharpness per η, and any
metric at a matched training loss.

On the CPU the runs are spread over every core: this process trains some of them while
``n - 1`` worker processes (``multiprocessing``, spawn context) train the others, one
torch thread each (the thread count of this process is set to 1 for the sweep and
restored after). This process starts at once, which hides the workers' start-up (importing
torch and the data takes seconds). A GPU sweep runs in this process, one run after the
other. Runs travel between processes as saved run folders (configs as plain dicts), never
as pickled tensors.

On disk a sweep is a folder: ``sweep.json`` (schema_version, base config, learning rates,
run folder names, status) and one run folder per η.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ijr_core.run import Run, RunFormatError, atomic_write_text, load_run, now_iso

SWEEP_SCHEMA_VERSION = 1

SweepCallback = Callable[[int, float, Run], None]


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

    def save(self, out_dir: str | os.PathLike) -> Path:
        """Write the sweep folder: every run plus sweep.json (atomic writes)."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        names = [run_folder_name(i, lr) for i, lr in enumerate(self.lrs)]
        for name, run in zip(names, self.runs, strict=True):
            run.save(out / name)
        _write_sweep_json(out, self.config, self.lrs, names, self.meta, status="finished")
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
        "meta": {**meta, "updated": now_iso()},
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


def default_processes(config, n_runs: int) -> int:
    """Worker processes for a sweep: every CPU core on the CPU, 1 on an accelerator."""
    from ijr_core.config import resolve_device

    if resolve_device(config.device).type != "cpu":
        return 1
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, min(n_runs, cores or 1))


def _worker(config_dict: dict, run_dir: str, threads: int) -> str:
    """Body of one sweep process: train one config into ``run_dir``; returns the status."""
    import torch

    from ijr_core.config import RunConfig
    from ijr_core.trainer import train

    torch.set_num_threads(threads)
    run = train(RunConfig.from_dict(config_dict), out_dir=run_dir)
    return run.status


def sweep_lr(
    config,
    lrs: Sequence[float],
    out_dir: str | os.PathLike | None = None,
    processes: int | None = None,
    callback: SweepCallback | None = None,
) -> Sweep:
    """Train ``config`` once per learning rate and collect the runs in a :class:`Sweep`.

    ``processes``: worker processes (None = :func:`default_processes`; 1 = in this process,
    one run after the other). ``callback(i, lr, run)`` is called as each run completes
    (in parallel sweeps possibly from a helper thread, never two at once).
    With ``out_dir`` the sweep folder is written there (runs autosave while training);
    without, runs go through a temporary folder.
    """
    lrs_arr = _check_lrs(lrs)
    configs = [config.replace(lr=float(lr)) for lr in lrs_arr]
    n_proc = default_processes(config, len(configs)) if processes is None else int(processes)
    if n_proc < 1:
        raise ValueError(f"processes must be >= 1, got {processes}")
    names = [run_folder_name(i, lr) for i, lr in enumerate(lrs_arr)]
    meta = {"created": now_iso(), "processes": n_proc}
    with _sweep_folder(out_dir) as folder:
        _write_sweep_json(folder, config, lrs_arr, names, meta, status="running")
        if n_proc == 1:
            runs = _sequential(configs, folder, names, lrs_arr, callback)
        else:
            runs = _parallel(configs, folder, names, lrs_arr, callback, n_proc)
        _write_sweep_json(folder, config, lrs_arr, names, meta, status="finished")
    return Sweep(config=config, lrs=lrs_arr, runs=runs, meta=meta)


class _sweep_folder:
    """The sweep's folder: ``out_dir`` or a temporary one removed afterwards."""

    def __init__(self, out_dir) -> None:
        self.out_dir = out_dir
        self._tmp: tempfile.TemporaryDirectory | None = None

    def __enter__(self) -> Path:
        if self.out_dir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="ijr-sweep-")
            return Path(self._tmp.name)
        path = Path(self.out_dir)
        path.mkdir(parents=True, exist_ok=True)
        return path

    def __exit__(self, *exc) -> None:
        if self._tmp is not None:
            self._tmp.cleanup()


def _sequential(configs, folder, names, lrs, callback) -> list[Run]:
    """Train the configs in this process, one after the other."""
    from ijr_core.trainer import train

    runs = []
    for i, (cfg, name) in enumerate(zip(configs, names, strict=True)):
        runs.append(train(cfg, out_dir=folder / name))
        if callback is not None:
            callback(i, float(lrs[i]), runs[-1])
    return runs


def _parallel(configs, folder, names, lrs, callback, n_proc) -> list[Run]:
    """Train the configs on ``n_proc`` cores: this process (already warm: torch imported,
    data cached) plus ``n_proc - 1`` spawned worker processes, all pulling from one job
    queue, one torch thread each. Whatever a broken worker pool leaves is done here."""
    import threading

    import torch

    jobs = _JobQueue(len(configs))
    runs: list[Run | None] = [None] * len(configs)
    errors: list[BaseException] = []
    report = threading.Lock()

    def record(i: int, run: Run) -> None:
        with report:
            runs[i] = run
            if callback is not None:
                callback(i, float(lrs[i]), run)

    def feed(pool) -> None:
        """One worker slot: submit a job, wait, load its folder, repeat."""
        from concurrent.futures.process import BrokenProcessPool

        while (i := jobs.take()) is not None:
            try:
                pool.submit(_worker, configs[i].to_dict(), str(folder / names[i]), 1).result()
            except (BrokenProcessPool, OSError):
                jobs.give_back(i)  # this process will train it
                return
            except BaseException as exc:  # a setup error of that run: re-raised below
                errors.append(exc)
                jobs.close()
                return
            record(i, load_run(folder / names[i]))

    threads_before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with _worker_pool(n_proc - 1) as pool:
            feeders = [threading.Thread(target=feed, args=(pool,), daemon=True)
                       for _ in range(n_proc - 1 if pool is not None else 0)]
            for t in feeders:
                t.start()
            _drain_here(jobs, configs, folder, names, record)
            for t in feeders:
                t.join()
        _drain_here(jobs, configs, folder, names, record)  # jobs a broken pool gave back
    finally:
        torch.set_num_threads(threads_before)
    if errors:
        raise errors[0]
    return runs


def _drain_here(jobs, configs, folder, names, record) -> None:
    from ijr_core.trainer import train

    while (i := jobs.take()) is not None:
        try:
            record(i, train(configs[i], out_dir=folder / names[i]))
        except BaseException:
            jobs.close()
            raise


class _JobQueue:
    """Indices 0..n-1 handed out once each (thread-safe); closing stops handing out."""

    def __init__(self, n: int) -> None:
        import threading

        self._lock = threading.Lock()
        self._todo = list(range(n))
        self._closed = False

    def take(self) -> int | None:
        with self._lock:
            return None if self._closed or not self._todo else self._todo.pop(0)

    def give_back(self, i: int) -> None:
        with self._lock:
            self._todo.insert(0, i)

    def close(self) -> None:
        with self._lock:
            self._closed = True


class _worker_pool:
    """A spawn-context process pool of ``n`` workers, or None when n = 0 or processes
    cannot be started here."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.pool: ProcessPoolExecutor | None = None

    def __enter__(self) -> ProcessPoolExecutor | None:
        import multiprocessing

        if self.n >= 1:
            try:
                ctx = multiprocessing.get_context("spawn")
                self.pool = ProcessPoolExecutor(max_workers=self.n, mp_context=ctx)
            except (OSError, NotImplementedError, ValueError):
                self.pool = None
        return self.pool

    def __exit__(self, *exc) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)


def load_sweep(sweep_dir: str | os.PathLike) -> Sweep:
    """Load a sweep folder; a damaged one raises :class:`RunFormatError` saying what is wrong."""
    folder = Path(sweep_dir)
    path = folder / "sweep.json"
    if not path.exists():
        raise RunFormatError(f"{path} is missing (not a sweep folder)")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise RunFormatError(f"{path} is not valid JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise RunFormatError(f"{path} must hold a JSON object")
    if doc.get("schema_version") != SWEEP_SCHEMA_VERSION:
        version = doc.get("schema_version")
        raise RunFormatError(f"{path} has unknown schema_version {version!r}")
    for key in ("config", "lrs", "runs"):
        if key not in doc:
            raise RunFormatError(f"{path} has no {key!r}")
    if len(doc["lrs"]) != len(doc["runs"]):
        n_lr, n_runs = len(doc["lrs"]), len(doc["runs"])
        raise RunFormatError(f"{path}: {n_lr} learning rates but {n_runs} runs")
    from ijr_core.config import RunConfig

    try:
        config = RunConfig.from_dict(doc["config"])
    except (ValueError, TypeError) as exc:
        raise RunFormatError(f"{path}: invalid config: {exc}") from None
    runs = [load_run(folder / name) for name in doc["runs"]]
    meta = {**doc.get("meta", {}), "status": doc.get("status")}
    return Sweep(config=config, lrs=np.asarray(doc["lrs"], dtype=np.float64), runs=runs, meta=meta)


def is_sweep_folder(path: str | os.PathLike) -> bool:
    """True when ``path`` holds a sweep.json."""
    return (Path(path) / "sweep.json").exists()
