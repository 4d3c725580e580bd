"""A learning-rate sweep with parallel runs against a plain sequential loop.

Setting: the lr-sweep preset (edge-of-stability data and model, full-batch GD, 400 steps,
probe every 20) at 8 learning rates. Baselines, same process, same configs:

* sequential, 1 torch thread (what each worker uses),
* sequential, all cores as torch threads (a plain loop left to torch's intra-op threads),
* ours: `sweep_lr` with one run per core at once (threads), 1 torch thread each.

The results are checked to be identical (same scalars) before the ratios are printed.

    python bench/bench_sweep.py [--steps 400] [--lrs 0.05,...]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ijr_core.config import PRESETS  # noqa: E402
from ijr_core.sweep import default_workers, sweep_lr  # noqa: E402

LRS = "0.05,0.1,0.2,0.3,0.5,0.7,1.0,1.5"


def timed_sweep(cfg, lrs, workers, threads):
    torch.set_num_threads(threads)
    t = time.perf_counter()
    # a fixed count (not the measuring thread policy), so the results can be compared
    sweep = sweep_lr(cfg.replace(torch_threads=threads), lrs, workers=workers)
    return time.perf_counter() - t, sweep


def same(a, b) -> bool:
    for ra, rb in zip(a.runs, b.runs, strict=True):
        for k in ra.scalars:
            if k in ("wall_time", "train_time"):
                continue
            if not np.array_equal(ra.scalars[k], rb.scalars[k], equal_nan=True):
                return False
    return True


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=400)
    ap.add_argument("--lrs", default=LRS)
    args = ap.parse_args()
    lrs = [float(x) for x in args.lrs.split(",")]
    cfg = PRESETS["lr-sweep"].replace(device="cpu", steps=args.steps)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    n_proc = default_workers(cfg, len(lrs))
    print(f"{len(lrs)} learning rates, {args.steps} steps each, {cores} cores, "
          f"{n_proc} runs at once")
    t_seq1, seq1 = timed_sweep(cfg, lrs, workers=1, threads=1)
    print(f"sequential, 1 thread           {t_seq1:7.1f} s")
    t_seqn, _ = timed_sweep(cfg, lrs, workers=1, threads=cores)
    print(f"sequential, {cores} threads          {t_seqn:7.1f} s")
    torch.set_num_threads(1)
    t_par, par = timed_sweep(cfg, lrs, workers=n_proc, threads=1)
    print(f"parallel, {n_proc} runs × 1 thread   {t_par:7.1f} s")
    print(f"identical results: {same(seq1, par)}")
    print(f"speedup vs sequential 1 thread:  {t_seq1 / t_par:.2f}x   (target >= 1.7x on 2 cores)")
    print(f"speedup vs sequential {cores} threads: {t_seqn / t_par:.2f}x")


if __name__ == "__main__":
    main()
