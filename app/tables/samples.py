"""Per-sample tables: heatmap cells and sample orders, one checkpoint's table, the most
impure samples, one sample's history. Pure pandas / numpy.

A tracked sample's metrics (SCIENCE.md): ‖M‖ the impurity of its prediction, λ* its weight
in ‖G‖ = ⟨λ*‖J‖²⟩, ‖J‖² its squared spectral logit-Jacobian norm, p_max its top
probability, "correct" 1 when classified right. A heatmap row is the mean of the metric
over a bin of consecutive (ordered) samples, so rows × checkpoints stays bounded.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from app.tables.access import config_value, quiet_nan
from ijr_core.protocol import RunLike

SAMPLE_METRICS = {
    "m_norm": "‖M‖",
    "lambda_star": "λ*",
    "jac_spectral_sq": "‖J‖²",
    "jac_frobenius_sq": "‖J‖² Frobenius",
    "p_max": "p_max",
    "correct": "correct",
}


HEATMAP_ORDERS = ("class", "final impurity", "first correct", "noisy first", "sample id")


HEATMAP_MARKS = 40_000


def metric_domain(run: RunLike, metric: str) -> list[float] | None:
    if metric in ("p_max", "correct"):
        return [0.0, 1.0]
    if metric in ("m_norm", "lambda_star"):
        return [0.0, 1.0] if config_value(run, "loss") == "mse" else [0.0, 0.5]
    return None


def first_correct_index(correct: np.ndarray) -> np.ndarray:
    """Per sample, the first checkpoint index with correct > 0.5 (C when never)."""
    hit = np.asarray(correct) > 0.5
    c = hit.shape[0]
    return np.where(hit.any(axis=0), hit.argmax(axis=0), c)


def sample_order(run: RunLike, order: str, metric: str = "m_norm") -> np.ndarray:
    """Permutation of the samples for the heatmap rows.

    class: by label, then final ‖M‖ descending; final impurity: final ‖M‖ descending;
    first correct: checkpoint of first correct classification (never = last), then label;
    noisy first: noisy labels on top, then class; sample id: ascending id."""
    samples = run.samples
    labels = np.asarray(run.sample_labels)
    final_m = np.nan_to_num(np.asarray(samples["m_norm"])[-1], nan=-1.0)
    if order == "class":
        return np.lexsort((-final_m, labels))
    if order == "final impurity":
        return np.argsort(-final_m, kind="stable")
    if order == "first correct":
        return np.lexsort((labels, first_correct_index(samples["correct"])))
    if order == "noisy first":
        return np.lexsort((-final_m, labels, ~np.asarray(run.sample_noisy, dtype=bool)))
    if order == "sample id":
        return np.argsort(np.asarray(run.sample_ids), kind="stable")
    raise ValueError(f"unknown order {order!r}; known: {', '.join(HEATMAP_ORDERS)}")


def step_edges(steps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    steps = np.asarray(steps, dtype=float)
    if steps.size == 1:
        return steps, steps + 1.0
    gap = np.diff(steps)
    return steps, np.append(steps[1:], steps[-1] + np.median(gap))


def heatmap_bins(n_samples: int, n_checkpoints: int, max_marks: int = HEATMAP_MARKS) -> int:
    """Samples per heatmap row so that rows × checkpoints ≤ max_marks."""
    return max(1, math.ceil(n_samples * max(n_checkpoints, 1) / max_marks))


def heatmap_frame(
    run: RunLike, metric: str = "m_norm", order: str = "class", max_marks: int = HEATMAP_MARKS
) -> tuple[pd.DataFrame, int]:
    """(cells, samples per row): one row of cells per bin of consecutive (ordered) samples,
    the cell value the mean of the metric over the bin at that checkpoint."""
    values = np.asarray(run.samples[metric], dtype=np.float32)  # (C, S)
    c, s = values.shape
    perm = sample_order(run, order)
    b = heatmap_bins(s, c, max_marks)
    rows = math.ceil(s / b)
    pad = rows * b - s
    ordered = values[:, perm]
    if pad:
        ordered = np.concatenate([ordered, np.full((c, pad), np.nan, np.float32)], axis=1)
    with quiet_nan():
        binned = np.nanmean(ordered.reshape(c, rows, b), axis=2)  # (C, rows)
    ids = np.asarray(run.sample_ids)[perm]
    labels = np.asarray(run.sample_labels)[perm]
    noisy = np.asarray(run.sample_noisy, dtype=np.float32)[perm]
    first = np.arange(rows) * b
    noisy_frac = np.add.reduceat(noisy, first) / np.diff(np.append(first, s))
    start, end = step_edges(run.sample_steps)
    cells = pd.DataFrame(
        {
            "kind": "cell",
            "row": np.tile(np.arange(rows, dtype=np.float32), c),
            "step": np.repeat(start, rows).astype(np.float32),
            "step_end": np.repeat(end, rows).astype(np.float32),
            "value": binned.reshape(-1),
            "sample": np.tile(ids[first], c),
            "label": np.tile(labels[first], c),
            "noisy": np.tile(noisy_frac.astype(np.float32), c),
        }
    )
    return cells, b


def subsample_indices(n: int, max_points: int) -> np.ndarray:
    return np.arange(n) if n <= max_points else np.linspace(0, n - 1, max_points).astype(int)


def sample_table(run: RunLike, step_index: int = -1) -> pd.DataFrame:
    """One row per sample at a checkpoint: id, label, noisy, and every per-sample metric."""
    df = pd.DataFrame(
        {
            "sample": np.asarray(run.sample_ids),
            "label": np.asarray(run.sample_labels),
            "noisy": np.asarray(run.sample_noisy, dtype=bool),
        }
    )
    for key in run.samples:
        df[key] = np.asarray(run.samples[key][step_index], dtype=np.float64)
    if "correct" in df:
        df["correct"] = df["correct"] > 0.5
    return df


def top_impure(
    run: RunLike, step_index: int = -1, k: int = 10, metric: str = "m_norm"
) -> pd.DataFrame:
    """The k samples with the largest metric (default ‖M‖) at a checkpoint, descending."""
    df = sample_table(run, step_index)
    df = df[np.isfinite(df[metric].to_numpy())]
    return df.sort_values(metric, ascending=False, kind="stable").head(k).reset_index(drop=True)


def sample_history_frame(run: RunLike, sample_index: int) -> pd.DataFrame:
    """Long rows (step, metric, value) of one sample (column index into the run's samples)."""
    steps = np.asarray(run.sample_steps, dtype=float)
    frames = []
    for key in ("m_norm", "lambda_star", "p_max", "jac_spectral_sq"):
        if key in run.samples:
            v = np.asarray(run.samples[key], dtype=np.float64)[:, sample_index]
            axis = "J" if key == "jac_spectral_sq" else "prob"
            frames.append(
                pd.DataFrame(
                    {"kind": axis, "step": steps, "metric": SAMPLE_METRICS[key], "value": v}
                )
            )
    return pd.concat(frames, ignore_index=True)
