"""An 8-run grid on a local Ray against threads of this process, and what that implies for
a cluster.

Setting: the lr-sweep preset (digits, MLP, full-batch GD) with ``--steps`` steps, axes
lr = 4 values × seed = 2. Same configs, same machine, one run per core at once, one torch
thread per run in both:

* baseline: ``run_grid`` with the ThreadExecutor (the default);
* ours on Ray: ``run_grid`` with the RayExecutor on a local Ray started here, timed cold
  (worker processes start and import torch) and warm (a second grid, workers reused); the
  time to start Ray itself is printed apart. The baseline runs again at the end (the
  machine may be shared), and the ratios use the better of its two times.

The runs are checked to be identical (same scalars) before the ratios are printed. The
scaling table at the end is SIMULATED, not measured: runs/hour for N identical nodes of
this machine's cores, from the measured warm time per run on Ray (task overhead included):
runs/hour(N) = N · cores · 3600 / t_run. It holds for grids of at least N · cores runs;
a real cluster adds network transfer of each run (a few MB) and is slower per node when its
nodes are.

    python bench/bench_grid_ray.py [--steps 200]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_sweep import same  # noqa: E402  (this folder is on the path of a script)

from ijr_core.config import PRESETS, usable_cores  # noqa: E402
from ijr_core.executors import RayExecutor, ThreadExecutor  # noqa: E402
from ijr_core.grid import run_grid  # noqa: E402

AXES = {"lr": [0.3, 0.5, 1.0, 1.5], "seed": [0, 1]}


def timed(cfg, executor):
    t = time.perf_counter()
    grid = run_grid(cfg, AXES, executor=executor)
    return time.perf_counter() - t, grid


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=200)
    args = parser.parse_args()
    cfg = PRESETS["lr-sweep"].replace(steps=args.steps, device="cpu")
    cores = usable_cores()
    n = len(AXES["lr"]) * len(AXES["seed"])
    print(f"{n} runs of lr-sweep × {args.steps} steps, {cores} cores, one run per core")

    t_threads, here = timed(cfg, ThreadExecutor())
    print(f"threads (baseline)        {t_threads:7.2f} s  {n / t_threads * 3600:7.0f} runs/h")

    import ray

    from ijr_core import ray_tasks

    t = time.perf_counter()
    ray_tasks.connect(None)
    t_start = time.perf_counter() - t
    print(f"Ray start (local)         {t_start:7.2f} s  (once per process / cluster)")
    t_cold, cold = timed(cfg, RayExecutor())
    print(f"Ray, cold workers         {t_cold:7.2f} s  ratio {t_cold / t_threads:5.2f}× threads")
    t_warm, warm = timed(cfg, RayExecutor())
    print(f"Ray, warm workers         {t_warm:7.2f} s  ratio {t_warm / t_threads:5.2f}× threads"
          f"  {n / t_warm * 3600:7.0f} runs/h")
    assert same(here, cold) and same(here, warm), "Ray runs differ from the in-process runs"
    print("identical scalars: threads = Ray (cold) = Ray (warm)")
    ray.shutdown()
    t_again, _ = timed(cfg, ThreadExecutor())  # again, in case the machine was busier before
    best = min(t_threads, t_again)
    print(f"threads (baseline, again) {t_again:7.2f} s")
    print(f"Ray overhead: warm Ray / best threads = {t_warm / best:.2f}×, "
          f"cold Ray (+ start) / best threads = {(t_cold + t_start) / best:.2f}×")

    t_run = t_warm * cores / n  # seconds of one core per run on Ray, overhead included
    print("\nSIMULATED scaling (not measured): N nodes like this one, "
          f"{cores} runs at once per node, {t_run:.2f} s per run")
    print(f"{'nodes':>6s} {'runs/hour':>10s} {'256-run grid':>13s}")
    for nodes in (1, 2, 4, 8, 16):
        rate = nodes * cores * 3600 / t_run
        waves = -(-256 // (nodes * cores))
        print(f"{nodes:6d} {rate:10.0f} {waves * t_run / 60:11.1f} min")


if __name__ == "__main__":
    main()
