"""Wall time per step of each update rule, in units of one plain GD step.

MLP 64-128-128-10 (tanh) on 1000 random inputs, full batch, cross-entropy, float32.
Prints the median over repeats of the time per step and its ratio to GD, next to the
``grad_evals_per_step`` the runs record. Run: ``.venv/bin/python bench/bench_optimizers.py``.
"""

import statistics
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from ijr_core.optimizers import OPTIMIZERS, build_optimizer  # noqa: E402

NAMES = ["gd", "sam", "asam", "ejr", "jacobian-penalty"]


def mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Linear(64, 128), nn.Tanh(), nn.Linear(128, 128), nn.Tanh(), nn.Linear(128, 10)
    )


def step_times(X, y, steps: int = 10, repeats: int = 15) -> dict[str, float]:
    """Median seconds per step for each method; methods interleaved within each repeat so
    that load from other processes hits all of them alike."""
    runs = {}
    for name in NAMES:
        model = mlp()
        cfg = SimpleNamespace(optimizer=name, lr=0.1, rho=0.05, beta=0.01, seed=0)
        runs[name] = (model, build_optimizer(cfg, model))
    times = {name: [] for name in NAMES}
    for r in range(repeats + 1):
        for name, (model, method) in runs.items():
            start = time.process_time()
            for _ in range(steps):
                method.step(model, X, y, F.cross_entropy)
            if r > 0:  # the first round is warm-up
                times[name].append((time.process_time() - start) / steps)
    return {name: statistics.median(t) for name, t in times.items()}


def main() -> None:
    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(0)
    X = torch.randn(1000, 64, generator=g)
    y = torch.randint(0, 10, (1000,), generator=g)
    times = step_times(X, y)
    print(f"{'method':18s} {'ms/step':>8s} {'x gd':>6s} {'grad_evals':>10s}")
    for name, t in times.items():
        evals = OPTIMIZERS[name].grad_evals_per_step
        print(f"{name:18s} {1e3 * t:8.2f} {t / times['gd']:6.2f} {evals:10d}")


if __name__ == "__main__":
    main()
