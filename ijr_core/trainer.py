"""The training loop: a RunConfig in, a recorded :class:`~ijr_core.run.Run` out.

Step t counts completed updates. A probe (all metrics of :mod:`ijr_core.probe`) is taken at
t = 0, at every multiple of ``probe_every`` and at the last step. ``gd`` (and any method
with ``batch_size=None``) sees the full training set every step; otherwise each epoch is a
fresh permutation from a ``torch.Generator`` seeded with ``config.seed``, cut into batches
of ``batch_size`` (the incomplete remainder is dropped, so every step has the same noise
scale). Same seed and thread count → identical scalars on the CPU. Threads follow
:class:`~ijr_core.threads.ThreadPolicy` (``torch_threads``: fixed, or auto = measured);
``meta["thread_policy"]`` records the counts used.

Divergence (SCIENCE.md): the run ends with status "diverged" when the loss or a parameter
is non-finite, or when the batch loss stays above ``divergence_factor`` × its initial value
for ``divergence_window`` consecutive steps. A spike that comes back down (a catapult) is
not divergence. Divergence never raises; everything recorded so far is kept and
``meta["diverged_at"]`` names the step.

An exception inside the loop ends the run with status "failed" and ``meta["error"]``; the
Run is returned (and saved; when saving itself fails, e.g. on a full disk, the Run is still
returned, with ``meta["save_error"]``). Errors while setting up (bad config, missing data
file) are raised to the caller, since there is no run yet.
"""

from __future__ import annotations

import math
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import numpy as np
import torch

from ijr_core.curvature import NonFiniteError, loss_fn
from ijr_core.probe import ProbeState, Snapshot, probe
from ijr_core.run import Run, library_versions, now_iso
from ijr_core.threads import ThreadPolicy

Callback = Callable[[Snapshot], None]


class TrainingControl:
    """Steers a running :func:`train` from another thread (a UI, a test).

    ``pause()`` / ``resume()`` / ``stop()``; ``set_lr(x)`` / ``set_rho(x)`` take effect
    before the next step. ``pause_requested`` is True from ``pause()`` on, ``paused`` once
    the loop has actually stopped stepping (after the step or probe in progress). All
    methods are thread-safe. While training, ``run`` is the live :class:`Run` (take
    ``latest()`` for a consistent copy) and ``step`` the current step.

    One control per run: a stopped control stops any run it is given at once.

    ``stop_event``: an event shared with whoever else may stop the run (anything with
    ``set()`` and ``is_set()``: a ``threading.Event``, a ``multiprocessing`` event for a run
    in another process); setting it is the same as ``stop()``. Default: a fresh one.
    """

    def __init__(self, stop_event=None) -> None:
        self._lock = threading.Lock()
        self._running = threading.Event()
        self._running.set()
        self._stop = stop_event if stop_event is not None else threading.Event()
        self._idle = threading.Event()
        self._lr: float | None = None
        self._rho: float | None = None
        self.run: Run | None = None
        self.step = 0
        self.steps_total = 0
        self.started_at: float | None = None

    def pause(self) -> None:
        """Pause before the next step (the current step finishes)."""
        self._running.clear()

    def resume(self) -> None:
        self._running.set()

    def stop(self) -> None:
        """End the run after the current step; status becomes "stopped"."""
        self._stop.set()
        self._running.set()

    @property
    def pause_requested(self) -> bool:
        """pause() was called and resume() / stop() not yet."""
        return not self._running.is_set()

    @property
    def paused(self) -> bool:
        """The training loop is actually paused: waiting, no step in progress."""
        return self._idle.is_set()

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    def set_lr(self, lr: float) -> None:
        """Change the learning rate η (> 0) from the next step on."""
        lr = float(lr)
        if not (math.isfinite(lr) and lr > 0):
            raise ValueError(f"lr must be a finite number > 0, got {lr}")
        with self._lock:
            self._lr = lr

    def set_rho(self, rho: float) -> None:
        """Change the perturbation radius ρ (≥ 0) of SAM / ASAM / EJR from the next step on."""
        rho = float(rho)
        if not (math.isfinite(rho) and rho >= 0):
            raise ValueError(f"rho must be a finite number >= 0, got {rho}")
        with self._lock:
            self._rho = rho

    def take_changes(self) -> tuple[float | None, float | None]:
        """Pending (lr, rho) changes, each None when unchanged; clears them."""
        with self._lock:
            changes = (self._lr, self._rho)
            self._lr = self._rho = None
            return changes

    def _pending(self) -> bool:
        with self._lock:
            return self._lr is not None or self._rho is not None

    def wait_while_paused(self, timeout: float = 0.1, wake_on_change: bool = False) -> bool:
        """Block while paused (until resumed or stopped, or with ``wake_on_change`` until
        an lr / ρ change is pending); True if a wait happened."""
        waited = False
        try:
            while not self._running.is_set() and not self._stop.is_set():
                if wake_on_change and self._pending():
                    break
                waited = True
                self._idle.set()
                self._running.wait(timeout)
        finally:
            self._idle.clear()
        return waited

    def latest(self) -> Run | None:
        """A consistent copy of the live run (None before training starts)."""
        run = self.run
        return None if run is None else run.copy()


