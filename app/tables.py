"""Tables and numerics of runs, sweeps and groups: pure pandas / numpy, no streamlit, no altair.

Everything a chart of :mod:`app.charts` draws, or a page shows as a table, that is a
computation on the data: per-sample tables and heatmap cells, sample orders, the
overlay's long frames with their reductions, final-metric and optimizer tables, the
sweep's per-η frame and the config differences. Runs are :class:`ijr_core.run.Run` objects
or anything with ``config``, ``scalars``, ``samples``, ``sample_steps``, ``sample_ids``,
``sample_labels``, ``sample_noisy``, ``status`` and ``phase_spans()``; a sweep is anything
with ``lrs`` and ``runs`` (:class:`ijr_core.sweep.Sweep`).

Two reductions keep long curves cheap and honest:

- :func:`envelope_indices` keeps, per bucket of consecutive points, the minimum and the
  maximum (so spikes such as catapults survive) plus the first and the last point;
- :func:`ema_debiased` is the exponential moving average
  s_t = w·s_{t−1} + (1−w)·y_t, s_0 = 0, divided by (1 − w^t) so the start is not pulled
  towards 0 (Adam's bias correction); the raw curve stays visible beside it.

Symbols follow SCIENCE.md: ‖H‖ sharpness, ⟨‖M‖⟩ mean impurity, ⟨‖J‖²⟩ mean squared
spectral logit-Jacobian norm, λ* the per-sample weight, η the learning rate, "time"
η·step = Σ_t η_t.
"""

from __future__ import annotations

import contextlib
import math
import re
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd


def _scalars(run: Any) -> Mapping[str, np.ndarray]:
    return run if isinstance(run, Mapping) else run.scalars


def _cfg(run: Any, name: str, default: Any = None) -> Any:
    return getattr(getattr(run, "config", None), name, default)


def n_classes(run: Any) -> int:
    """K of a run: from its metadata, else its config, else the largest label + 1."""
    meta = getattr(run, "meta", None) or {}
    if meta.get("n_classes"):
        return int(meta["n_classes"])
    labels = np.asarray(getattr(run, "sample_labels", []))
    guess = int(labels.max()) + 1 if labels.size else 0
    if _cfg(run, "dataset") in ("blobs", "spirals"):
        return max(int(_cfg(run, "n_classes", 2)), guess)
    return max(guess, 2)


def step_domain(run: Any) -> list[float]:
    """x-domain of the step axis: [0, configured steps] so live charts do not rescale."""
    steps = _cfg(run, "steps")
    recorded = np.asarray(_scalars(run).get("step", [0]), dtype=float)
    last = float(recorded.max()) if recorded.size else 0.0
    return [0.0, float(max(steps or 0, last, 1))]


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


@contextlib.contextmanager
def quiet_nan():
    """Silences numpy's warnings about all-NaN bins or columns ('mean of empty slice',
    invalid values)."""
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


def _metric_domain(run: Any, metric: str) -> list[float] | None:
    if metric in ("p_max", "correct"):
        return [0.0, 1.0]
    if metric in ("m_norm", "lambda_star"):
        return [0.0, 1.0] if _cfg(run, "loss") == "mse" else [0.0, 0.5]
    return None


def first_correct_index(correct: np.ndarray) -> np.ndarray:
    """Per sample, the first checkpoint index with correct > 0.5 (C when never)."""
    hit = np.asarray(correct) > 0.5
    c = hit.shape[0]
    return np.where(hit.any(axis=0), hit.argmax(axis=0), c)


def sample_order(run: Any, order: str, metric: str = "m_norm") -> np.ndarray:
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


