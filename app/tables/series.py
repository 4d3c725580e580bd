"""Series over training: the overlay's long frames and their reductions, η·step time,
seed bands. Pure pandas / numpy.

Two reductions keep long curves cheap and honest:

- :func:`envelope_indices` keeps, per bucket of consecutive points, the minimum and the
  maximum (so spikes such as catapults survive) plus the first and the last point;
- :func:`ema_debiased` is the exponential moving average
  s_t = w·s_{t−1} + (1−w)·y_t, s_0 = 0, divided by (1 − w^t) so the start is not pulled
  towards 0 (Adam's bias correction); the raw curve stays visible beside it.

"Time" is η·step = Σ_t η_t; a seed band is mean ± std over the runs of a seed group
(:func:`app.tables.runs.seed_groups`) on the first run's x grid.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from app.tables.access import (
    RunOrScalars,
    config_dict,
    config_value,
    quiet_nan,
    scalar,
    scalars_of,
)
from app.tables.runs import seed_groups
from ijr_core.protocol import RunLike

MAX_POINTS = 400


X_AXES = {"step": "step", "time": "η·step (time)"}


_COLUMNS = ("run", "kind", "x", "value", "lo", "hi")


def step_domain(run: RunOrScalars) -> list[float]:
    """x-domain of the step axis: [0, configured steps] so live charts do not rescale."""
    steps = config_value(run, "steps")
    recorded = np.asarray(scalars_of(run).get("step", [0]), dtype=float)
    last = float(recorded.max()) if recorded.size else 0.0
    return [0.0, float(max(steps or 0, last, 1))]


def envelope_indices(y: np.ndarray, max_points: int = MAX_POINTS) -> np.ndarray:
    """Indices (ascending) of at most ``max_points`` points of ``y`` that keep its shape:
    the first and last point and, in each of ⌊(max_points − 2)/2⌋ equal buckets of the
    interior, the argmin and argmax of its finite values (all-NaN buckets contribute none)."""
    y = np.asarray(y, dtype=float)
    n = len(y)
    if n <= max(max_points, 2):
        return np.arange(n)
    buckets = max(1, (max_points - 2) // 2)
    edges = np.linspace(1, n - 1, buckets + 1).round().astype(int)
    keep = [0, n - 1]
    finite = np.isfinite(y)
    for a, b in zip(edges[:-1], edges[1:], strict=True):
        if b <= a:
            continue
        seg = y[a:b]
        ok = finite[a:b]
        if not ok.any():
            continue
        keep.append(a + int(np.nanargmin(np.where(ok, seg, np.nan))))
        keep.append(a + int(np.nanargmax(np.where(ok, seg, np.nan))))
    return np.unique(np.asarray(keep, dtype=int))


def ema_debiased(y: np.ndarray, weight: float) -> np.ndarray:
    """Debiased exponential moving average of ``y`` with ``weight`` w ∈ [0, 1):
    s_t = w·s_{t−1} + (1 − w)·y_t over the finite values (t = 1, 2, ...), s_0 = 0,
    returned as s_t / (1 − w^t). NaN positions stay NaN and do not advance t.
    w = 0 returns ``y`` unchanged; a constant series stays exactly constant."""
    if not 0.0 <= weight < 1.0:
        raise ValueError(f"smoothing weight must be in [0, 1), got {weight}")
    y = np.asarray(y, dtype=float)
    out = np.full_like(y, np.nan)
    s, t = 0.0, 0
    for i, v in enumerate(y):
        if not math.isfinite(v):
            continue
        t += 1
        s = weight * s + (1.0 - weight) * v
        out[i] = s / (1.0 - weight**t)
    return out


def time_axis(steps: np.ndarray, lr: np.ndarray | None, default_lr: float) -> np.ndarray:
    """η·step "time" at each probe step: Σ η over the steps so far, with η piecewise
    constant between probes (the value recorded at the earlier probe)."""
    steps = np.asarray(steps, dtype=float)
    if lr is None or not np.isfinite(lr).any():
        return steps * default_lr
    eta = pd.Series(np.asarray(lr, dtype=float)).ffill().bfill().fillna(default_lr).to_numpy()
    gaps = np.diff(steps, prepend=steps[:1])
    return steps[:1] * eta[:1] + np.concatenate([[0.0], np.cumsum(gaps[1:] * eta[:-1])])


def run_x(run: RunLike, x_axis: str = "step") -> np.ndarray:
    """x values of a run's probes: steps, or η·step time (``x_axis="time"``)."""
    steps = np.asarray(run.scalars["step"], dtype=float)
    if x_axis == "step":
        return steps
    if x_axis != "time":
        raise ValueError(f"x_axis must be one of {list(X_AXES)}, got {x_axis!r}")
    lr = run.scalars.get("lr")
    return time_axis(steps, lr, float(config_dict(run).get("lr") or 1.0))


