"""The one engine that trains the runs of a grid or a sweep: :func:`train_all` hands the
jobs to an executor (:mod:`ijr_core.executors`), which reports to a :class:`GridSink`;
the sink keeps the runs and updates a :class:`GridProgress` (counts and ETA, thread-safe,
polled by the CLI and the app)."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping

from ijr_core.executors import SweepControl
from ijr_core.run import Run

__all__ = ["GridProgress", "GridSink", "train_all"]


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
