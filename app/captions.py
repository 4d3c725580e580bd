"""Chart captions computed from the run shown: every number and every shape a caption
states is measured on that run (peak ‖H‖/(2/η), where ⟨‖M‖⟩ peaks, final accuracies), so
a caption never describes the default run under another run's chart.

Pure functions: Run -> markdown text (no Streamlit), tested on synthetic runs.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from app.tables.access import config_value
from ijr_core.claims import THRESHOLDS, Claim
from ijr_core.phases import PhaseRules
from ijr_core.protocol import RunLike

__all__ = ["accuracy", "edge_at_step", "gauss_newton_at_step", "jacobian", "m_norm",
           "over_the_run", "sharpness"]


def _col(run: RunLike, name: str) -> np.ndarray:
    s = run.scalars
    return np.asarray(s[name], dtype=float) if name in s else np.zeros(0)


def _finite(steps: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    ok = np.isfinite(values)
    return steps[ok], values[ok]


def sharpness(run: RunLike) -> str:
    """Where ‖H‖ stands against 2/η: start, first crossing of ``eos_fraction`` · 2/η, the
    peak ratio and the latest one, each ratio taken against the 2/η of its own step."""
    steps, h = _col(run, "step"), _col(run, "sharpness")
    two = _col(run, "two_over_eta")
    if not len(steps) or not len(h) or not len(two):
        return "No sharpness recorded yet."
    ratio = h / two
    steps, ratio = _finite(steps, ratio)
    if not len(ratio):
        return "No finite sharpness recorded yet."
    eos = float(config_value(run, "eos_fraction", 0.9))
    peak = int(np.argmax(ratio))
    head = (f"‖H‖ went from {ratio[0]:.2f}× 2/η at step {int(steps[0])} to a peak of "
            f"{ratio[peak]:.2f}× at step {int(steps[peak])}; now {ratio[-1]:.2f}× "
            f"(step {int(steps[-1])}).")
    crossed = np.flatnonzero(ratio >= eos)
    if not len(crossed):
        body = (f" It has not reached {eos:g} · 2/η: no edge of stability in this run"
                f"{' yet' if run.status in ('running', 'paused') else ''}.")
    else:
        after = ratio[crossed[0]:]
        near = float(np.mean((after >= 0.9) & (after <= 1.2)))
        body = (f" Edge of stability from step {int(steps[crossed[0]])}; since then the median "
                f"is {np.median(after):.2f}× 2/η and {100 * near:.0f} % of probes lie within "
                "0.9–1.2×.")
        if ratio[-1] < eos and ratio[peak] >= eos:
            body += " It has fallen back below the line: with pure predictions (‖M‖ → 0) the "
            body += "regularization lets go."
    return (head + body + " ‖G‖ = ⟨λ\\*‖J‖²⟩ exactly (by construction: λ\\* is defined from "
            "G's top eigenvector): it is drawn dashed over the ‖G‖ line; ‖G‖/‖H‖ is the "
            "Gauss–Newton ratio.")


def m_norm(run: RunLike) -> str:
    """The shape of ⟨‖M‖⟩: start (against 1/K), peak and latest value."""
    steps, m = _finite(_col(run, "step"), _col(run, "m_norm_mean"))
    if not len(m):
        return "No ⟨‖M‖⟩ recorded yet."
    k = int(run.meta.get("n_classes") or 0)
    peak = int(np.argmax(m))
    start = f"⟨‖M‖⟩ started at {m[0]:.3f}" + (f" (1/K = {1 / k:.3f})" if k else "")
    text = (f"{start}, peaked at {m[peak]:.3f} at step {int(steps[peak])} and is "
            f"{m[-1]:.3f} now")
    # the scorecard's thresholds: the caption never calls a U what the claim does not
    rose = m[peak] >= THRESHOLDS.u_rise * m[0]
    fell = m[-1] <= THRESHOLDS.u_fall * m[peak]
    if rose and fell and 0 < peak < len(m) - 1:
        shape = ": an inverted U (predictions commit to a few classes, then turn pure)."
    elif rose:
        shape = ": rising so far (the fall comes as predictions turn pure)."
    elif fell:
        shape = ": it only falls" + (" (with two classes the uniform start is already the "
                                     "most impure, ‖M‖ ≤ 1/2)." if k == 2 else ".")
    else:
        shape = ": roughly flat so far."
    return text + shape + " Shading: phases I (before EoS), II (ARP), III (later)."


def edge_at_step(h: float, two: float, rules: PhaseRules) -> str:
    """Where ‖H‖ stands at one step, r = ‖H‖/(2/η), with the phase rule's thresholds:
    below ``eos_fraction`` not at the edge, from ``unstable_factor`` far above it."""
    r = h / two if two else math.nan
    if not math.isfinite(r):
        return ""
    if r >= rules.unstable_factor:
        return f"far above the edge (≥ {rules.unstable_factor:g} · 2/η: unstable)."
    if r >= rules.eos_fraction:
        return f"at the edge of stability (≥ {rules.eos_fraction:g} · 2/η)."
    return (f"below the edge (< {rules.eos_fraction:g} · 2/η): sharpening towards it, or "
            "left behind once predictions are pure.")


def gauss_newton_at_step(h: float, g: float, gap: float = THRESHOLDS.gn_gap) -> str:
    """Whether ‖H‖ ≈ ‖G‖ at one step: relative gap |‖H‖ − ‖G‖| / ‖H‖ against the
    scorecard's ``gn_gap``."""
    rel = abs(h - g) / abs(h) if h else math.nan
    if not math.isfinite(rel):
        return ""
    if rel <= gap:
        return (f"they agree within {100 * rel:.2g} % (≤ {100 * gap:g} %): the residual "
                "term is small here.")
    return (f"they differ by {100 * rel:.2g} % (> {100 * gap:g} %): the residual term is not "
            "small at this step.")


