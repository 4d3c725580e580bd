"""Steps/s of the default preset beside CPU-burning processes: thread policy vs fixed counts.

Setting: the default preset (edge-of-stability: digits, MLP, full-batch GD, probes every 25
steps) for ``--steps`` steps, trained while ``--burners`` processes spin on the CPU (a
browser, a video call). Same process, same config, interleaved repetitions:

* 1 torch thread (``torch_threads=1``),
* all usable cores (``torch_threads=cores``),
* ours: the thread policy (``torch_threads=None``: measures 1 vs all on the first steps,
  keeps the faster, re-checks).

Prints steps/s (training wall time including probes, median over ``--repeats``) and the
policy's ratio to the best and to the worst fixed count; with ``--burners 0`` the same on
a quiet machine. Goal: the policy is never slower than the best fixed count by > 10 %.

    python bench/bench_threads_busy.py [--steps 800] [--burners 2] [--repeats 3]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ijr_core.config import PRESETS, usable_cores  # noqa: E402
from ijr_core.trainer import train  # noqa: E402


def _burn(stop) -> None:
    x = 0
    while not stop.is_set():
        for i in range(100_000):
            x += i * i


def steps_per_s(config) -> tuple[float, dict]:
    t = time.perf_counter()
    run = train(config)
    return config.steps / (time.perf_counter() - t), run.meta.get("thread_policy", {})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=None, help="default: the preset's (800)")
    ap.add_argument("--burners", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    cores = usable_cores()
    base = PRESETS["edge-of-stability"]
    base = base.replace(steps=args.steps or base.steps)
    variants = {"1 thread": 1, f"all ({cores}) threads": cores, "policy (auto)": None}
    train(base.replace(steps=5, torch_threads=1))  # imports, data cache, thread pools
    stop = mp.Event()
    burners = [mp.Process(target=_burn, args=(stop,), daemon=True) for _ in range(args.burners)]
    for p in burners:
        p.start()
    rates: dict[str, list[float]] = {k: [] for k in variants}
    chosen = []
    try:
        time.sleep(0.5)
        order = list(variants.items())
        for r in range(args.repeats):
            for label, n in order[r % 3:] + order[:r % 3]:  # rotated: no variant always last
                rate, policy = steps_per_s(base.replace(torch_threads=n))
                rates[label].append(rate)
                if n is None:
                    chosen.append([c[1] for c in policy.get("changes", [])])
    finally:
        stop.set()
        for p in burners:
            p.join()
    med = {k: statistics.median(v) for k, v in rates.items()}
    print(f"default preset, {base.steps} steps, {args.burners} CPU burners, {cores} cores, "
          f"median of {args.repeats}")
    for k, v in med.items():
        print(f"  {k:>18}: {v:7.1f} steps/s   (runs: {', '.join(f'{x:.1f}' for x in rates[k])})")
    fixed = [med[k] for k in variants if variants[k] is not None]
    ours = med["policy (auto)"]
    print(f"  policy / best fixed = {ours / max(fixed):.2f}, policy / worst fixed = "
          f"{ours / min(fixed):.2f}")
    print(f"  thread counts the policy used (per repeat): {chosen}")


if __name__ == "__main__":
    main()