def _step_edges(steps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    steps = np.asarray(steps, dtype=float)
    if steps.size == 1:
        return steps, steps + 1.0
    gap = np.diff(steps)
    return steps, np.append(steps[1:], steps[-1] + np.median(gap))


def heatmap_bins(n_samples: int, n_checkpoints: int, max_marks: int = HEATMAP_MARKS) -> int:
    """Samples per heatmap row so that rows × checkpoints ≤ max_marks."""
    return max(1, math.ceil(n_samples * max(n_checkpoints, 1) / max_marks))


def heatmap_frame(
    run: Any, metric: str = "m_norm", order: str = "class", max_marks: int = HEATMAP_MARKS
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
    start, end = _step_edges(run.sample_steps)
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


def _subsample(n: int, max_points: int) -> np.ndarray:
    return np.arange(n) if n <= max_points else np.linspace(0, n - 1, max_points).astype(int)


def sample_table(run: Any, step_index: int = -1) -> pd.DataFrame:
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


def top_impure(run: Any, step_index: int = -1, k: int = 10, metric: str = "m_norm") -> pd.DataFrame:
    """The k samples with the largest metric (default ‖M‖) at a checkpoint, descending."""
    df = sample_table(run, step_index)
    df = df[np.isfinite(df[metric].to_numpy())]
    return df.sort_values(metric, ascending=False, kind="stable").head(k).reset_index(drop=True)


def sample_history_frame(run: Any, sample_index: int) -> pd.DataFrame:
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


MAX_POINTS = 400


HEATMAP_COLUMNS = 300


X_AXES = {"step": "step", "time": "η·step (time)"}


# Fields that never make two runs "different experiments" for seed grouping.
SEED_FIELDS = ("seed", "name")


_COLUMNS = ("run", "kind", "x", "value", "lo", "hi")


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


def _scalar(run: Any, name: str) -> np.ndarray:
    s = run.scalars
    n = len(s.get("step", []))
    return np.asarray(s[name], dtype=float) if name in s else np.full(n, np.nan)


def _last(run: Any, name: str) -> float:
    v = _scalar(run, name)
    v = v[np.isfinite(v)]
    return float(v[-1]) if len(v) else math.nan


def config_dict(run: Any) -> dict:
    """The run's config as a plain dict ({} when it has none)."""
    cfg = getattr(run, "config", None)
    if cfg is None:
        return {}
    return cfg.to_dict() if hasattr(cfg, "to_dict") else dict(cfg)


def run_x(run: Any, x_axis: str = "step") -> np.ndarray:
    """x values of a run's probes: steps, or η·step time (``x_axis="time"``)."""
    steps = np.asarray(run.scalars["step"], dtype=float)
    if x_axis == "step":
        return steps
    if x_axis != "time":
        raise ValueError(f"x_axis must be one of {list(X_AXES)}, got {x_axis!r}")
    lr = run.scalars.get("lr")
    return time_axis(steps, lr, float(config_dict(run).get("lr") or 1.0))


def seed_groups(runs: Mapping[str, Any]) -> dict[str, list[str]]:
    """Group labels -> run labels: runs whose configs differ only in ``seed`` (and the
    free-text ``name``) share a group. Groups keep the order of first appearance; a group
    of several runs is labelled "<first label> (n seeds)", a trailing "-s<seed>" dropped."""
    keyed: dict[str, list[str]] = {}
    for label, run in runs.items():
        cfg = {k: v for k, v in config_dict(run).items() if k not in SEED_FIELDS}
        keyed.setdefault(repr(sorted(cfg.items())), []).append(label)
    out = {}
    for members in keyed.values():
        if len(members) == 1:
            out[members[0]] = members
        else:
            stem = re.sub(r"-s\d+$", "", members[0]) or members[0]  # "sam-s0" -> "sam"
            name = f"{stem} ({len(members)} seeds)"
            out[name if name not in out else f"{members[0]} ({len(members)} seeds)"] = members
    return out


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
    label: str, members: Sequence[Any], metric: str, x_axis: str, smoothing: float, max_points: int
) -> pd.DataFrame:
    """Mean ± std over the members on the first member's x grid (others interpolated)."""
    grid = run_x(members[0], x_axis)
    ys = []
    for run in members:
        x, y = run_x(run, x_axis), _scalar(run, metric)
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
    runs: Mapping[str, Any],
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
            x, y = run_x(run, x_axis), _scalar(run, metric)
            parts.append(_series_frame(label, x, y, smoothing, max_points))
        if metric == "sharpness":
            run = group[0]
            x, two = run_x(run, x_axis), _scalar(run, "two_over_eta")
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


def config_diff(runs: Mapping[str, Any]) -> pd.DataFrame:
    """Rows = runs, columns = only the config fields whose values differ between runs."""
    dicts = {label: config_dict(run) for label, run in runs.items()}
    fields = list(dict.fromkeys(k for d in dicts.values() for k in d))
    differ = [f for f in fields if len({repr(d.get(f)) for d in dicts.values()}) > 1]
    frame = pd.DataFrame(
        [{f: _cell(d.get(f)) for f in differ} for d in dicts.values()],
        index=list(dicts),
        columns=differ,
    )
    frame.index.name = "run"
    return frame


def _cell(v: Any) -> str:
    return "None" if v is None else str(v)


FINAL_METRICS = (
    ("status", None),
    ("step", None),
    ("test acc", "test_acc"),
    ("train loss", "train_loss"),
    ("final ‖H‖", "sharpness"),
    ("2/η", "two_over_eta"),
    ("final ⟨‖M‖⟩", "m_norm_mean"),
    ("final ⟨‖J‖²⟩", "jac_spectral_sq_mean"),
    ("wall time (s)", "wall_time"),
)


def final_metrics(runs: Mapping[str, Any]) -> pd.DataFrame:
    """Rows = runs: status, step reached and the last finite value of the key metrics."""
    rows = []
    for run in runs.values():
        row = {}
        for title, name in FINAL_METRICS:
            if name is None:
                row[title] = getattr(run, title, None)
            else:
                row[title] = _last(run, name)
        rows.append(row)
    frame = pd.DataFrame(rows, index=list(runs), columns=[t for t, _ in FINAL_METRICS])
    frame.index.name = "run"
    return frame


def optimizer_table(runs: Mapping[str, Any]) -> pd.DataFrame:
    """The optimizer comparison: per run its method, test accuracy, final ⟨‖J‖²⟩, final
    ‖H‖ and wall time (s) of training (probes included), plus status."""
    rows = []
    for label, run in runs.items():
        cfg = config_dict(run)
        rows.append(
            {
                "run": label,
                "optimizer": cfg.get("optimizer"),
                "batch": "full" if cfg.get("batch_size") is None else str(cfg.get("batch_size")),
                "test acc": _last(run, "test_acc"),
                "final ⟨‖J‖²⟩": _last(run, "jac_spectral_sq_mean"),
                "final ‖H‖": _last(run, "sharpness"),
                "wall time (s)": _last(run, "wall_time"),
                "status": getattr(run, "status", None),
            }
        )
    return pd.DataFrame(rows).set_index("run") if rows else pd.DataFrame()


OPTIMIZER_METRICS = ("test acc", "final ⟨‖J‖²⟩", "final ‖H‖", "wall time (s)")


def optimizer_summary(runs: Mapping[str, Any]) -> pd.DataFrame:
    """Seed groups of the optimizer comparison (runs differing only in the seed): the
    number of seeds and, per metric of :func:`optimizer_table`, the mean and the standard
    deviation over the seeds (population std, 0 for one seed)."""
    table = optimizer_table(runs)
    rows = []
    for group, members in seed_groups(runs).items():
        part = table.loc[members]
        row = {"group": group, "optimizer": part["optimizer"].iloc[0], "seeds": len(members)}
        for metric in OPTIMIZER_METRICS:
            values = part[metric].to_numpy(dtype=float)
            row[metric] = float(np.nanmean(values)) if np.isfinite(values).any() else np.nan
            row[f"± {metric}"] = float(np.nanstd(values)) if np.isfinite(values).any() else np.nan
        rows.append(row)
    return pd.DataFrame(rows).set_index("group") if rows else pd.DataFrame()


def _eta_label(lr: float) -> str:
    return f"{lr:g}"


# Metrics offered by the sweep heatmap: scalar names, plus the derived ‖H‖ / (2/η).
HEATMAP_METRICS = {
    "m_norm_mean": "⟨‖M‖⟩",
    "sharpness_over_2eta": "‖H‖ / (2/η)",
    "jac_spectral_sq_mean": "⟨‖J‖²⟩",
    "lambda_star_jac": "⟨λ*‖J‖²⟩",
    "train_loss": "train loss",
    "test_acc": "test accuracy",
}


def heatmap_values(run: Any, metric: str) -> np.ndarray:
    """A scalar series of the run, or ``sharpness_over_2eta`` = ‖H‖ · η / 2 (1 = at the
    edge of stability, for whatever η was in force at each probe)."""
    if metric == "sharpness_over_2eta":
        with np.errstate(invalid="ignore", divide="ignore"):
            return _scalar(run, "sharpness") / _scalar(run, "two_over_eta")
    return _scalar(run, metric)


def sweep_heatmap_frame(
    sweep: Any, metric: str = "m_norm_mean", max_columns: int = HEATMAP_COLUMNS
) -> pd.DataFrame:
    """Cells (kind="cell", eta, step, step_end, value) of the (η × step) map of a scalar
    and rectangles (kind="arp", eta, step, step_end) of each run's phase II (the ARP).
    A run with more than ``max_columns`` probes is averaged over consecutive probes."""
    parts = []
    for lr, run in zip(sweep.lrs, sweep.runs, strict=True):
        steps = np.asarray(run.scalars["step"], dtype=float)
        vals = heatmap_values(run, metric)
        if not len(steps):
            continue
        b = max(1, math.ceil(len(steps) / max_columns))
        start = steps[::b]
        end = np.append(
            start[1:], steps[-1] + (np.median(np.diff(steps)) if len(steps) > 1 else 1.0)
        )
        with quiet_nan():
            pad = (-len(vals)) % b
            v = np.nanmean(np.append(vals, np.full(pad, np.nan)).reshape(-1, b), axis=1)
        parts.append(
            pd.DataFrame(
                {
                    "kind": "cell",
                    "eta": _eta_label(lr),
                    "lr": float(lr),
                    "step": start,
                    "step_end": end,
                    "value": v,
                }
            )
        )
        try:
            spans = run.phase_spans()
        except (KeyError, ValueError):
            spans = []
        arp = [(a, e) for ph, a, e in spans if ph == "II"]
        if arp:
            parts.append(
                pd.DataFrame(
                    {
                        "kind": "arp",
                        "eta": _eta_label(lr),
                        "lr": float(lr),
                        "step": [float(a) for a, _ in arp],
                        "step_end": [float(max(e, a + 1)) for a, e in arp],
                        "value": np.nan,
                    }
                )
            )
    cols = ["kind", "eta", "lr", "step", "step_end", "value"]
    if not parts:
        return pd.DataFrame(
            {c: pd.Series(dtype=str if c in ("kind", "eta") else float) for c in cols}
        )
    return pd.concat(parts, ignore_index=True).reindex(columns=cols)


def _statuses(sweep: Any) -> list[str]:
    return [str(getattr(r, "status", "")) for r in sweep.runs]


def at_loss(run: Any, target: float, name: str = "jac_spectral_sq_mean") -> tuple[float, float]:
    """(step, value of ``name``) at the first probe whose training loss is ≤ ``target``;
    (NaN, NaN) when the run never gets there. Comparing runs at a matched training loss
    separates implicit regularization from "this run simply trained longer"."""
    hit = np.flatnonzero(_scalar(run, "train_loss") <= target)
    if not len(hit):
        return math.nan, math.nan
    return float(run.scalars["step"][hit[0]]), float(_scalar(run, name)[hit[0]])


def sweep_final_frame(sweep: Any, matched_loss: float | None = None) -> pd.DataFrame:
    """Per η: final ⟨‖J‖²⟩ (spectral and Frobenius), max ‖H‖, 2/η, test accuracy, status;
    with ``matched_loss`` also ⟨‖J‖²⟩ and the step where the training loss first reaches it."""
    lrs = np.asarray(sweep.lrs, dtype=float)
    max_h = [float(np.nanmax(_scalar(r, "sharpness"), initial=-np.inf)) for r in sweep.runs]
    frame = pd.DataFrame(
        {
            "lr": lrs,
            "two_over_eta": 2.0 / lrs,
            "final_jac": [_last(r, "jac_spectral_sq_mean") for r in sweep.runs],
            "final_jac_f": [_last(r, "jac_frobenius_sq_mean") for r in sweep.runs],
            "max_sharpness": [h if math.isfinite(h) else np.nan for h in max_h],
            "test_acc": [_last(r, "test_acc") for r in sweep.runs],
            "status": _statuses(sweep),
        }
    )
    if any("jac_spectral_sq_mean_std" in r.scalars for r in sweep.runs):  # seed means
        frame.insert(frame.columns.get_loc("final_jac") + 1, "final_jac_std",
                     [_last_std(r, "jac_spectral_sq_mean") for r in sweep.runs])
    if matched_loss is not None:
        hits = [at_loss(r, matched_loss) for r in sweep.runs]
        frame["step_at_loss"] = [h[0] for h in hits]
        frame["jac_at_loss"] = [h[1] for h in hits]
    return frame


def _last_std(run: Any, name: str) -> float:
    """``<name>_std`` at the last probe where ``name`` is finite (a seed-mean run)."""
    v, sd = _scalar(run, name), _scalar(run, f"{name}_std")
    ok = np.flatnonzero(np.isfinite(v))
    return float(sd[ok[-1]]) if len(ok) else math.nan


# Column -> (heading, printf format) of the sweep table, for the page's column config.
SWEEP_COLUMNS = {
    "lr": ("η", "%.3g"),
    "two_over_eta": ("2/η", "%.3g"),
    "final_jac": ("final ⟨‖J‖²⟩", "%.4g"),
    "final_jac_f": ("final ⟨‖J‖²⟩ Frobenius", "%.4g"),
    "max_sharpness": ("max ‖H‖", "%.3g"),
    "test_acc": ("final test acc.", "%.3f"),
    "status": ("status", None),
    "step_at_loss": ("step at matched loss", "%d"),
    "jac_at_loss": ("⟨‖J‖²⟩ at matched loss", "%.4g"),
}


# ... and of a grid's seed means.
SEED_COLUMNS = {"final_jac_std": ("± std over seeds", "%.3g")}


def log_ticks(values) -> list[float]:
    """Tick values for a log axis over ``values``: 1-2-5 × 10^k within their range (with
    1-9 × 10^k when that gives fewer than three), so a range inside one decade is labelled."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v) & (v > 0)]
    if not len(v):
        return []
    lo, hi = v.min() / 1.1, v.max() * 1.1
    decades = range(int(np.floor(np.log10(lo))), int(np.ceil(np.log10(hi))) + 1)
    for mantissas in ((1, 2, 5), range(1, 10)):
        ticks = [m * 10.0**k for k in decades for m in mantissas if lo <= m * 10.0**k <= hi]
        if len(ticks) >= 3:
            return ticks
    return sorted({float(x) for x in v})


def sweep_runs(sweep: Any) -> dict[str, Any]:
    """Label -> run of a sweep ("η=0.5"), for the overlay charts."""
    return {f"η={_eta_label(lr)}": run for lr, run in zip(sweep.lrs, sweep.runs, strict=True)}


def grid_runs(grid: Any, fixed: Mapping | None = None) -> dict[str, Any]:
    """Label -> run of the saved runs of a grid (:class:`ijr_core.grid.Grid`) whose axes
    other than lr and seed take the ``fixed`` values (all runs when None), labelled
    "η=0.5-s1": runs that differ only in the seed end in -s<seed>, so :func:`seed_groups`
    makes one band of them."""
    out = {}
    for values, run in zip(grid.values, grid.runs, strict=True):
        if run is None or any(values.get(k) != v for k, v in (fixed or {}).items()):
            continue
        parts = [f"η={values['lr']:g}" if k == "lr" else f"{k}={values[k]}"
                 for k in values if k != "seed"]
        seed = f"-s{values['seed']}" if "seed" in values else ""
        out["-".join(parts or ["run"]) + seed] = run
    return out
