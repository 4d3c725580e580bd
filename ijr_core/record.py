"""Run: the recorded history of one training run, in memory.

A run is columnar. ``scalars`` holds one 1-D array per metric over the probe steps
(``scalars["step"]`` is the step axis, int64; every other array is float64, NaN where a
metric was not recorded at that step). ``samples`` holds per-sample arrays of shape
(checkpoints × samples), float32, at the steps ``sample_steps``; ``params`` holds one
parameter snapshot (name -> array) per checkpoint at the same steps.

On disk a run is one folder: :mod:`ijr_core.run_format` writes and reads it.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import threading
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from ijr_core.phases import PhaseAnalysis, PhaseRules, analyse_phases
from ijr_core.phases import phase_spans as _phase_spans

STATUSES = ("running", "paused", "finished", "stopped", "diverged", "failed")
SAMPLE_KEYS = ("m_norm", "lambda_star", "jac_spectral_sq", "jac_frobenius_sq", "p_max", "correct")


def now_iso() -> str:
    """Current UTC time as an ISO-8601 string (seconds)."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def library_versions() -> dict[str, str]:
    """Versions of the libraries a run depends on, recorded in its metadata."""
    import platform

    import torch

    versions = {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "torch": torch.__version__,
    }
    with contextlib.suppress(Exception):
        import sklearn

        versions["scikit-learn"] = sklearn.__version__
    return versions


