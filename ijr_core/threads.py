"""How many torch CPU threads a training run uses: measured per run, bounded per process.

Why: a step of a small network takes milliseconds, so torch's intra-op threads (OpenMP)
spend much of it handing work out and waiting at barriers. On a quiet machine two threads
are faster; with other processes busy (a browser, a video call) a waiting thread is often
descheduled and every barrier stalls: the same run then goes 5-10x slower on all cores than
on one. Neither choice is right everywhere, so the run measures.

- :class:`ThreadBudget` (one per process, :data:`BUDGET`): ``total`` cores shared by the runs
  training at once in this process (app sessions, sweep workers, CLI). A run may use at most
  ``cap = max(1, total // active)`` threads, so concurrent runs together never ask for more
  threads than there are cores. ``torch.set_num_threads`` is process-wide for new threads
  and for MKL, so a per-run count cannot be isolated from the others; bounding every run by
  the same share is what keeps the sum right whatever each one picks.
- :class:`ThreadPolicy` (one per run): with a fixed setting (``RunConfig.torch_threads``) it
  uses min(setting, cap). On "auto" it times one probe interval (the optimizer steps up to and
  including the next probe, at most ``interval_steps`` steps) on 1 thread and one on ``cap``
  threads, and keeps the count with the smaller time per step. Probes count because they
  are a large share of a run and suffer most from oversubscription (measured: steps alone
  looked faster on 2 threads while whole intervals were 10x slower). It re-checks every
  ``recheck_steps`` steps or ``recheck_s`` seconds, and at once when the cap changes (a run
  started or ended). The interval on the second count is cut short once it has cost
  ``give_up`` times the first one, so measuring never costs more than that. Thread changes
  are recorded as [step, threads] in ``changes``.

Results on different thread counts can differ in the last float digits (reductions split
differently); for bit-identical reruns fix ``torch_threads``.
"""

from __future__ import annotations

import math
import threading
import time

__all__ = ["BUDGET", "ThreadBudget", "ThreadPolicy", "set_budget"]