def over_the_run(claim: Claim) -> str:
    """A scorecard claim in one line: its verdict and measured value on the whole run."""
    return f"Over the whole run: **{claim.verdict}** — {claim.value}."


def jacobian(run: RunLike) -> str:
    """⟨‖J‖²⟩ from first to latest probe, and the IJR reading."""
    steps, j = _finite(_col(run, "step"), _col(run, "jac_spectral_sq_mean"))
    head = ""
    if len(j):
        head = (f"⟨‖J‖²⟩ went from {j[0]:.3g} at step {int(steps[0])} to {j[-1]:.3g} at step "
                f"{int(steps[-1])}. ")
    return (head + "Where λ\\* is large ‖J‖² must stay small enough to keep ⟨λ\\*‖J‖²⟩ ≈ 2/η; "
            "compared at the same training loss, a larger η has the smaller ‖J‖² (Compare → "
            "Learning-rate sweep).")


def accuracy(run: RunLike) -> str:
    """Final train / test accuracy, the test peak, and whether noisy labels are memorised:
    with a fraction ν of labels redrawn uniformly from K classes, predicting every true label
    scores 1 − ν(K−1)/K on the noisy training labels; above that, noise is being fitted."""
    steps = _col(run, "step")
    tr, te = _col(run, "train_acc"), _col(run, "test_acc")
    if not len(steps) or not len(tr) or not len(te):
        return "No accuracy recorded yet."
    ok = np.isfinite(te)
    text = f"At step {int(steps[-1])}: train {tr[-1]:.2f}, test {te[-1]:.2f}."
    if ok.any():
        best = int(np.flatnonzero(ok)[np.argmax(te[ok])])
        if te[best] > te[-1] + 0.005:
            text += f" Test peaked at {te[best]:.2f} (step {int(steps[best])})."
    noise = float(config_value(run, "label_noise", 0.0) or 0.0)
    k = int(run.meta.get("n_classes") or 0)
    if noise > 0 and k >= 2 and math.isfinite(tr[-1]):
        clean = 1 - noise * (k - 1) / k
        if tr[-1] > clean + 0.02:
            text += (f" Train accuracy is above {clean:.2f}, what predicting every true label "
                     f"would score on these {100 * noise:.0f} %-noisy labels: the network is "
                     "memorising noisy labels.")
        else:
            text += (f" With {100 * noise:.0f} % label noise, {clean:.2f} train accuracy is what "
                     "predicting every true label would score.")
    return text


def sweep_heatmap(lrs: Sequence[float], runs: Sequence[RunLike]) -> str:
    """Per η (largest first): where ⟨‖M‖⟩ peaks and the ARP (phase II) span, and whether a
    larger η entered its ARP earlier in this sweep."""
    rows = sorted(zip((float(x) for x in lrs), runs, strict=True), key=lambda r: -r[0])
    parts, starts = [], []
    for lr, run in rows:
        spans = [(int(a), int(b)) for p, a, b in run.phase_spans() if p == "II"]
        m = _col(run, "m_norm_mean")
        peak = f"peak ⟨‖M‖⟩ {np.nanmax(m):.3f}" if np.isfinite(m).any() else "no ⟨‖M‖⟩"
        arp = f"ARP {spans[0][0]}–{spans[0][1]}" if spans else "no ARP"
        starts.append(spans[0][0] if spans else None)
        parts.append(f"η = {lr:g}: {arp}, {peak}")
    text = "Each row is one η; the black outline is its ARP (phase II). " + "; ".join(parts) + "."
    known = [s for s in starts if s is not None]
    if len(known) >= 2:
        earlier = all(a <= b for a, b in zip(known, known[1:], strict=False))
        text += (" Here a larger η enters its ARP earlier." if earlier else
                 " Here the ARP does not start earlier for every larger η.")
    return text


def overlay_sharpness(runs: Mapping[str, RunLike]) -> str:
    """Which of the overlaid runs (label -> run) reached ``eos_fraction`` · 2/η, each with
    its peak ‖H‖/(2/η) — instead of claiming that every run does."""
    reached, not_reached = [], []
    for label, run in runs.items():
        h, two = _col(run, "sharpness"), _col(run, "two_over_eta")
        if not len(h) or not len(two):
            continue
        ratio = h / two
        ratio = ratio[np.isfinite(ratio)]
        if not len(ratio):
            continue
        eos = float(config_value(run, "eos_fraction", 0.9))
        (reached if ratio.max() >= eos else not_reached).append(f"{label} ({ratio.max():.2f}×)")
    text = "Dashed: each run's own 2/η; in brackets each run's peak ‖H‖/(2/η)."
    if reached:
        text += f" Reached the edge of stability: {', '.join(reached)}."
    if not_reached:
        text += f" Not reached: {', '.join(not_reached)}."
    return text + " On the η·step axis runs with different η line up in 'time'."
