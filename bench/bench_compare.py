"""Server time of the Compare page's views: 8 runs × 100 checkpoints.

Synthetic runs (app/synthetic.py). "compare view" builds what the Runs section renders:
four overlay charts (sharpness with 2/η, ⟨‖M‖⟩, ⟨‖J‖²⟩, test accuracy), the config
difference table and the final metrics, and serialises each chart to its Vega-Lite JSON
(what Streamlit sends). "sweep view" builds the (η × step) ⟨‖M‖⟩ heatmap with the ARP
outline, final ⟨‖J‖²⟩ against η, max ‖H‖ against 2/η, the four overlays and the table.
Target: ≤ 1 s each. A second pair compares the min/max envelope (400 points per curve)
with plotting every point, for 8 runs of 20 000 probes. Medians.

    .venv/bin/python bench/bench_compare.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from app import compare_charts as cc  # noqa: E402
from app.synthetic import synthetic_run  # noqa: E402
from bench.common import median_time  # noqa: E402

torch.set_num_threads(1)
OVERLAYS = ("sharpness", "m_norm_mean", "jac_spectral_sq_mean", "test_acc")


def make_runs(n_runs: int = 8, checkpoints: int = 100, samples: int = 200) -> dict:
    lrs = np.geomspace(0.1, 2.0, n_runs)
    return {
        f"η={lr:.3g}": synthetic_run(
            n_samples=samples,
            n_checkpoints=checkpoints,
            lr=float(lr),
            seed=i,
            steps=checkpoints * 10,
        )
        for i, lr in enumerate(lrs)
    }


def _send(chart) -> int:
    return len(json.dumps(chart.to_dict()))


def compare_view(runs: dict, max_points: int = cc.MAX_POINTS, smoothing: float = 0.0) -> int:
    sent = sum(
        _send(cc.overlay_chart(runs, m, "step", smoothing, max_points=max_points)) for m in OVERLAYS
    )
    cc.config_diff(runs).to_json()
    cc.final_metrics(runs).to_json()
    return sent


def sweep_view(sweep) -> int:
    runs = cc.sweep_runs(sweep)
    sent = _send(cc.sweep_heatmap_chart(sweep))
    sent += _send(cc.final_jac_chart(sweep)) + _send(cc.max_sharpness_chart(sweep))
    sent += sum(_send(cc.overlay_chart(runs, m)) for m in OVERLAYS)
    cc.sweep_final_frame(sweep).to_json()
    return sent


def main() -> None:
    runs = make_runs()
    sweep = SimpleNamespace(lrs=np.geomspace(0.1, 2.0, 8), runs=list(runs.values()))
    rows = [
        ("compare view, 8 runs × 100 checkpoints", lambda: compare_view(runs)),
        ("  … with smoothing 0.6", lambda: compare_view(runs, smoothing=0.6)),
        ("sweep view, 8 η × 100 checkpoints", lambda: sweep_view(sweep)),
    ]
    print(f"{'view':48s} {'median':>9s} {'KiB sent':>9s}")
    for name, fn in rows:
        t = median_time(fn, repeats=5)
        print(f"{name:48s} {1000 * t:7.0f} ms {fn() / 1024:9.0f}")
    long = make_runs(checkpoints=20_000, samples=5)
    t_env = median_time(lambda: compare_view(long), repeats=3)
    t_all = median_time(lambda: compare_view(long, max_points=10**9), repeats=1, warmup=0)
    kib_env, kib_all = compare_view(long) / 1024, compare_view(long, max_points=10**9) / 1024
    print(f"{'8 runs × 20 000 probes, min/max envelope':48s} {1000 * t_env:7.0f} ms {kib_env:9.0f}")
    print(f"{'8 runs × 20 000 probes, every point':48s} {1000 * t_all:7.0f} ms {kib_all:9.0f}")
    print(f"envelope speed-up ×{t_all / t_env:.1f}, {kib_all / kib_env:.0f}× less data")


if __name__ == "__main__":
    main()