class Run:
    """History of one run, built incrementally by the trainer (or :class:`RunWriter`) and
    read by the app. Appends and :meth:`copy` hold an internal lock, so a UI thread can take
    a consistent :meth:`copy` while training appends."""

    def __init__(
        self,
        config: Any = None,
        *,
        status: str = "running",
        meta: Mapping[str, Any] | None = None,
        sample_ids: Iterable[int] = (),
        sample_labels: Iterable[int] = (),
        sample_noisy: Iterable[bool] | None = None,
        checkpoint_limit: int | None = None,
    ) -> None:
        if status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, got {status!r}")
        self.config = config
        self.status = status
        self.step = 0
        self.meta: dict[str, Any] = dict(meta or {})
        self.sample_ids = np.asarray(list(sample_ids), dtype=np.int64)
        self.sample_labels = np.asarray(list(sample_labels), dtype=np.int64)
        n = len(self.sample_ids)
        noisy = (
            np.zeros(n, dtype=bool)
            if sample_noisy is None
            else np.asarray(list(sample_noisy), dtype=bool)
        )
        self.sample_noisy = noisy
        if not (len(self.sample_labels) == n == len(noisy)):
            raise ValueError(
                f"sample_ids ({n}), sample_labels ({len(self.sample_labels)}) and sample_noisy "
                f"({len(noisy)}) must have the same length"
            )
        if checkpoint_limit is None:
            checkpoint_limit = getattr(config, "checkpoint_limit", 200)
        self.checkpoint_limit = int(checkpoint_limit)
        self._lock = threading.RLock()
        self._steps: list[int] = []
        self._cols: dict[str, list[float]] = {}
        self._sample_steps: list[int] = []
        self._sample_rows: dict[str, list[np.ndarray]] = {k: [] for k in SAMPLE_KEYS}
        self._params: list[dict[str, np.ndarray]] = []
        self._cache: dict[str, Any] = {}

    # ---- incremental building

    def append_scalars(self, step: int, **values: float) -> None:
        """Record scalar metrics at ``step``. Steps are non-decreasing; values at the step of
        the last row are merged into it. A metric missing from a row is NaN there."""
        step = int(step)
        with self._lock:
            if self._steps and step < self._steps[-1]:
                raise ValueError(
                    f"steps must be non-decreasing: got {step} after {self._steps[-1]}"
                )
            if not self._steps or step != self._steps[-1]:
                self._steps.append(step)
                for col in self._cols.values():
                    col.append(math.nan)
            n = len(self._steps)
            for key, value in values.items():
                if key == "step":
                    continue
                col = self._cols.get(key)
                if col is None:
                    col = self._cols[key] = [math.nan] * n
                col[-1] = float(value)
            self.step = max(self.step, step)
            self._cache.pop("scalars", None)

    def append_checkpoint(
        self,
        step: int,
        samples: Mapping[str, np.ndarray],
        params: Mapping[str, np.ndarray] | None = None,
    ) -> None:
        """Record per-sample arrays (each (S,)) and optionally a parameter snapshot at ``step``.
        Older checkpoints are thinned when there are more than ``checkpoint_limit``."""
        step = int(step)
        n = len(self.sample_ids)
        rows = {}
        for key in SAMPLE_KEYS:
            if key not in samples:
                raise ValueError(f"checkpoint at step {step} lacks per-sample array {key!r}")
            row = np.asarray(samples[key], dtype=np.float32).reshape(-1)
            if row.shape != (n,):
                raise ValueError(f"per-sample array {key!r} has shape {row.shape}, expected ({n},)")
            rows[key] = row
        with self._lock:
            if self._sample_steps and step <= self._sample_steps[-1]:
                if step < self._sample_steps[-1]:
                    raise ValueError(
                        f"checkpoint steps must increase: got {step} after {self._sample_steps[-1]}"
                    )
                self._drop_checkpoints([len(self._sample_steps) - 1])
            if self._params and params is None:
                raise ValueError("a run that stores parameters needs them at every checkpoint")
            if self._sample_steps and not self._params and params is not None:
                params = None  # keeps params aligned with sample_steps: all or none
            self._sample_steps.append(step)
            for key in SAMPLE_KEYS:
                self._sample_rows[key].append(rows[key])
            if params is not None:
                self._params.append({k: np.array(v, copy=True) for k, v in params.items()})
            self.step = max(self.step, step)
            if len(self._sample_steps) > max(self.checkpoint_limit, 2):
                self._thin()
            self._cache.pop("samples", None)

    def append_snapshot(self, snapshot) -> None:
        """Record a :class:`~ijr_core.probe.Snapshot`: its scalars, per-sample arrays and
        (when it has them) parameters, at its step."""
        with self._lock:
            self.append_scalars(snapshot.step, **snapshot.scalars)
            self.append_checkpoint(snapshot.step, snapshot.samples, snapshot.params)

    def _thin(self) -> None:
        """Drop every other checkpoint, keeping the first and the last."""
        c = len(self._sample_steps)
        drop = [i for i in range(1, c - 1) if i % 2 == 1]
        self._drop_checkpoints(drop)

    def _drop_checkpoints(self, indices: list[int]) -> None:
        gone = set(indices)
        keep = [i for i in range(len(self._sample_steps)) if i not in gone]
        self._sample_steps = [self._sample_steps[i] for i in keep]
        for key in SAMPLE_KEYS:
            self._sample_rows[key] = [self._sample_rows[key][i] for i in keep]
        if self._params:
            self._params = [self._params[i] for i in keep]
        self._cache.pop("samples", None)

    def set_status(self, status: str, **meta: Any) -> None:
        """Set the status (one of STATUSES) and update metadata."""
        if status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, got {status!r}")
        with self._lock:
            self.status = status
            self.meta.update(meta)

    # ---- read access

    @property
    def lock(self) -> threading.RLock:
        """The lock that guards appends (hold it to read several fields consistently)."""
        return self._lock

    @property
    def scalars(self) -> dict[str, np.ndarray]:
        """Metric name -> 1-D array over recorded steps; "step" is int64, the rest float64.
        The arrays are read-only (shared with copies); ``.copy()`` one to modify it."""
        with self._lock:
            cached = self._cache.get("scalars")
            if cached is None:
                cached = {"step": np.asarray(self._steps, dtype=np.int64)}
                for key, col in self._cols.items():
                    cached[key] = np.asarray(col, dtype=np.float64)
                _read_only(cached)
                self._cache["scalars"] = cached
            return dict(cached)

    @property
    def samples(self) -> dict[str, np.ndarray]:
        """Per-sample metric name -> (checkpoints × samples) float32 array."""
        with self._lock:
            cached = self._cache.get("samples")
            if cached is None:
                n = len(self.sample_ids)
                cached = {
                    key: (np.stack(rows) if rows else np.zeros((0, n), np.float32)).astype(
                        np.float32
                    )
                    for key, rows in self._sample_rows.items()
                }
                _read_only(cached)
                self._cache["samples"] = cached
            return dict(cached)

    @property
    def sample_steps(self) -> np.ndarray:
        """Steps of the per-sample checkpoints, (C,) int64."""
        with self._lock:
            return np.asarray(self._sample_steps, dtype=np.int64)

    @property
    def params(self) -> list[dict[str, np.ndarray]]:
        """Parameter snapshots, one dict per checkpoint (same steps as ``sample_steps``),
        or an empty list when the run stores none."""
        with self._lock:
            return list(self._params)

    def __len__(self) -> int:
        return len(self._steps)

    def scalar(self, name: str) -> np.ndarray:
        """One scalar series; an all-NaN array when the metric was never recorded."""
        s = self.scalars
        return s[name] if name in s else np.full(len(s["step"]), np.nan)

    def last(self, name: str, default: float = math.nan) -> float:
        """Last finite value of a scalar metric (or ``default``)."""
        values = self.scalar(name)
        finite = values[np.isfinite(values)]
        return float(finite[-1]) if len(finite) else default

    @property
    def probe_steps(self) -> np.ndarray:
        """Steps that hold a probe (a finite sharpness); the other rows hold only scalars
        logged between probes (:meth:`RunWriter.log`) or the step where a run diverged."""
        s = self.scalars
        sharp = s.get("sharpness")
        if sharp is None:
            return np.zeros(0, dtype=np.int64)
        return np.asarray(s["step"][np.isfinite(sharp)], dtype=np.int64)

    @property
    def logged_scalars(self) -> list[str]:
        """Names of the scalars a user's loop logged with :meth:`RunWriter.log`."""
        names = self.meta.get("logged_scalars") or []
        return [n for n in names if isinstance(n, str) and n in self.scalars]

    def copy(self) -> Run:
        """A consistent snapshot for another thread: later appends do not change it."""
        with self._lock:
            other = Run.__new__(Run)
            other.__dict__.update(self.__dict__)
            other._lock = threading.RLock()
            other.meta = json.loads(json.dumps(self.meta, default=str))
            other._steps = list(self._steps)
            other._cols = {k: list(v) for k, v in self._cols.items()}
            other._sample_steps = list(self._sample_steps)
            other._sample_rows = {k: list(v) for k, v in self._sample_rows.items()}
            other._params = list(self._params)
            other._cache = dict(self._cache)
            return other

    # ---- phases

    def phase_analysis(self, **overrides: Any) -> PhaseAnalysis:
        """Phase labels and events under the run's config rules (see :mod:`ijr_core.phases`);
        ``overrides`` (eos_fraction, arp_fraction, phase_sustain, unstable_factor,
        arp_smoothing) that are not None replace the config's values."""
        return analyse_phases(
            self.scalar("sharpness"),
            self.scalar("two_over_eta"),
            self.scalar("m_norm_mean"),
            PhaseRules.from_config(self.config, **overrides),
        )

    def phases(
        self, eos_fraction: float | None = None, arp_fraction: float | None = None
    ) -> np.ndarray:
        """Phase ("I", "II", "III" or "U") at each recorded step: the project's operational
        definition of SCIENCE.md's phases (see :mod:`ijr_core.phases`). Thresholds default
        to the run's config (RunConfig's defaults when it has none)."""
        return self.phase_analysis(eos_fraction=eos_fraction, arp_fraction=arp_fraction).labels

    def phase_spans(
        self, eos_fraction: float | None = None, arp_fraction: float | None = None
    ) -> list:
        """Consecutive phases as (phase, start_step, end_step); a span ends where the next
        begins, the last one at the last recorded step."""
        return _phase_spans(self.phases(eos_fraction, arp_fraction), self.scalars["step"])

    # ---- disk

    def save(self, out_dir: str | os.PathLike) -> Path:
        """Write the run folder (created if needed), each file atomically: see
        :func:`ijr_core.run_format.save_run`."""
        from ijr_core.run_format import save_run  # run_format imports this module

        return save_run(self, out_dir)

    @classmethod
    def from_columns(
        cls,
        config: Any,
        *,
        status: str,
        meta: Mapping[str, Any],
        step: int,
        checkpoint_limit: int,
        scalars: Mapping[str, np.ndarray],
        sample_steps: Iterable[int],
        samples: Mapping[str, np.ndarray],
        sample_ids: Iterable[int],
        sample_labels: Iterable[int],
        sample_noisy: Iterable[bool],
        params: list[dict[str, np.ndarray]],
    ) -> Run:
        """A run holding the given columns, as :attr:`scalars`, :attr:`samples` and
        :attr:`params` return them (the inverse of those views; used when loading)."""
        run = cls(
            config,
            status=status,
            meta=meta,
            sample_ids=sample_ids,
            sample_labels=sample_labels,
            sample_noisy=sample_noisy,
            checkpoint_limit=checkpoint_limit,
        )
        run._steps = [int(s) for s in np.asarray(scalars["step"]).astype(np.int64)]
        run._cols = {k: [float(x) for x in v] for k, v in scalars.items() if k != "step"}
        run._sample_steps = [int(s) for s in sample_steps]
        run._sample_rows = {k: [row for row in samples[k]] for k in SAMPLE_KEYS}
        run._params = list(params)
        run.step = int(step)
        return run

    def __repr__(self) -> str:
        c = len(self._sample_steps)
        return f"Run(status={self.status!r}, step={self.step}, probes={len(self)}, checkpoints={c})"


def _read_only(arrays: dict[str, np.ndarray]) -> None:
    # The cached arrays are shared with copies handed to other threads: never mutate them.
    for arr in arrays.values():
        arr.flags.writeable = False


def phases_from_scalars(
    sharpness: np.ndarray,
    two_over_eta: np.ndarray,
    m_norm_mean: np.ndarray,
    eos_fraction: float,
    arp_fraction: float,
    **rules: Any,
) -> np.ndarray:
    """Phases I/II/III/U of SCIENCE.md from the three scalar series (one entry per probe):
    the labels of :func:`ijr_core.phases.analyse_phases`; ``rules`` are the other
    :class:`~ijr_core.phases.PhaseRules` fields (phase_sustain, unstable_factor,
    arp_smoothing; RunConfig's defaults when left out)."""
    return analyse_phases(
        sharpness, two_over_eta, m_norm_mean,
        PhaseRules(eos_fraction=eos_fraction, arp_fraction=arp_fraction, **rules),
    ).labels


