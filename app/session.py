"""Background training for the app, and what the app knows about its browser sessions.

A :class:`TrainingJob` (an :class:`app.runtime.BackgroundJob`, like Compare's sweeps, grids
and optimizer comparisons) runs :func:`ijr_core.trainer.train` in a daemon thread and is
steered through a :class:`~ijr_core.trainer.TrainingControl`. The worker never calls
``st.*``; the page reads consistent copies of the live run (``job.snapshot()``) from a
fragment that re-runs every second. ``train`` autosaves after every probe into the job's
folder under :func:`runs_dir`, so a stopped or finished run is on disk when its status is
final. The cap on jobs at once and the reaper of jobs whose session ended
(:func:`session_alive`) are in :mod:`app.runtime` (re-exported here).

A job reads data only from :func:`data_roots` (the uploads folder and ``$IJR_DATA_DIRS``),
never from a path that came with a link or an uploaded run.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from app.runtime import (  # noqa: F401 - the job registry, re-exported for callers
    MAX_JOBS_ENV,
    BackgroundJob,
    _register,
    _unregister,
    active_jobs,
    max_jobs,
    reap_orphans,
    stamp_name,
)
from ijr_core.config import RunConfig
from ijr_core.run import Run
from ijr_core.trainer import TrainingControl, train

RUNS_ENV = "IJR_RUNS_DIR"
DATA_ENV = "IJR_DATA_DIRS"  # allow-listed data folders, separated by os.pathsep
FINAL = ("finished", "stopped", "diverged", "failed")

_runs_dir_override: Path | None = None


def set_runs_dir(path: str | os.PathLike | None) -> None:
    """Override the runs folder (the ``--runs-dir`` flag of ``streamlit run app/main.py``)."""
    global _runs_dir_override
    _runs_dir_override = Path(path) if path else None


def runs_dir() -> Path:
    """Folder of saved runs: the flag, else $IJR_RUNS_DIR, else ./runs."""
    if _runs_dir_override is not None:
        return _runs_dir_override
    return Path(os.environ.get(RUNS_ENV) or "runs")


def data_roots() -> list[Path]:
    """Folders the app may read data files from: the uploads folder under the runs folder
    and the folders listed in $IJR_DATA_DIRS."""
    extra = [Path(p) for p in os.environ.get(DATA_ENV, "").split(os.pathsep) if p.strip()]
    return [runs_dir() / "_uploads", *extra]


def check_data_path(config: RunConfig) -> None:
    """DatasetError unless ``config`` reads data only inside :func:`data_roots`."""
    from ijr_core.data import check_data_path as check

    check(config, data_roots())


def run_folder_name(config: RunConfig) -> str:
    """Unique, sortable folder name (:func:`app.runtime.stamp_name`) from the run's name
    (or optimizer), its dataset and η, e.g.
    ``20261129-043636-edge-of-stability-digits-lr1e06-5e3e14``."""
    lr = f"{config.lr:g}".replace("+", "")  # 1e+06 -> 1e06 ("1e-06" would read as 1e-6)
    return stamp_name(f"{config.name or config.optimizer}-{config.dataset}-lr{lr}")


class TrainingJob(BackgroundJob):
    """One training run in a background thread (see :class:`app.runtime.BackgroundJob`).

    Thread-safe: the worker writes ``result`` / ``error`` under ``lock``; everything
    else the UI reads goes through the TrainingControl (itself thread-safe) or
    ``snapshot()``, a consistent copy of the live Run."""

    thread_name = "ijr-train"

    def __init__(
        self, config, out_dir: str | os.PathLike | None = None, owner: str | None = None
    ) -> None:
        super().__init__(
            out_dir if out_dir is not None else runs_dir() / run_folder_name(config), owner
        )
        self.config = config
        self.control = TrainingControl()
        self.result: Run | None = None
        self._paused_total = 0.0
        self._paused_since: float | None = None

    # ---- lifecycle

    def run_sync(self) -> Run | None:
        """Train in the calling thread (tests, scripts); returns the Run or None on error."""
        super().run_sync()
        return self.result

    def configs_to_check(self) -> list:
        return [self.config]

    def body(self) -> None:
        result = train(self.config, out_dir=self.out_dir, control=self.control)
        with self.lock:
            self.result = result

    # ---- control (called from the UI thread)

    def pause(self) -> None:
        with self.lock:
            if self._paused_since is None:
                self._paused_since = time.monotonic()
        self.control.pause()

    def resume(self) -> None:
        with self.lock:
            if self._paused_since is not None:
                self._paused_total += time.monotonic() - self._paused_since
                self._paused_since = None
        self.control.resume()

    def stop(self) -> None:
        self.resume()
        self.control.stop()

    def set_lr(self, lr: float) -> None:
        self.control.set_lr(lr)

    def set_rho(self, rho: float) -> None:
        self.control.set_rho(rho)

    # ---- reading (any thread)

    def snapshot(self) -> Run | None:
        """A consistent copy of the run (the final Run once training has ended)."""
        with self.lock:
            if self.result is not None:
                return self.result
        return self.control.latest()

    @property
    def status(self) -> str:
        """starting | running | paused | finished | stopped | diverged | failed."""
        with self.lock:
            if self.error is not None:
                return "failed"
            if self.result is not None:
                return self.result.status
        run = self.control.run
        if run is None:
            return "starting" if self.started_at is not None else "new"
        return "paused" if self.pause_requested else run.status

    @property
    def pause_requested(self) -> bool:
        """Pause was pressed and not undone (the loop stops after its current step)."""
        return self.control.pause_requested

    @property
    def done(self) -> bool:
        return self.status in FINAL

    def paused_seconds(self, now: float) -> float:
        paused = self._paused_total
        if self._paused_since is not None:
            paused += now - self._paused_since
        return paused

    def progress(self) -> dict:
        """step, steps (total), fraction, elapsed (s), steps_per_s."""
        step = int(self.control.step)
        total = int(self.control.steps_total or self.config.steps)
        elapsed = self.elapsed()
        return {
            "step": step,
            "steps": total,
            "fraction": min(1.0, step / max(total, 1)),
            "elapsed": elapsed,
            "steps_per_s": step / elapsed if elapsed > 0 else 0.0,
        }


# --------------------------------------------------------------------------- sessions


def session_alive(session_id: str | None) -> bool:
    """Whether the Streamlit session is still connected; True outside a Streamlit server
    (tests, scripts), where nothing can be orphaned."""
    if session_id is None:
        return True
    try:
        from streamlit import runtime

        if not runtime.exists():
            return True
        return runtime.get_instance().is_active_session(session_id)
    except Exception:  # noqa: BLE001 - never stop a job because the check itself failed
        return True


def current_session_id() -> str | None:
    """The id of the Streamlit session running this script, None outside one."""
    try:
        from streamlit.runtime.scriptrunner import get_script_run_ctx

        ctx = get_script_run_ctx()
        return ctx.session_id if ctx is not None else None
    except Exception:  # noqa: BLE001
        return None