def _series_frame(
    label: str, x: np.ndarray, y: np.ndarray, smoothing: float, max_points: int
) -> pd.DataFrame:
    ok = np.isfinite(y) & np.isfinite(x)
    x, y = x[ok], y[ok]
    idx = envelope_indices(y, max_points)
    parts = [pd.DataFrame({"run": label, "kind": "raw", "x": x[idx], "value": y[idx]})]
    if smoothing > 0:
        smooth = ema_debiased(y, smoothing)
        parts.append(
            pd.DataFrame({"run": label, "kind": "smooth", "x": x[idx], "value": smooth[idx]})
        )
    return pd.concat(parts, ignore_index=True)


def _band_frame(
    label: str,
    members: Sequence[RunLike],
    metric: str,
    x_axis: str,
    smoothing: float,
    max_points: int,
) -> pd.DataFrame:
    """Mean ± std over the members on the first member's x grid (others interpolated)."""
    grid = run_x(members[0], x_axis)
    ys = []
    for run in members:
        x, y = run_x(run, x_axis), scalar(run, metric)
        ok = np.isfinite(x) & np.isfinite(y)
        if ok.sum() >= 1:
            ys.append(np.interp(grid, x[ok], y[ok], left=np.nan, right=np.nan))
    if not ys:
        return pd.DataFrame(columns=_COLUMNS)
    stack = np.vstack(ys)
    with quiet_nan():
        mean = np.nanmean(stack, axis=0)
        std = np.nanstd(stack, axis=0)
    frame = _series_frame(label, grid, mean, smoothing, max_points)
    ok = np.isfinite(mean) & np.isfinite(grid)
    g, m, s = grid[ok], mean[ok], std[ok]
    idx = envelope_indices(m, max_points)
    band = pd.DataFrame(
        {
            "run": label,
            "kind": "band",
            "x": g[idx],
            "value": m[idx],
            "lo": (m - s)[idx],
            "hi": (m + s)[idx],
        }
    )
    return pd.concat([frame, band], ignore_index=True)


def overlay_frame(
    runs: Mapping[str, RunLike],
    metric: str,
    x_axis: str = "step",
    smoothing: float = 0.0,
    group_seeds: bool = False,
    max_points: int = MAX_POINTS,
) -> pd.DataFrame:
    """Long table (run, kind, x, value, lo, hi) of one metric across runs.

    kind "raw" (envelope-downsampled curve), "smooth" (debiased EMA, when smoothing > 0),
    "band" (mean ± std of a seed group: value = mean, lo/hi = mean ∓ std) and, for
    ``metric="sharpness"``, "eta" (each run's 2/η)."""
    parts = []
    groups = seed_groups(runs) if group_seeds else {k: [k] for k in runs}
    for label, members in groups.items():
        group = [runs[m] for m in members]
        if len(group) > 1:
            parts.append(_band_frame(label, group, metric, x_axis, smoothing, max_points))
        else:
            run = group[0]
            x, y = run_x(run, x_axis), scalar(run, metric)
            parts.append(_series_frame(label, x, y, smoothing, max_points))
        if metric == "sharpness":
            run = group[0]
            x, two = run_x(run, x_axis), scalar(run, "two_over_eta")
            ok = np.isfinite(two) & np.isfinite(x)
            idx = envelope_indices(two[ok], max_points)
            parts.append(
                pd.DataFrame({"run": label, "kind": "eta", "x": x[ok][idx], "value": two[ok][idx]})
            )
    parts = [p for p in parts if len(p)]
    if not parts:
        return pd.DataFrame(
            {c: pd.Series(dtype=str if c in ("run", "kind") else float) for c in _COLUMNS}
        )
    out = pd.concat(parts, ignore_index=True).reindex(columns=list(_COLUMNS))
    return out.astype({"x": float, "value": float, "lo": float, "hi": float})
