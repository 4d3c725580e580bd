"""Long-form frames of the Inspect page's scrubber: the rows of every scrubbable checkpoint
at once, each tagged with its position on the scrubber, so that the browser shows one
checkpoint by filtering (``datum.checkpoint == at.checkpoint``) without asking the server.

Pure numpy / pandas (no streamlit, no altair). Bounds keep what goes to the browser small:
at most ``max_checkpoints`` checkpoints are scrubbable (evenly spaced, first and last kept)
and the scatter carries at most ``max_points`` rows over all of them (the same evenly
spaced samples at every checkpoint, so a point moves rather than blinks).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from app.tables.access import n_classes
from app.tables.samples import metric_domain, subsample_indices
from ijr_core.protocol import RunLike

MAX_SCRUB_CHECKPOINTS = 60

SCRUB_POINTS = 25_000

# what the scatter draws or shows on hover, nothing more: these rows go to the browser
POINT_METRICS = ("m_norm", "lambda_star", "jac_spectral_sq", "p_max", "correct")


def scrub_indices(n_checkpoints: int, max_checkpoints: int = MAX_SCRUB_CHECKPOINTS) -> np.ndarray:
    """Checkpoint indices the scrubber offers, ascending: all of them when there are at most
    ``max_checkpoints``, else ``max_checkpoints`` evenly spaced ones, the first and the last
    included. Position p on the scrubber is checkpoint ``scrub_indices(...)[p]``."""
    return subsample_indices(max(int(n_checkpoints), 0), max(int(max_checkpoints), 2))


def nearest_position(indices: Sequence[int], index: int) -> int:
    """The scrubber position whose checkpoint index is nearest ``index`` (the earlier one on
    a tie); 0 for an empty scrubber."""
    idx = np.asarray(indices, dtype=int)
    return int(np.argmin(np.abs(idx - int(index)))) if idx.size else 0


def histogram_edges(run: RunLike, metric: str, bins: int = 30) -> np.ndarray:
    """``bins + 1`` bin edges of a per-sample metric, fixed over the whole run: the metric's
    natural range when it has one (‖M‖, λ*, p_max), else [min(0, min), max] over every
    checkpoint, so scrubbing moves the bars, not the axis."""
    domain = metric_domain(run, metric)
    if domain:
        lo, hi = domain
    else:
        values = np.asarray(run.samples[metric], dtype=np.float64)
        finite = values[np.isfinite(values)]
        hi = (float(finite.max()) if finite.size else 1.0) or 1.0
        lo = 0.0 if not finite.size else min(0.0, float(finite.min()))
    return np.linspace(lo, hi, bins + 1)


def histogram_frame(
    run: RunLike, metric: str, indices: Sequence[int], edges: np.ndarray
) -> pd.DataFrame:
    """Rows (checkpoint, lo, hi, class, count) with count > 0: at scrubber position p
    (checkpoint ``indices[p]``), the number of samples of each class whose metric lies in
    [lo, hi) (the last bin closed; values outside go to the end bins, NaN to none)."""
    values = np.asarray(run.samples[metric], dtype=np.float64)
    labels = np.asarray(run.sample_labels)
    bins, k = len(edges) - 1, n_classes(run)
    idx = np.asarray(indices, dtype=int)
    counts = np.zeros((len(idx), bins, k), dtype=np.int64)
    for p, c in enumerate(idx):
        v = values[c]
        ok = np.isfinite(v)
        b = np.clip(np.digitize(v[ok], edges) - 1, 0, bins - 1)
        np.add.at(counts[p], (b, np.clip(labels[ok], 0, k - 1)), 1)
    pp, bb, kk = np.meshgrid(np.arange(len(idx)), np.arange(bins), np.arange(k), indexing="ij")
    data = pd.DataFrame(
        {
            "checkpoint": pp.ravel(),
            "lo": edges[bb.ravel()],
            "hi": edges[bb.ravel() + 1],
            "class": kk.ravel().astype(str),
            "count": counts.ravel(),
        }
    )
    return data[data["count"] > 0].reset_index(drop=True)


def point_frame(
    run: RunLike, indices: Sequence[int], max_points: int = SCRUB_POINTS
) -> pd.DataFrame:
    """One row per (scrubber position, shown sample) with λ* and ‖M‖ finite: checkpoint
    (the position), sample, label, noisy, and the metrics of :data:`POINT_METRICS` (as
    float32; correct as a bool).
    The same ⌊max_points / P⌋ evenly spaced samples (all when fewer) at each of the P
    positions: at most max(max_points, P) rows."""
    idx = np.asarray(indices, dtype=int)
    n = len(np.asarray(run.sample_ids))
    cols = subsample_indices(n, max(1, max_points // max(len(idx), 1)))
    reps = len(idx)
    noisy = np.asarray(run.sample_noisy, dtype=bool)[cols]
    data = pd.DataFrame(
        {
            "checkpoint": np.repeat(np.arange(reps, dtype=np.int32), len(cols)),
            "sample": np.tile(np.asarray(run.sample_ids)[cols], reps).astype(np.int32),
            "label": np.tile(np.asarray(run.sample_labels)[cols], reps).astype(np.int32),
            "noisy": np.tile(noisy, reps),
        }
    )
    for key in POINT_METRICS:
        if key in run.samples:
            data[key] = np.asarray(run.samples[key], dtype=np.float32)[idx][:, cols].reshape(-1)
    if "correct" in data:
        data["correct"] = data["correct"] > 0.5
    ok = np.isfinite(data["m_norm"].to_numpy()) & np.isfinite(data["lambda_star"].to_numpy())
    return data[ok].reset_index(drop=True)


def tick_frame(run: RunLike, indices: Sequence[int], x0: float, x1: float) -> pd.DataFrame:
    """Rows (checkpoint, step, y, side, text) of the scrubber's strip, one per position: the
    checkpoint's step, its label "step N" and the label's alignment ``side``: "left" (the
    text starts right of the ▼) except in the last fifth of the axis [x0, x1], where it
    would run off the plot: "right" (the text ends left of the ▼)."""
    idx = np.asarray(indices, dtype=int)
    steps = np.asarray(run.sample_steps, dtype=float)[idx]
    return pd.DataFrame(
        {
            "checkpoint": np.arange(len(idx)),
            "step": steps,
            "y": -0.8,
            "side": np.where(steps > x0 + 0.8 * (x1 - x0), "right", "left"),
            "text": [f"step {int(s)}" for s in steps],
        }
    )
