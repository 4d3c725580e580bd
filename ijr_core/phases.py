"""Phases of a run: the project's operational reading of the talk's phases I / II / III.

Inputs are three scalar series over the probes: the sharpness ‖H‖, the line 2/η (per probe,
so a learning rate changed mid-run moves it) and the mean impurity ⟨‖M‖⟩. Write
r = ‖H‖ / (2/η) for the sharpness in units of the edge of stability. With the settings of
:class:`PhaseRules` (all of them ``RunConfig`` fields):

``I``    beginning: before the edge of stability is reached. It is reached at the first probe
         that starts ``phase_sustain`` consecutive probes with r ≥ ``eos_fraction``.
``II``   ARP (active regularization period): at the edge of stability while the smoothed
         impurity m̃ (centred running median of ⟨‖M‖⟩ over ``arp_smoothing`` probes) is at
         least ``arp_fraction`` · its running peak since the edge was reached.
``III``  later: m̃ below that fraction.
``U``    unstable: r ≥ ``unstable_factor`` for ``phase_sustain`` consecutive probes — far
         above 2/η for a sustained time is not the edge of stability (GD there does not
         hover at 2/η; the loss oscillates or blows up).

Every boundary needs a sustained crossing: the label changes only at the first of
``phase_sustain`` consecutive probes on the other side of its threshold (hysteresis in both
directions), and the new label starts at that first probe. So a single spike neither enters
nor leaves a phase, and the last ``phase_sustain - 1`` labels of a live run can still change.

Once the edge of stability is reached, phase I never returns. II and III may alternate:
II is re-entered when m̃ climbs back above the fraction of its peak for a sustained time
(impurity returning — after a live raise of η, or in an unstable run — switches the
impurity-weighted regularization back on, so that period is active again). ``U`` overrides
II / III while it lasts; the impurity peak keeps counting through it.

The initial catapult is an event, not a phase: a run whose first probe is already above
``eos_fraction`` · 2/η but stays there for fewer than ``phase_sustain`` probes (‖H‖ falls —
the loss spikes and the network catapults to a flatter region) is in phase I during it, and
:attr:`PhaseAnalysis.catapult` reports it. A run that starts above the line and stays there
is at the edge (or unstable) from its first probe.

Why the impurity peak counts from the edge and not from step 0: with K = 2 classes ⟨‖M‖⟩
starts at its largest value 1/2 and has usually halved before ‖H‖ reaches 2/η, so a peak
counted from step 0 would skip the ARP while the run sits at the edge with impure
predictions. For K ≥ 3 (≈ 1/K at initialisation, then the inverted U) both readings agree.

A probe where a series is missing (NaN) neither confirms nor breaks a crossing and keeps the
label of the probe before.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

PHASES = ("I", "II", "III", "U")


@dataclass(frozen=True)
class PhaseRules:
    """Thresholds of the phase rule (defaults = RunConfig's; see the module docstring)."""

    eos_fraction: float = 0.9
    arp_fraction: float = 0.5
    phase_sustain: int = 3
    unstable_factor: float = 2.0
    arp_smoothing: int = 5

    @classmethod
    def from_config(cls, config: Any = None, **overrides: Any) -> PhaseRules:
        """Rules from a config's fields of the same names (defaults where it has none);
        ``overrides`` that are not None win."""
        values = {
            f.name: getattr(config, f.name, f.default) for f in dataclasses.fields(cls)
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)


@dataclass(frozen=True)
class PhaseAnalysis:
    """Per-probe phase labels and the events behind them (probe indices, not steps).

    ``ratio``: r = ‖H‖/(2/η); ``m_smooth``: m̃; ``eos_index``: first probe at the edge of
    stability (None if never reached); ``catapult``: (first probe, first probe back below
    the line, peak r) of an initial catapult, or None."""

    labels: np.ndarray
    ratio: np.ndarray
    m_smooth: np.ndarray
    eos_index: int | None
    catapult: tuple[int, int, float] | None


def analyse_phases(
    sharpness: np.ndarray,
    two_over_eta: np.ndarray,
    m_norm_mean: np.ndarray,
    rules: PhaseRules = PhaseRules(),
) -> PhaseAnalysis:
    """Phases of the three series (one entry per probe) under ``rules``."""
    h = np.asarray(sharpness, dtype=np.float64)
    two = np.asarray(two_over_eta, dtype=np.float64)
    m = np.asarray(m_norm_mean, dtype=np.float64)
    if not (h.shape == two.shape == m.shape) or h.ndim != 1:
        raise ValueError(f"series must be 1-D of one length, got {h.shape}, {two.shape}, {m.shape}")
    n, k = len(h), max(int(rules.phase_sustain), 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = h / two
    r_ok = np.isfinite(ratio)
    m_smooth = running_median(m, max(int(rules.arp_smoothing), 1))
    labels = np.full(n, "I", dtype="<U3")
    at_edge = _hysteresis(ratio >= rules.eos_fraction, r_ok, k, start=False)
    eos = int(np.argmax(at_edge)) if at_edge.any() else None
    catapult = _catapult(ratio, r_ok, rules.eos_fraction, eos)
    if eos is None:
        return PhaseAnalysis(labels, ratio, m_smooth, None, catapult)
    m_ok = np.isfinite(m_smooth)
    m_ok[:eos] = False
    peak = np.fmax.accumulate(np.where(m_ok, m_smooth, -math.inf))
    active = _hysteresis(m_smooth >= rules.arp_fraction * peak, m_ok, k, start=True)
    unstable = _hysteresis(ratio >= rules.unstable_factor, r_ok, k, start=False)
    labels[eos:] = np.where(unstable, "U", np.where(active, "II", "III"))[eos:]
    return PhaseAnalysis(labels, ratio, m_smooth, eos, catapult)


def running_median(x: np.ndarray, window: int) -> np.ndarray:
    """Centred running median over ``window`` probes (odd; an even one is widened by one),
    of the finite entries only (windows are clipped at the ends); NaN entries stay NaN."""
    x = np.asarray(x, dtype=np.float64)
    out = np.full(len(x), np.nan)
    ok = np.flatnonzero(np.isfinite(x))
    vals = x[ok]
    n, half = len(vals), max(window, 1) // 2
    med = np.empty(n)
    if n > 2 * half:
        med[half : n - half] = np.median(sliding_window_view(vals, 2 * half + 1), axis=1)
    for j in (*range(min(half, n)), *range(max(n - half, min(half, n)), n)):  # clipped ends
        med[j] = np.median(vals[max(j - half, 0) : j + half + 1])
    out[ok] = med
    return out


def _hysteresis(cond: np.ndarray, valid: np.ndarray, k: int, start: bool) -> np.ndarray:
    """State per probe: starts as ``start`` and switches to the other value at the first
    of ``k`` consecutive valid probes where ``cond`` has that value; invalid probes keep the
    state of the probe before and neither confirm nor break a run."""
    idx = np.flatnonzero(valid)
    out = np.full(len(valid), start, dtype=bool)
    if not len(idx):
        return out
    c = np.asarray(cond, dtype=bool)[idx]
    # runs of equal values: a run switches the state if it differs and is k long
    heads = np.flatnonzero(np.r_[True, c[1:] != c[:-1]])
    lengths = np.diff(np.r_[heads, len(c)])
    seg = np.empty(len(heads), dtype=bool)
    s = start
    for q, (head, length) in enumerate(zip(heads, lengths, strict=True)):
        if c[head] != s and length >= k:
            s = bool(c[head])
        seg[q] = s
    state = np.repeat(seg, lengths)
    # forward fill over invalid probes
    pos = np.searchsorted(idx, np.arange(len(valid)), side="right") - 1
    return np.where(pos >= 0, state[np.maximum(pos, 0)], start)


def _catapult(
    ratio: np.ndarray, ok: np.ndarray, eos_fraction: float, eos: int | None
) -> tuple[int, int, float] | None:
    """(first probe, first probe back below the line, peak r) when the first valid probe is
    above ``eos_fraction`` · 2/η but not at the edge of stability (the stay is not
    sustained); None otherwise."""
    idx = np.flatnonzero(ok)
    if not len(idx) or ratio[idx[0]] < eos_fraction or eos == idx[0]:
        return None
    below = idx[ratio[idx] < eos_fraction]
    if not len(below):
        return None
    end = int(below[0])
    return int(idx[0]), end, float(np.nanmax(ratio[idx[0] : end]))


def phase_spans(labels: np.ndarray, steps: np.ndarray) -> list[tuple[str, int, int]]:
    """Consecutive labels as (phase, start_step, end_step); a span ends where the next
    begins, the last one at the last step."""
    spans: list[tuple[str, int, int]] = []
    for i, ph in enumerate(labels):
        if spans and spans[-1][0] == ph:
            continue
        if spans:
            spans[-1] = (spans[-1][0], spans[-1][1], int(steps[i]))
        spans.append((str(ph), int(steps[i]), int(steps[-1])))
    return spans


def phase_events(analysis: PhaseAnalysis, steps: np.ndarray) -> list[tuple[str, int, str]]:
    """Readable events (name, step, detail): the initial catapult, reaching the edge of
    stability, and each change of phase after it."""
    steps = np.asarray(steps)
    events: list[tuple[str, int, str]] = []
    if analysis.catapult is not None:
        a, b, peak = analysis.catapult
        events.append(
            ("catapult", int(steps[a]),
             f"‖H‖ started at {peak:.2g} · 2/η and fell below the line by step {int(steps[b])}")
        )
    if analysis.eos_index is None:
        return events
    e, labels = analysis.eos_index, analysis.labels
    names = {"II": "ARP (II)", "III": "phase III", "U": "unstable"}
    events.append(("edge of stability", int(steps[e]),
                   f"‖H‖ = {analysis.ratio[e]:.2g} · 2/η; {names[str(labels[e])]} begins"))
    for i in range(e + 1, len(labels)):
        if labels[i] != labels[i - 1]:
            events.append((names[str(labels[i])], int(steps[i]), "begins"))
    return events
