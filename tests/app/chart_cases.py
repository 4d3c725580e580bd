"""Every chart and table of app.charts built on fixed synthetic runs, for the spec snapshot
test (tests/app/test_chart_specs.py): name -> a function of nothing returning a chart, an
``as_spec`` (spec, data) pair or a DataFrame. After an intended change of a chart rewrite
the snapshot with ``python -m tests.app.chart_cases`` and say why in the commit."""

from __future__ import annotations

import hashlib
import json
import math
import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd

from app import charts, compare_charts
from app.synthetic import synthetic_run

_RUN = synthetic_run(n_samples=60, n_checkpoints=12, steps=220, n_classes=3, seed=3)
_RUN_LR = synthetic_run(n_samples=40, n_checkpoints=9, steps=160, lr_change=(80, 0.2), seed=4)
_RUNS = {
    "a-s0": synthetic_run(n_samples=20, n_checkpoints=15, lr=0.5, seed=0),
    "a-s1": synthetic_run(n_samples=20, n_checkpoints=15, lr=0.5, seed=1),
    "b": synthetic_run(n_samples=20, n_checkpoints=15, lr=0.1, seed=2),
}
_SWEEP = SimpleNamespace(
    lrs=[0.1, 0.5, 1.0],
    runs=[synthetic_run(n_samples=15, n_checkpoints=14, lr=lr, seed=i)
          for i, lr in enumerate([0.1, 0.5, 1.0])],
)
_GRID_POINTS = {
    "xs": np.linspace(-1, 1, 7), "ys": np.linspace(-1, 1, 5),
    "m": np.linspace(0, 0.5, 35).reshape(5, 7), "pred": (np.arange(35).reshape(5, 7) % 3),
}
_POINTS = {"x": np.array([0.1, -0.3]), "y": np.array([0.2, 0.4]), "label": np.array([0, 2]),
           "noisy": np.array([False, True]), "sample": np.array([5, 9])}


