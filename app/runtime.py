"""The app's one background-job runtime: a job base class, the server-wide cap on jobs at
once and the reaper of jobs whose browser session has ended.

Every long computation the app starts (a training run, a learning-rate sweep, a grid, an
optimizer comparison) is a :class:`BackgroundJob`: a function (``body``) run once in a
daemon thread that never calls ``st.*``. A job records the Streamlit session that owns it
(:func:`app.session.current_session_id` when none is given) and, on ``start``, asks the
registry for room: at most :func:`max_jobs` jobs run at once, all sessions together; over
it the job ends at once as failed, saying why, and nothing runs. While a job runs, one
reaper thread checks every 2 s whether its owner session is still connected
(:func:`app.session.session_alive`) and calls ``stop()`` on the jobs of ended sessions, so a
closed tab leaves no worker keeping a CPU busy. Whatever the worker writes (``error``,
``finished``, ``ended_at``, a subclass's result) is guarded by ``lock``.
"""

from __future__ import annotations

import os
import threading
import time
import traceback
import uuid
from pathlib import Path

# The folder name of a job's output (UTC time, safe label, random id): ijr_core's one namer.
from ijr_core.names import stamped_name as stamp_name  # noqa: F401 - app.jobs, app.session

MAX_JOBS_ENV = "IJR_MAX_JOBS"

_registry_lock = threading.Lock()
_registry: dict[str, BackgroundJob] = {}  # job id -> running job
_reaper: threading.Thread | None = None


def max_jobs() -> int:
    """Most background jobs at once, all sessions together: $IJR_MAX_JOBS, else the
    number of usable cores (at least 2)."""
    from ijr_core.config import usable_cores

    try:
        return max(1, int(os.environ.get(MAX_JOBS_ENV, "")))
    except ValueError:
        return max(2, usable_cores())


class BackgroundJob:
    """``body()`` run once in a daemon thread, owned by a browser session.

    Subclasses set ``thread_name``, implement ``body`` (the work), ``configs_to_check`` (every
    RunConfig the job will train, checked against the allowed data folders before any
    work), ``stop`` (thread-safe, returns at once) and ``progress``."""

    thread_name = "ijr-job"

    def __init__(self, out_dir: str | os.PathLike, owner: str | None = None) -> None:
        self.id = uuid.uuid4().hex
        self.owner = owner
        self.out_dir = Path(out_dir)
        self.lock = threading.Lock()
        self.error: str | None = None
        self.trace: str | None = None
        self.finished = False
        self.started_at: float | None = None
        self.ended_at: float | None = None
        self.thread = threading.Thread(
            target=self._work, name=f"{self.thread_name}-{self.id[:6]}", daemon=True
        )

    # ---- to override

    def body(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def configs_to_check(self) -> list:  # pragma: no cover - overridden
        raise NotImplementedError

    def stop(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def progress(self) -> dict:  # pragma: no cover - overridden
        """At least ``fraction`` (0..1) and ``elapsed`` (s), for the page's progress bar."""
        raise NotImplementedError

    # ---- lifecycle

    def start(self):
        """Start the worker thread, owned by the calling Streamlit session unless an owner
        was given; over the server's cap on jobs the job fails at once instead."""
        from app import session

        self.started_at = time.monotonic()
        if self.owner is None:
            self.owner = session.current_session_id()
        refusal = _register(self)
        if refusal is not None:  # a failed job, shown like one; nothing runs
            self._end(refusal)
            return self
        self.thread.start()
        return self

    def run_sync(self):
        """Run in the calling thread (tests, scripts), unregistered; returns the job."""
        self.started_at = time.monotonic()
        self._work()
        return self

    def _work(self) -> None:
        from app import session

        error = None
        try:
            for config in self.configs_to_check():
                session.check_data_path(config)
            self.body()
        except Exception as exc:  # noqa: BLE001 - shown to the user by the page
            error = f"{type(exc).__name__}: {exc}"
            with self.lock:
                self.trace = traceback.format_exc()
        finally:
            self._end(error)
            _unregister(self)

    def _end(self, error: str | None) -> None:
        with self.lock:
            if error is not None:
                self.error = error
            self.finished, self.ended_at = True, time.monotonic()

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the worker; True when it has ended."""
        if self.thread.is_alive():
            self.thread.join(timeout)
        return not self.thread.is_alive()

    # ---- reading (any thread)

    @property
    def alive(self) -> bool:
        return self.thread.is_alive()

    def paused_seconds(self, now: float) -> float:
        """Seconds spent paused up to ``now`` (jobs that cannot pause: 0); lock held."""
        return 0.0

    def elapsed(self) -> float:
        """Seconds since start (until the end once ended), pauses excluded."""
        if self.started_at is None:
            return 0.0
        with self.lock:
            end = self.ended_at if self.ended_at is not None else time.monotonic()
            paused = self.paused_seconds(end)
        return max(0.0, end - self.started_at - paused)


# --------------------------------------------------------------------------- cap & reaper


def _register(job: BackgroundJob) -> str | None:
    """Admit ``job`` to the registry the reaper watches; returns why not (too many jobs
    running) or None."""
    global _reaper
    with _registry_lock:
        limit = max_jobs()
        if len(_registry) >= limit:
            return (
                f"the server is already running {len(_registry)} jobs, the most it runs at "
                "once; start again when one has ended"
            )
        _registry[job.id] = job
        if _reaper is None or not _reaper.is_alive():
            _reaper = threading.Thread(target=_reap_forever, name="ijr-reaper", daemon=True)
            _reaper.start()
    return None


def _unregister(job: BackgroundJob) -> None:
    with _registry_lock:
        _registry.pop(job.id, None)


def active_jobs() -> list[BackgroundJob]:
    """Jobs whose worker is still running (all sessions, every kind)."""
    with _registry_lock:
        return list(_registry.values())


def reap_orphans() -> list[BackgroundJob]:
    """Stop every running job whose owning session has ended; returns them."""
    from app import session

    stopped = [job for job in active_jobs() if not session.session_alive(job.owner)]
    for job in stopped:
        job.stop()
    return stopped


def _reap_forever(period: float = 2.0) -> None:
    while True:
        time.sleep(period)
        reap_orphans()
        with _registry_lock:
            if not _registry:
                return
