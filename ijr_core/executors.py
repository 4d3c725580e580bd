"""Where the runs of a grid (or sweep) train: threads of this process, or a Ray cluster.

An executor trains a list of jobs ``(index, config, folder)`` and reports to a *sink*
(see :class:`ijr_core.grid.GridSink`): ``started(i)``, ``step(i, step)`` after each
probe, ``done(i, run)`` once a run has ended (finished, stopped, diverged or failed inside
training) and its folder is written, ``failed(i, exc)`` when a run could not be trained at
all (returns True when the whole grid should stop). A :class:`SweepControl` stops it.

- :class:`ThreadExecutor` (the default; never imports Ray): one thread per core, this one
  included, takes jobs from a shared queue; each run uses one torch thread (the thread count
  of the process is set to 1 while parallel runs last and restored after). Torch releases
  the GIL inside its kernels, so threads scale like processes here, without the seconds
  each worker process spends importing torch (measured in bench/bench_sweep.py). A GPU
  sweep runs one run after the other. Runs autosave into their folders while training.
- :class:`RayExecutor`: one run is one Ray task (see :mod:`ijr_core.ray_tasks`); runs come
  back to this process (the driver), which writes their folders, so workers need no shared
  filesystem.

How many torch threads a run uses is decided in one place, :func:`run_threads`.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

Job = tuple[int, Any, "Path | None"]  # (index in the grid, RunConfig, run folder or None)


class SweepControl:
    """Stops a running grid or sweep from another thread; ``stop()`` is thread-safe,
    idempotent and returns at once (the runs in progress end at their next step).

    One control per grid. ``stopped`` is True from ``stop()`` on."""

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
        """Forget the hooks of a grid that has ended."""
        with self._lock:
            self._hooks = []

    def _training_control(self):
        """A TrainingControl for one run in this process, stopped with the grid."""
        from ijr_core.trainer import TrainingControl

        return TrainingControl(stop_event=self._event)


# --------------------------------------------------------------------------- thread policy


def run_threads(parallel_runs: int, cpus_per_run: float | None = None) -> int | None:
    """Torch threads of one run: 1 when ``parallel_runs`` > 1 runs share this process, None
    (leave the process's setting alone) for a single run; with ``cpus_per_run`` (a Ray task:
    a process of its own holding that many cores) that many threads."""
    if cpus_per_run is not None:
        return max(1, int(cpus_per_run))
    return None if parallel_runs <= 1 else 1


_THREADS_LOCK = threading.Lock()
_THREADS_USERS = 0
_THREADS_BEFORE = 0


@contextlib.contextmanager
def torch_threads(threads: int | None):
    """While parallel runs train, torch uses ``threads`` intra-op threads (the setting is
    process-wide); the count from before the first of any overlapping users comes back after
    the last one ends. ``None``: no change."""
    global _THREADS_USERS, _THREADS_BEFORE
    import torch

    if threads is None:
        yield
        return
    with _THREADS_LOCK:
        if _THREADS_USERS == 0:
            _THREADS_BEFORE = torch.get_num_threads()
            torch.set_num_threads(threads)
        _THREADS_USERS += 1
    try:
        yield
    finally:
        with _THREADS_LOCK:
            _THREADS_USERS -= 1
            if _THREADS_USERS == 0:
                torch.set_num_threads(_THREADS_BEFORE)


# --------------------------------------------------------------------------- threads


def default_workers(config, n_runs: int) -> int:
    """Runs trained at once in this process: one per CPU core on the CPU, 1 on an
    accelerator."""
    from ijr_core.config import resolve_device, usable_cores

    if resolve_device(config.device).type != "cpu":
        return 1
    return max(1, min(n_runs, usable_cores()))


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


class ThreadExecutor:
    """Runs in threads of this process (``workers`` at once; None = one per core)."""

    name = "threads"

    def __init__(self, workers: int | None = None) -> None:
        if workers is not None and int(workers) < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        self.workers = None if workers is None else int(workers)

    def workers_for(self, config, n_runs: int) -> int:
        n = default_workers(config, n_runs) if self.workers is None else self.workers
        return max(1, min(n, n_runs))  # no idle workers

    def describe(self) -> dict:
        return {"executor": self.name, "workers": self.workers}

    def run(self, jobs: Sequence[Job], sink, control: SweepControl) -> None:
        """Train every job; a run that raises (or a sink that raises) and asks to stop the
        grid stops the others and is re-raised, as is Ctrl-C in this thread."""
        from ijr_core.trainer import train

        if not jobs:
            return
        n = self.workers_for(jobs[0][1], len(jobs))
        queue = _JobQueue(len(jobs))
        control._on_stop(queue.close)
        errors: list[BaseException] = []
        report = threading.Lock()

        def work() -> None:
            while (k := queue.take()) is not None:
                i, config, folder = jobs[k]
                try:
                    sink.started(i)
                    run = train(config, out_dir=folder, control=control._training_control(),
                                callbacks=[lambda snap, i=i: sink.step(i, snap.step)])
                except Exception as exc:
                    if sink.failed(i, exc):
                        errors.append(exc)
                        control.stop()  # the grid has failed: the other runs need not finish
                        return
                    continue
                except BaseException as exc:  # Ctrl-C: stop the helpers' runs too
                    errors.append(exc)
                    control.stop()
                    return
                try:
                    with report:
                        sink.done(i, run)
                except BaseException as exc:
                    errors.append(exc)
                    control.stop()
                    return

        helpers = [threading.Thread(target=work, name=f"ijr-sweep-{k}", daemon=True)
                   for k in range(n - 1)]
        with torch_threads(run_threads(n)):
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


# --------------------------------------------------------------------------- Ray


class RayExecutor:
    """Runs as Ray tasks: ``address`` None starts a local Ray on demand (or uses the one
    this process is already connected to), "auto" joins the cluster of this machine, else a
    cluster address ("10.0.0.5:6379"). Each run declares ``cpus_per_run`` CPUs and, when
    the cluster has GPUs and the config may use one (device "auto" or "cuda"),
    ``gpus_per_run`` of a GPU (None: 0.25 when there are GPUs, so four runs share one);
    it then trains on CUDA. A task whose worker or node dies is retried elsewhere
    (``max_retries`` times)."""

    name = "ray"

    def __init__(self, address: str | None = None, cpus_per_run: float = 1,
                 gpus_per_run: float | None = None, max_retries: int = 3) -> None:
        if not cpus_per_run > 0:
            raise ValueError(f"cpus_per_run must be > 0, got {cpus_per_run}")
        if gpus_per_run is not None and not 0 <= gpus_per_run <= 1:
            raise ValueError(f"gpus_per_run must be in [0, 1], got {gpus_per_run}")
        self.address = address
        self.cpus_per_run = cpus_per_run
        self.gpus_per_run = gpus_per_run
        self.max_retries = int(max_retries)

    def describe(self) -> dict:
        return {"executor": self.name, "address": self.address,
                "cpus_per_run": self.cpus_per_run, "gpus_per_run": self.gpus_per_run}

    def run(self, jobs: Sequence[Job], sink, control: SweepControl) -> None:
        from ijr_core import ray_tasks  # imports Ray: only here

        ray_tasks.run_jobs(self, jobs, sink, control)
