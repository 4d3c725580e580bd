"""Background jobs of the Compare page: a learning-rate sweep and an optimizer comparison.

Each job trains in a daemon thread (never calling ``st.*``) into its own folder under the
runs folder, so the page stays responsive and a finished job reopens from disk. Progress is
read from the run folders the trainer autosaves after every probe (``run.json`` holds the
step reached), which also covers sweep runs trained in parallel threads. State written
by the worker (``error``, ``finished``) is guarded by ``lock``.

Each job is an :class:`app.runtime.BackgroundJob`, like a training job: it counts against
the server's cap on jobs at once (over it, the job ends at once as failed, saying why), and
the reaper stops it when the session that started it ends (tab closed), so a sweep of
many long runs does not outlive its tab.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from app.runs_store import write_group
from app.runtime import BackgroundJob, stamp_name  # noqa: F401 - stamp_name for pages
from ijr_core.protocol import RunLike
from ijr_core.sweep import SweepControl, run_folder_name, sweep_lr

if TYPE_CHECKING:
    from ijr_core.config import RunConfig


def _run_step(folder: Path) -> int:
    """Step reached by the run saved in ``folder`` (0 while nothing is saved yet)."""
    try:
        return int(json.loads((folder / "run.json").read_text(encoding="utf-8")).get("step", 0))
    except (OSError, ValueError, TypeError, AttributeError):
        return 0


class SweepJob(BackgroundJob):
    """:func:`ijr_core.sweep.sweep_lr` of ``config`` over ``lrs`` into ``out_dir``; ``stop()``
    ends it early (the runs that started are kept, the sweep is saved as "stopped")."""

    thread_name = "ijr-sweep"

    def __init__(
        self, config, lrs, out_dir: Path, workers: int | None = None, owner: str | None = None
    ) -> None:
        super().__init__(out_dir, owner)
        self.config = config
        self.lrs = [float(x) for x in lrs]
        self.workers = workers
        self.done_runs = 0
        self.folders = [self.out_dir / run_folder_name(i, lr) for i, lr in enumerate(self.lrs)]
        self.control = SweepControl()

    def stop(self) -> None:
        """Start no more runs and stop the ones in progress at their next step (thread-safe;
        returns at once)."""
        self.control.stop()

    def configs_to_check(self) -> list:
        return [self.config]

    def _callback(self, i: int, lr: float, run: RunLike) -> None:
        with self.lock:
            self.done_runs += 1

    def body(self) -> None:
        sweep_lr(
            self.config,
            self.lrs,
            out_dir=self.out_dir,
            workers=self.workers,
            callback=self._callback,
            control=self.control,
        )

    def progress(self) -> dict:
        """fraction (steps done / steps of all runs), runs done, runs total, elapsed."""
        total = max(1, self.config.steps * len(self.lrs))
        done = sum(min(_run_step(f), self.config.steps) for f in self.folders)
        with self.lock:
            done_runs = self.done_runs
            finished = self.finished
        fraction = 1.0 if finished else min(done / total, 0.999)
        return {
            "fraction": fraction,
            "runs_done": done_runs,
            "runs": len(self.lrs),
            "elapsed": self.elapsed(),
        }


def optimizer_configs(
    base, methods, batch_size: int | None, seeds: list[int] | None = None
) -> dict[str, object]:
    """Run name -> config: ``base`` with each optimizer, full batch for gd and
    ``batch_size`` (None = full batch) for the others, at each seed of ``seeds`` (default:
    the base's own seed). Every method shares the seeds, so all start from the same
    initialisation. Names are the method ("sam"), or "sam-s1" with several seeds."""
    seeds = [base.seed] if not seeds else list(seeds)
    out = {}
    for m in methods:
        bs = None if m == "gd" else batch_size
        for seed in seeds:
            name = m if len(seeds) == 1 else f"{m}-s{seed}"
            label = f"{base.name or base.dataset}-{name}"
            out[name] = base.replace(optimizer=m, batch_size=bs, seed=int(seed), name=label)
    return out


def parse_seeds(text: str, limit: int = 10) -> list[int]:
    """Seeds from "0, 1, 2" (at most ``limit``, non-negative, no repeats)."""
    parts = [x.strip() for x in text.replace(";", ",").split(",") if x.strip()]
    bad = [x for x in parts if not x.isdigit()]
    if bad:
        raise ValueError(f"seeds: {bad[0]!r} is not a whole number ≥ 0 (e.g. 0, 1, 2)")
    seeds = [int(x) for x in parts]
    if any(s < 0 for s in seeds) or len(set(seeds)) != len(seeds) or len(seeds) > limit:
        raise ValueError(f"seeds must be distinct integers ≥ 0, at most {limit}")
    return seeds


class OptimizerJob(BackgroundJob):
    """Train one config per optimizer (shared seed) one after the other into a group."""

    thread_name = "ijr-optimizers"

    def __init__(
        self, configs: dict, out_dir: Path, title: str = "optimizer comparison",
        owner: str | None = None,
    ):
        super().__init__(out_dir, owner)
        from ijr_core.trainer import TrainingControl

        self.configs = dict(configs)
        self.title = title
        self.names = list(self.configs)
        self.current = 0
        self.control = TrainingControl()
        self._stop = threading.Event()

    def stop(self) -> None:
        """Stop the current run (kept, status "stopped") and skip the remaining ones."""
        self._stop.set()
        self.control.stop()

    def configs_to_check(self) -> list:
        return list(self.configs.values())

    def body(self) -> None:
        from ijr_core.trainer import TrainingControl, train

        base = next(iter(self.configs.values()))
        write_group(self.out_dir, self.names, self.title, base.to_dict(), status="running")
        done = []
        for i, (name, cfg) in enumerate(self.configs.items()):
            if self._stop.is_set():
                break
            with self.lock:
                self.current = i
                self.control = TrainingControl()
            train(cfg, out_dir=self.out_dir / name, control=self.control)
            done.append(name)
        write_group(
            self.out_dir,
            done,
            self.title,
            base.to_dict(),
            status="stopped" if self._stop.is_set() else "finished",
        )

    def progress(self) -> dict:
        total = sum(c.steps for c in self.configs.values()) or 1
        with self.lock:
            i, finished = self.current, self.finished
        before = sum(c.steps for c in list(self.configs.values())[:i])
        now = min(int(self.control.step), list(self.configs.values())[i].steps)
        fraction = 1.0 if finished else min((before + now) / total, 0.999)
        return {
            "fraction": fraction,
            "current": self.names[i],
            "index": i,
            "runs": len(self.names),
            "elapsed": self.elapsed(),
        }


class GridJob(BackgroundJob):
    """:func:`ijr_core.grid.run_grid` of ``config`` × ``axes`` into ``out_dir``, in threads
    of this process or on Ray (``ray_address``: "" = a local Ray started on demand, "auto",
    or "host:port"; None = threads). ``stop()`` cancels what has not finished; finished runs
    stay loadable, and running the same grid into the same folder resumes it.

    On Ray the driver runs in a child process (:func:`_ray_driver`): Ray ends a driver whose
    cluster has gone away, and that must not be the app's server. The child sends the
    progress counts back through a queue."""

    thread_name = "ijr-grid"

    def __init__(self, config: RunConfig, axes: dict, out_dir: Path, ray_address: str | None = None,
                 workers: int | None = None, owner: str | None = None) -> None:
        super().__init__(out_dir, owner)
        from ijr_core.executors import ThreadExecutor

        self.config, self.axes = config, dict(axes)
        self.total = 1
        for values in self.axes.values():
            self.total *= len(values)
        self.ray_address = ray_address
        self.executor = ThreadExecutor(workers)
        self.control = SweepControl()
        self.tracker = None
        self._latest: dict | None = None  # progress from the Ray driver's process
        self._child_stop = None

    def stop(self) -> None:
        self.control.stop()
        if self._child_stop is not None:
            self._child_stop.set()

    def configs_to_check(self) -> list:
        from ijr_core.grid import expand

        return [config for _, config in expand(self.config, self.axes)]

    def _attach(self, tracker) -> None:
        with self.lock:
            self.tracker = tracker

    def body(self) -> None:
        if self.ray_address is not None:
            errors = self._body_ray()
        else:
            from ijr_core.grid import run_grid

            grid = run_grid(self.config, self.axes, out_dir=self.out_dir,
                            executor=self.executor, control=self.control,
                            progress=self._attach)
            errors = grid.meta.get("errors") or {}
        if errors:
            first = next(iter(errors.values()))
            raise RuntimeError(f"{len(errors)} run(s) could not be trained "
                               f"(first: {first}); run the grid again to retry them")

    def _body_ray(self) -> dict:
        import multiprocessing as mp
        import queue as queue_mod

        ctx = mp.get_context("spawn")
        messages, self._child_stop = ctx.Queue(), ctx.Event()
        if self.control.stopped:
            self._child_stop.set()
        child = ctx.Process(target=_ray_driver, daemon=True, name="ijr-ray-driver",
                            args=(self.config.to_dict(), self.axes, str(self.out_dir),
                                  self.ray_address.strip() or None, messages,
                                  self._child_stop))
        child.start()
        result: dict = {}
        while child.is_alive() or not messages.empty():
            try:
                kind, payload = messages.get(timeout=0.5)
            except queue_mod.Empty:
                continue
            if kind == "progress":
                with self.lock:
                    self._latest = payload
            else:
                result = payload
        child.join()
        if "error" in result:
            raise RuntimeError(result["error"])
        if child.exitcode != 0 and not result:
            raise RuntimeError(f"the Ray driver ended with exit code {child.exitcode}")
        return result.get("errors") or {}

    def progress(self) -> dict:
        """fraction (runs done / total), runs done, runs, elapsed and a one-line summary
        (done/total, running, failed, ETA)."""
        with self.lock:
            tracker, finished, latest = self.tracker, self.finished, self._latest
        if tracker is not None:
            latest = {**tracker.snapshot(), "line": tracker.line(elapsed=False)}
        if latest is None:
            line = "starting…" + (" (Ray)" if self.ray_address is not None else "")
            return {"fraction": 0.0, "runs_done": 0, "runs": self.total,
                    "elapsed": self.elapsed(), "line": line}
        return {"fraction": 1.0 if finished else min(latest["fraction"], 0.999),
                "runs_done": latest["done"], "runs": latest["total"],
                "elapsed": self.elapsed(), "line": latest["line"]}  # the page adds elapsed


def _ray_driver(config: dict, axes: dict, out_dir: str, address, messages, stop) -> None:
    """Child process of a :class:`GridJob` on Ray: run the grid, send ("progress", counts)
    every half second and ("result", {"errors": …} or {"error": message}) at the end."""
    from ijr_core.config import RunConfig
    from ijr_core.executors import RayExecutor
    from ijr_core.grid import run_grid

    control = SweepControl()
    trackers: list = []

    def watch() -> None:
        while True:
            if stop.wait(0.5):
                control.stop()
            if trackers:
                t = trackers[0]
                messages.put(("progress", {**t.snapshot(), "line": t.line(elapsed=False)}))
            if control.stopped and stop.is_set():
                return

    threading.Thread(target=watch, daemon=True).start()
    try:
        grid = run_grid(RunConfig.from_dict(config), axes, out_dir=out_dir,
                        executor=RayExecutor(address), control=control,
                        progress=trackers.append)
        if trackers:
            t = trackers[0]
            messages.put(("progress", {**t.snapshot(), "line": t.line(elapsed=False)}))
        messages.put(("result", {"errors": grid.meta.get("errors") or {}}))
    except Exception as exc:  # noqa: BLE001 - reported by the page
        messages.put(("result", {"error": f"{type(exc).__name__}: {exc}"}))
