"""Time of the phase rule and the claims scorecard on long runs (they are recomputed on
every refresh of the Train page and every chart).

Baseline: the rule's two inner pieces written probe by probe (a median per window and a
state machine per probe, as first written); ours: a sliding-window median and a state
machine per run of equal values (ijr_core.phases). Same labels (asserted). Series of
1,000 / 10,000 / 100,000 probes with ‖H‖/(2/η) and ⟨‖M‖⟩ noisy around the thresholds.
Medians; the scorecard is timed on a 10,000-probe run.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from bench.common import median_time  # noqa: E402
from ijr_core import phases  # noqa: E402
from ijr_core.phases import PhaseRules, analyse_phases  # noqa: E402


def median_per_window(x, window):
    ok = np.flatnonzero(np.isfinite(x))
    vals, half = x[ok], window // 2
    out = np.full(len(x), np.nan)
    for j, i in enumerate(ok):
        out[i] = np.median(vals[max(j - half, 0) : j + half + 1])
    return out


def hysteresis_per_probe(cond, valid, k, start):
    idx = np.flatnonzero(valid)
    c = np.asarray(cond, dtype=bool)[idx]
    run = np.ones(len(c), dtype=np.int64)
    for j in range(len(c) - 2, -1, -1):
        if c[j] == c[j + 1]:
            run[j] = run[j + 1] + 1
    state, s = np.empty(len(c), dtype=bool), start
    for j in range(len(c)):
        if c[j] != s and run[j] >= k:
            s = bool(c[j])
        state[j] = s
    pos = np.searchsorted(idx, np.arange(len(valid)), side="right") - 1
    return np.where(pos >= 0, state[np.maximum(pos, 0)], start) if len(idx) else np.full(
        len(valid), start)


def series(n, seed=0):
    rng = np.random.default_rng(seed)
    ratio = np.clip(np.cumsum(rng.normal(0, 0.05, n)) % 3, 0, None)
    m = 0.25 * np.exp(-np.arange(n) / n * 3) + rng.normal(0, 0.02, n)
    return 4.0 * ratio, np.full(n, 4.0), m


def main() -> None:
    rules = PhaseRules()
    fast = (phases.running_median, phases._hysteresis)
    for n in (1_000, 10_000, 100_000):
        h, two, m = series(n)
        def label(h=h, two=two, m=m):
            return analyse_phases(h, two, m, rules)

        ours = label()
        t_ours = median_time(label, repeats=3)
        phases.running_median, phases._hysteresis = median_per_window, hysteresis_per_probe
        try:
            base = label()
            t_base = median_time(label, repeats=3)
        finally:
            phases.running_median, phases._hysteresis = fast
        assert np.array_equal(base.labels, ours.labels)
        print(f"{n:>7} probes: baseline {1000 * t_base:8.1f} ms, ours {1000 * t_ours:6.1f} ms, "
              f"ratio {t_base / t_ours:5.1f}×")
    from ijr_core.claims import run_claims
    from ijr_core.config import RunConfig
    from ijr_core.run import Run

    h, two, m = series(10_000)
    run = Run(RunConfig())
    for i in range(len(h)):
        run.append_scalars(i, sharpness=h[i], gn_sharpness=h[i], lambda_star_jac=h[i],
                           two_over_eta=4.0, m_norm_mean=m[i], jac_spectral_sq_mean=1.0 + i)
    t = median_time(lambda: run_claims(run), repeats=3)
    print(f"scorecard of a 10,000-probe run: {1000 * t:.1f} ms")


if __name__ == "__main__":
    main()
