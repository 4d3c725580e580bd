"""Reading a run: the one place the tables and charts read scalars and config values.

A run is :class:`ijr_core.protocol.RunLike`. The charts of one run also accept the bare
scalars mapping of a run (metric -> 1-D array, "step" included); :data:`RunOrScalars` is
that union, and the functions here read both (a mapping has no config, metadata or
samples).
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Mapping, Sequence
from typing import Any, Protocol, TypeAlias

import numpy as np

from ijr_core.protocol import RunLike

RunOrScalars: TypeAlias = RunLike | Mapping[str, np.ndarray]


class SweepLike(Protocol):
    """Runs of one config at several learning rates (:class:`ijr_core.sweep.Sweep`, or a
    grid's :meth:`~ijr_core.grid.Grid.sweep`): ``runs[i]`` was trained at ``lrs[i]``."""

    lrs: Sequence[float] | np.ndarray
    runs: Sequence[RunLike]


def scalars_of(run: RunOrScalars) -> Mapping[str, np.ndarray]:
    """The run's scalar series (the mapping itself for a bare mapping)."""
    return run if isinstance(run, Mapping) else run.scalars


def config_value(run: RunOrScalars, name: str, default: Any = None) -> Any:
    """A field of the run's config; ``default`` for a run without config (or a bare
    mapping) and for a config that lacks the field."""
    cfg = None if isinstance(run, Mapping) else run.config
    return default if cfg is None else getattr(cfg, name, default)


def config_dict(run: RunLike) -> dict:
    """The run's config as a plain dict ({} when it has none)."""
    cfg = run.config
    if cfg is None:
        return {}
    return cfg.to_dict() if hasattr(cfg, "to_dict") else dict(cfg)


def scalar(run: RunOrScalars, name: str) -> np.ndarray:
    """One scalar series as float; all NaN (one per recorded step) when never recorded."""
    s = scalars_of(run)
    n = len(s.get("step", []))
    return np.asarray(s[name], dtype=float) if name in s else np.full(n, np.nan)


def last(run: RunOrScalars, name: str) -> float:
    """The last finite value of a scalar series (NaN when there is none)."""
    v = scalar(run, name)
    v = v[np.isfinite(v)]
    return float(v[-1]) if len(v) else math.nan


def last_std(run: RunOrScalars, name: str) -> float:
    """``<name>_std`` at the last probe where ``name`` is finite (a seed-mean run)."""
    v, sd = scalar(run, name), scalar(run, f"{name}_std")
    ok = np.flatnonzero(np.isfinite(v))
    return float(sd[ok[-1]]) if len(ok) else math.nan


def n_classes(run: RunOrScalars) -> int:
    """K of a run: from its metadata, else its config, else the largest label + 1."""
    bare = isinstance(run, Mapping)
    meta = {} if bare else run.meta or {}
    if meta.get("n_classes"):
        return int(meta["n_classes"])
    labels = np.asarray([] if bare else run.sample_labels)
    guess = int(labels.max()) + 1 if labels.size else 0
    if config_value(run, "dataset") in ("blobs", "spirals"):
        return max(int(config_value(run, "n_classes", 2)), guess)
    return max(guess, 2)


@contextlib.contextmanager
def quiet_nan():
    """Silences numpy's warnings about all-NaN bins or columns ('mean of empty slice',
    invalid values)."""
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        yield