def cases() -> dict:
    """name -> builder; each builder returns a chart, a (spec, data) pair or a frame."""
    r, c, cc = _RUN, charts, compare_charts
    out = {
        "sharpness": lambda: c.sharpness_chart(r),
        "sharpness_spec": lambda: c.sharpness_chart(r, as_spec=True),
        "sharpness_lr": lambda: c.sharpness_chart(_RUN_LR),
        "sharpness_mapping": lambda: c.sharpness_chart(r.scalars),
        "m_norm": lambda: c.m_norm_chart(r),
        "m_norm_spec": lambda: c.m_norm_chart(r, as_spec=True),
        "jacobian": lambda: c.jacobian_chart(r),
        "jacobian_log": lambda: c.jacobian_chart(r, log=True, as_spec=True),
        "loss": lambda: c.loss_chart(r),
        "accuracy": lambda: c.accuracy_chart(r, as_spec=True),
        "heatmap": lambda: c.heatmap_chart(r),
        "heatmap_binned": lambda: c.heatmap_chart(r, "lambda_star", order="first correct",
                                                  max_marks=200, as_spec=True, title=False),
        "heatmap_cursor": lambda: c.heatmap_cursor_chart(r, step_index=4),
        "heatmap_cursor_end": lambda: c.heatmap_cursor_chart(r, as_spec=True),
        "histogram": lambda: c.histogram_chart(r, "m_norm", step_index=3),
        "histogram_j": lambda: c.histogram_chart(r, "jac_spectral_sq", as_spec=True),
        "scatter": lambda: c.scatter_chart(r),
        "scatter_noisy": lambda: c.scatter_chart(r, 2, color_by="noisy", as_spec=True),
        "scrub": lambda: c.scrub_chart(r, start=4, as_spec=True),
        "scrub_bounded": lambda: c.scrub_chart(r, "p_max", "noisy first", False, "noisy",
                                               max_checkpoints=5, max_points=100),
        "history": lambda: c.sample_history_chart(r, 5, step_index=2),
        "history_spec": lambda: c.sample_history_chart(r, 7, as_spec=True),
        "decision_map": lambda: c.decision_map_chart(_GRID_POINTS, _POINTS),
        "decision_map_bare": lambda: c.decision_map_chart(_GRID_POINTS),
        "sample_table": lambda: c.sample_table(r, 3),
        "top_impure": lambda: c.top_impure(r),
        "heatmap_frame": lambda: c.heatmap_frame(r, order="noisy first")[0],
        "history_frame": lambda: c.sample_history_frame(r, 4),
        "overlay": lambda: cc.overlay_chart(_RUNS),
        "overlay_smooth": lambda: cc.overlay_chart(_RUNS, "m_norm_mean", "time", 0.6, True),
        "overlay_log": lambda: cc.overlay_chart(_RUNS, "train_loss", log_y=True),
        "overlay_acc": lambda: cc.overlay_chart(_RUNS, "test_acc"),
        "overlay_frame": lambda: cc.overlay_frame(_RUNS, "sharpness", group_seeds=True),
        "config_diff": lambda: cc.config_diff(_RUNS),
        "final_metrics": lambda: cc.final_metrics(_RUNS),
        "optimizer_table": lambda: cc.optimizer_table(_RUNS),
        "optimizer_summary": lambda: cc.optimizer_summary(_RUNS),
        "sweep_heatmap": lambda: cc.sweep_heatmap_chart(_SWEEP),
        "sweep_heatmap_eos": lambda: cc.sweep_heatmap_chart(_SWEEP, "sharpness_over_2eta"),
        "sweep_final": lambda: cc.sweep_final_frame(_SWEEP, matched_loss=0.5),
        "final_jac": lambda: cc.final_jac_chart(_SWEEP),
        "final_jac_matched": lambda: cc.final_jac_chart(_SWEEP, matched_loss=0.5),
        "max_sharpness": lambda: cc.max_sharpness_chart(_SWEEP),
        "sweep_overlay": lambda: cc.overlay_chart(cc.sweep_runs(_SWEEP), "sharpness"),
    }
    return out


def _round(obj):
    """Floats to 9 significant digits: the fingerprint ignores last-bit float noise."""
    if isinstance(obj, float):
        return obj if not math.isfinite(obj) else float(f"{obj:.9g}")
    if isinstance(obj, dict):
        return {k: _round(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_round(v) for v in obj]
    return obj


def canonical(value) -> object:
    """A JSON-able form of a chart, (spec, data) pair or DataFrame."""
    if isinstance(value, pd.DataFrame):
        return {"columns": [str(x) for x in value.columns], "index": [str(x) for x in value.index],
                "data": json.loads(value.to_json(orient="values", double_precision=15))}
    if isinstance(value, dict):  # named datasets
        return {name: canonical(frame) for name, frame in value.items()}
    if isinstance(value, tuple):
        spec, data = value
        return {"spec": spec, "data": canonical(data)}
    return value.to_dict()


def fingerprint(value) -> str:
    """sha256 of the canonical JSON (sorted keys, floats rounded) of a chart or table."""
    text = json.dumps(_round(canonical(value)), sort_keys=True, ensure_ascii=True,
                      default=str)
    # Altair names unnamed views and params itself (a process-wide counter, or a hash of the
    # chart object): an identifier, not behaviour; renumber them by first use
    names: dict[str, str] = {}
    text = re.sub(r"\b(view|param)_(?:[0-9a-f]{16}_)?\d+\b",
                  lambda m: names.setdefault(m.group(0), f"{m.group(1)}_#{len(names)}"), text)
    return hashlib.sha256(text.encode()).hexdigest()


SNAPSHOT = Path(__file__).with_name("chart_spec_fingerprints.json")


if __name__ == "__main__":  # after an intended change of a chart: rewrite the snapshot
    SNAPSHOT.write_text(json.dumps({n: fingerprint(b()) for n, b in cases().items()},
                                   indent=1, sort_keys=True) + "\n")