class ThreadBudget:
    """``total`` CPU threads shared by the runs active in this process (thread-safe)."""

    def __init__(self, total: int | None = None) -> None:
        self._lock = threading.Lock()
        self._total = total
        self._active = 0

    @property
    def total(self) -> int:
        if self._total is None:
            from ijr_core.config import usable_cores

            return usable_cores()
        return self._total

    def set_total(self, total: int | None) -> None:
        """Cores to share (None: the cores this process may use)."""
        if total is not None and int(total) < 1:
            raise ValueError(f"thread budget must be >= 1, got {total}")
        with self._lock:
            self._total = None if total is None else int(total)

    @property
    def active(self) -> int:
        with self._lock:
            return self._active

    def cap(self) -> int:
        """Most threads one active run may use now: an equal share of ``total``."""
        with self._lock:
            active = max(1, self._active)
        return max(1, self.total // active)

    def enter(self) -> None:
        with self._lock:
            self._active += 1

    def leave(self) -> None:
        with self._lock:
            self._active = max(0, self._active - 1)


BUDGET = ThreadBudget()


def set_budget(total: int | None) -> None:
    """Cores shared by all runs of this process (the app's and CLI's setting)."""
    BUDGET.set_total(total)


class ThreadPolicy:
    """Thread count of one run; call :meth:`before_step` / :meth:`after_step` around each
    optimizer step (in the run's thread) and :meth:`close` at the end.

    ``fixed``: a thread count (bounded by the budget's cap) or None for auto. ``set_threads``
    / ``get_threads`` default to torch's (replaceable in tests)."""

    def __init__(self, fixed: int | None = None, budget: ThreadBudget | None = None,
                 interval_steps: int = 50, recheck_steps: int = 1000, recheck_s: float = 60.0,
                 give_up: float = 1.2, set_threads=None, get_threads=None,
                 clock=time.perf_counter) -> None:
        import torch

        self.fixed = fixed
        self.budget = budget if budget is not None else BUDGET
        self.interval_steps = interval_steps
        self.recheck_steps, self.recheck_s = recheck_steps, recheck_s
        self.give_up = give_up
        self._set = set_threads or torch.set_num_threads
        self._get = get_threads or torch.get_num_threads
        self._clock = clock
        self._before = self._get()
        self.budget.enter()
        self._open = True
        self.choice = 1
        self.changes: list[list[int]] = []
        self.trials: list[dict] = []  # {step, cap, "1": s/step, "<cap>": s/step} per trial
        self._trial: list[int] = []  # thread counts still to time, in order
        self._acc: dict[int, list[float]] = {}  # count -> [seconds, steps] of its interval
        self._current: int | None = None
        self._cap_seen = 0
        self._last_trial_step = 0
        self._last_trial_t = clock()

    # ---- the decision

    def _due(self, step: int, cap: int) -> bool:
        if cap != self._cap_seen:
            return True
        if self.fixed is not None or cap == 1:
            return False
        return (step - self._last_trial_step >= self.recheck_steps
                or self._clock() - self._last_trial_t >= self.recheck_s)

    def _start_trial(self, step: int, cap: int) -> None:
        self._cap_seen = cap
        self._last_trial_step, self._last_trial_t = step, self._clock()
        if self.fixed is not None or cap == 1:
            self.choice = min(self.fixed or 1, cap)
            self._trial = []
            return
        # the count in use first (no switch), then the other one
        first = self.choice if self.choice in (1, cap) else 1
        self._trial = [first, cap if first == 1 else 1]
        self._acc = {n: [0.0, 0] for n in self._trial}

    def threads(self) -> int:
        """Threads for the next step."""
        return self._trial[0] if self._trial else self.choice

    def before_step(self, step: int) -> int:
        """Set the thread count for step ``step``; returns it."""
        cap = self.budget.cap()
        if not self._trial and self._due(step, cap):
            self._start_trial(step, cap)
        n = self.threads()
        if n != self._current or self._get() != n:
            self._set(n)
            self._current = n
            if not self.changes or self.changes[-1][1] != n:
                self.changes.append([step, n])
        return n

    def after_step(self, seconds: float) -> None:
        """Record the duration of the optimizer step just taken."""
        if not self._trial:
            return
        acc = self._acc[self._trial[0]]
        acc[0] += float(seconds)
        acc[1] += 1
        if acc[1] >= self.interval_steps:
            self._end_interval()
        else:
            self._maybe_give_up()

    def after_probe(self, seconds: float) -> None:
        """Record a probe's duration: it ends the interval being timed (a probe before any
        timed step belongs to the interval before the trial)."""
        if not self._trial:
            return
        acc = self._acc[self._trial[0]]
        if acc[1] == 0:
            return
        acc[0] += float(seconds)
        self._end_interval()

    def _maybe_give_up(self) -> None:
        if len(self._trial) == 1:  # the second count: clearly slower than the whole first?
            first, second = (self._acc[n] for n in self._acc)
            if second[0] > self.give_up * first[0]:
                second[0] = math.inf
                self._end_interval()

    def _end_interval(self) -> None:
        self._trial.pop(0)
        if not self._trial:
            self._decide()

    def _decide(self) -> None:
        per = {n: (t / k if k else math.inf) for n, (t, k) in self._acc.items()}
        self.choice = min(per, key=lambda n: (per[n], n))
        self.trials.append({"step": self._last_trial_step, "cap": self._cap_seen,
                            **{str(n): per[n] if math.isfinite(per[n]) else None for n in per},
                            "chosen": self.choice})

    # ---- the end

    def close(self) -> None:
        """Leave the budget and give this thread its thread count back."""
        if self._open:
            self._open = False
            self.budget.leave()
            if self._get() != self._before:
                self._set(self._before)

    def summary(self) -> dict:
        """What was used: mode, changes [step, threads], trials (seconds per step)."""
        return {"mode": "auto" if self.fixed is None else "fixed", "changes": self.changes,
                "trials": self.trials[-20:], "budget": self.budget.total}
