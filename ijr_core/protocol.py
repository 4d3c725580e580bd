"""RunLike: what every consumer (app, report, CLI, claims) may read of a run.

:class:`~ijr_core.record.Run` satisfies it, and so must anything handed to a view in its
place (a loaded run, a run being trained, a synthetic run of the tests). Writing (appends,
``set_status``, ``save``) and thread-safety (``lock``, ``copy``) belong to ``Run`` alone.
The protocol is ``runtime_checkable``: ``isinstance(x, RunLike)`` checks that every member
below exists (not its types).
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class RunLike(Protocol):
    """Read access to one run's record (see :mod:`ijr_core.record` for the layout)."""

    @property
    def config(self) -> Any:
        """The run's :class:`~ijr_core.config.RunConfig` (None for a run without one)."""

    @property
    def meta(self) -> dict[str, Any]:
        """Metadata: n_classes, input shape, class names, versions, warnings …"""

    @property
    def status(self) -> str:
        """One of :data:`ijr_core.record.STATUSES`."""

    @property
    def step(self) -> int:
        """The last step recorded."""

    @property
    def scalars(self) -> dict[str, np.ndarray]:
        """Metric -> 1-D array over the recorded steps ("step" int64, the rest float64)."""

    @property
    def samples(self) -> dict[str, np.ndarray]:
        """Per-sample metric -> (checkpoints × samples) float32 array."""

    @property
    def sample_steps(self) -> np.ndarray:
        """Steps of the per-sample checkpoints, (C,) int64."""

    @property
    def sample_ids(self) -> np.ndarray:
        """Dataset indices of the tracked samples, (S,) int64."""

    @property
    def sample_labels(self) -> np.ndarray:
        """Labels of the tracked samples, (S,) int64."""

    @property
    def sample_noisy(self) -> np.ndarray:
        """Whether each tracked sample's label was corrupted, (S,) bool."""

    @property
    def params(self) -> list[dict[str, np.ndarray]]:
        """Parameter snapshots, one per checkpoint, or an empty list."""

    @property
    def probe_steps(self) -> np.ndarray:
        """Steps that hold a probe (a finite sharpness), int64."""

    @property
    def logged_scalars(self) -> list[str]:
        """Names of the scalars a user's loop logged between probes."""

    def scalar(self, name: str) -> np.ndarray:
        """One scalar series; all NaN when the metric was never recorded."""

    def last(self, name: str, default: float = ...) -> float:
        """Last finite value of a scalar metric (or ``default``)."""

    def phase_analysis(self, **overrides: Any) -> Any:
        """Phase labels and events (:class:`~ijr_core.phases.PhaseAnalysis`)."""

    def phases(
        self, eos_fraction: float | None = None, arp_fraction: float | None = None
    ) -> np.ndarray:
        """Phase ("I", "II", "III" or "U") at each recorded step."""

    def phase_spans(
        self, eos_fraction: float | None = None, arp_fraction: float | None = None
    ) -> list:
        """Consecutive phases as (phase, start_step, end_step)."""