def probe_subset(n_train: int, probe_size: int, seed: int) -> np.ndarray:
    """Sorted indices of the probe subset: all samples, or a seeded random subset."""
    if probe_size >= n_train:
        return np.arange(n_train)
    rng = np.random.default_rng(seed)
    return np.sort(rng.permutation(n_train)[:probe_size])


def batch_indices(
    n: int, batch_size: int | None, seed: int, device
) -> Iterator[torch.Tensor | None]:
    """Endless stream of batch index tensors (None = the full batch)."""
    if batch_size is None or batch_size >= n:
        while True:
            yield None
    gen = torch.Generator().manual_seed(seed)
    while True:
        perm = torch.randperm(n, generator=gen)
        for start in range(0, n - batch_size + 1, batch_size):
            yield perm[start : start + batch_size].to(device)


class _Divergence:
    """Non-finite loss, or loss > factor × initial for `window` consecutive steps."""

    def __init__(self, factor: float, window: int) -> None:
        self.factor, self.window = factor, window
        self.initial: float | None = None
        self.count = 0

    def check(self, loss: float) -> str | None:
        if not math.isfinite(loss):
            return f"the loss became {loss}"
        if self.initial is None:
            self.initial = loss
        if loss > self.factor * max(self.initial, 1e-12):
            self.count += 1
            if self.count >= self.window:
                return (
                    f"the loss stayed above {self.factor:g} × its initial value "
                    f"{self.initial:.4g} for {self.window} steps (now {loss:.4g})"
                )
        else:
            self.count = 0
        return None


def _params_finite(model: torch.nn.Module) -> bool:
    return all(bool(torch.isfinite(p).all()) for p in model.parameters())


def train(
    config,
    out_dir: str | Path | None = None,
    callbacks: Iterable[Callback] = (),
    control: TrainingControl | None = None,
) -> Run:
    """Train ``config`` (a RunConfig) and return its Run; autosaves to ``out_dir`` (when
    given) after every probe. ``callbacks`` get each :class:`Snapshot` after it is recorded;
    ``control`` lets another thread pause, resume, stop and change lr / ρ."""
    from ijr_core.config import resolve_device
    from ijr_core.data import load_dataset
    from ijr_core.models import build_model
    from ijr_core.optimizers import build_optimizer

    control = control if control is not None else TrainingControl()
    callbacks = list(callbacks)
    device = resolve_device(config.device)
    # Every random draw uses its own seeded generator (the model's initialisation takes a
    # turn on torch's global one, see build_model), so runs in parallel threads are
    # reproducible and the caller's global generator is left alone.
    dataset = load_dataset(config)
    model = build_model(config, dataset).to(device)
    method = build_optimizer(config, model)
    loss = loss_fn(config.loss)
    X, y = dataset.X_train.to(device), dataset.y_train.to(device)
    ids = probe_subset(len(y), config.probe_size, config.data_seed)
    ids_t = torch.as_tensor(ids, device=device)
    probe_X, probe_y = X[ids_t], y[ids_t]
    test_X, test_y = dataset.X_test.to(device), dataset.y_test.to(device)

    run = Run(
        config,
        sample_ids=ids,
        sample_labels=dataset.y_train[torch.as_tensor(ids)].numpy(),
        sample_noisy=np.asarray(dataset.noisy)[ids],
        meta=_meta(config, dataset, model, device),
    )
    control.run, control.steps_total, control.step = run, config.steps, 0
    loop = _Loop(config, model, method, loss, X, y, (probe_X, probe_y, test_X, test_y),
                 run, control, callbacks, out_dir)
    try:
        loop.run_loop()
    finally:
        loop.threads.close()
    return run


def _meta(config, dataset, model, device) -> dict:
    return {
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "versions": library_versions(),
        "created": now_iso(),
        "source": "trainer",
        "dataset": dataset.name,
        "n_classes": int(dataset.n_classes),
        "input_shape": list(dataset.input_shape),
        "image_shape": list(dataset.image_shape) if dataset.image_shape else None,
        "class_names": list(dataset.class_names),
        "is_image": bool(dataset.is_image),
        "is_2d": bool(dataset.is_2d),
        "n_params": int(sum(p.numel() for p in model.parameters() if p.requires_grad)),
        "n_train": int(dataset.n_train),
        "threads": torch.get_num_threads(),
        "diverged_at": None,
    }


class _Loop:
    """State of one training loop (kept small: each method does one thing)."""

    def __init__(self, config, model, method, loss, X, y, probe_data, run, control,
                 callbacks, out_dir) -> None:
        self.config, self.model, self.method, self.loss = config, model, method, loss
        self.X, self.y = X, y
        self.probe_data = probe_data
        self.run, self.control, self.callbacks = run, control, callbacks
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.state = ProbeState()
        self.divergence = _Divergence(config.divergence_factor, config.divergence_window)
        self.batches = batch_indices(len(y), config.batch_size, config.seed, X.device)
        self.step = 0
        self.grad_evals = 0
        self.train_time = 0.0
        self._t0 = time.perf_counter()
        self.last_probe = -1
        self.diverged_loss = math.nan
        self.threads = ThreadPolicy(config.torch_threads)
        self.threads.before_step(0)  # the step-0 probe already runs on the budget's share

    # ---- bookkeeping

    def elapsed(self) -> float:
        return time.perf_counter() - self._t0

    def save(self) -> None:
        if self.out_dir is not None:
            self.run.save(self.out_dir)

    def finish(self, status: str, **meta) -> None:
        with self.run.lock:
            self.run.meta["threads"] = self.threads.threads()
            self.run.meta["thread_policy"] = self.threads.summary()
        self.run.set_status(status, wall_time=self.elapsed(), train_time=self.train_time, **meta)
        try:
            self.save()
        except OSError as exc:  # e.g. the disk is full: a failed run is still returned
            if status != "failed":
                raise  # run_loop turns it into a failed run
            self.run.meta["save_error"] = f"{type(exc).__name__}: {exc}"

    # ---- the loop

    def run_loop(self) -> None:
        try:
            if not self.take_probe():
                return
            while self.step < self.config.steps:
                if self.handle_control():
                    if self.run.status == "diverged":  # at the probe of a new η
                        return
                    break
                reason = self.one_step()
                if reason is not None:
                    self.diverge(reason)
                    return
                due = self.step % self.config.probe_every == 0 or self.step == self.config.steps
                if due and not self.take_probe():
                    return
            if self.control.stopped and self.step < self.config.steps:
                if self.last_probe != self.step and not self.take_probe():
                    return
                self.finish("stopped", stopped_at=self.step)
            else:
                self.finish("finished")
        except KeyboardInterrupt:
            self.finish("stopped", stopped_at=self.step, error="interrupted (KeyboardInterrupt)")
            raise
        except Exception as exc:  # noqa: BLE001 - recorded in the run, see module docstring
            self.finish("failed", error=f"{type(exc).__name__}: {exc}",
                        traceback=traceback.format_exc(), failed_at=self.step)

    def handle_control(self) -> bool:
        """Apply pause / lr / ρ changes; True when the run should stop. A paused run takes
        changes too: each is applied (and probed) while it stays paused."""
        if self.control.pause_requested:
            paused_at = time.perf_counter()
            self.run.set_status("paused")
            while True:
                self.control.wait_while_paused(wake_on_change=True)
                if not self.control.pause_requested or self.control.stopped:
                    break
                if not self.apply_changes():
                    return True  # diverged at the probe
            self._t0 += time.perf_counter() - paused_at
            self.run.set_status("running")
        return not self.apply_changes() or self.control.stopped

    def apply_changes(self) -> bool:
        """Apply pending lr / ρ changes, recorded at this step. A new η is probed at once
        (before the next step), so 2/η and every metric at this step show it; False if the
        run diverged at that probe."""
        lr, rho = self.control.take_changes()
        with self.run.lock:
            if lr is not None:
                self.method.set_lr(lr)
                self.run.meta.setdefault("lr_changes", []).append([self.step, lr])
            if rho is not None:
                self.method.set_rho(rho)
                self.run.meta.setdefault("rho_changes", []).append([self.step, rho])
        return lr is None or self.take_probe()

    def one_step(self) -> str | None:
        """One optimizer update; returns a divergence reason or None."""
        idx = next(self.batches)
        Xb, yb = (self.X, self.y) if idx is None else (self.X[idx], self.y[idx])
        self.threads.before_step(self.step)
        t = time.perf_counter()
        value = self.method.step(self.model, Xb, yb, self.loss)
        dt = time.perf_counter() - t
        self.threads.after_step(dt)
        self.train_time += dt
        self.grad_evals += self.method.grad_evals_per_step
        reason = self.divergence.check(value)
        if reason is not None:
            self.diverged_loss = value
            return reason
        self.step += 1
        self.control.step = self.step
        return None

    def diverge(self, reason: str) -> None:
        """End the run as diverged at the current step (a row marks where, unless the
        step was just probed: its probe row is kept as measured)."""
        if self.last_probe != self.step:
            self.run.append_scalars(self.step, train_loss=self.diverged_loss, lr=self.method.lr,
                                    two_over_eta=2.0 / self.method.lr,
                                    grad_evals=self.grad_evals, wall_time=self.elapsed(),
                                    train_time=self.train_time)
        self.finish("diverged", diverged_at=self.step, diverged_reason=reason)

    def take_probe(self) -> bool:
        """Probe, record, autosave and notify; False if the run diverged instead."""
        if not _params_finite(self.model):
            self.diverge("a parameter became non-finite")
            return False
        pX, py, tX, ty = self.probe_data
        t = time.perf_counter()
        try:
            snap = probe(self.model, pX, py, tX, ty, loss=self.config.loss,
                         n_eigs=self.config.n_eigs, eig_tol=self.config.eig_tol,
                         state=self.state, step=self.step, lr=self.method.lr,
                         mode=self.config.probe_mode)
        except NonFiniteError as exc:
            self.diverge(f"the model's outputs became non-finite ({exc})")
            return False
        self.threads.after_probe(time.perf_counter() - t)
        snap.scalars.update(rho=self.method.rho, grad_evals=float(self.grad_evals),
                            wall_time=self.elapsed(), train_time=self.train_time)
        self.run.append_snapshot(snap)
        # a re-probe of the same step (after a live η) replaces that step's row; callbacks
        # see each step once
        fresh, self.last_probe = self.last_probe != self.step, self.step
        self.save()
        for callback in self.callbacks if fresh else ():
            callback(snap)
        return True
