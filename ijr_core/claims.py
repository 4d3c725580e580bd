"""The talk's claims, measured on a run, a learning-rate sweep or an optimizer comparison.

Two kinds of rows. **Checks** hold by mathematics and verify the solver, not the paper:
‖G‖ = ⟨λ*‖J‖²⟩ holds because λ* is defined from G's top eigenvector u
(λ*(x) = (Jᵀu)ᵀM(Jᵀu)/‖J‖², so ⟨λ*‖J‖²⟩ = uᵀGu = ‖G‖), and λ* ≤ ‖M‖ because ‖Jᵀu‖ ≤ ‖J‖.
A failed check means the eigensolver or the probe is wrong. **Claims** can fail on a run:

edge of stability   after ‖H‖ reaches the edge (phase rule of :mod:`ijr_core.phases`), it
                    hovers at 2/η: the median of r = ‖H‖/(2/η) over the probes at the edge
                    (phases II and unstable; in III the fit is pure and ‖H‖ may fall) lies in
                    ``eos_band`` and no probe is unstable.
‖H‖ ≈ ‖G‖           median of |‖H‖ − ‖G‖| / ‖H‖ over the probes at the edge (all probes after
                    the first when it is never reached) ≤ ``gn_gap``.
inverted U          ⟨‖M‖⟩ rises to a peak ≥ ``u_rise`` · its initial value and falls to
                    ≤ ``u_fall`` · the peak by the end. Not measurable for K = 2 (⟨‖M‖⟩
                    starts at its maximum 1/2) or squared loss (M = I).
ARP                 impurity as a weight: the active regularization period (phase II) ends
                    when predictions become pure (III), and with the weight gone ‖H‖ leaves
                    the edge: its median ‖H‖/(2/η) in III is below ``eos_fraction``.
IJR (sweeps)        at matched training loss, larger η gives smaller ⟨‖J‖²⟩: Spearman rank
                    correlation of η and ⟨‖J‖²⟩ ≤ ``ijr_rank``. The loss is matched at
                    ``ijr_loss`` when every run reaches it, else at the lowest loss every run
                    reaches, if that is at most ``ijr_max_loss`` · the initial loss.
EJR (comparisons)   at equal gradient evaluations (the smallest budget any run of the
                    comparison spent), EJR's test accuracy exceeds each other method's by
                    more than ``ejr_margin`` (means over seeds).

Every threshold is a field of :class:`Thresholds`; docs/science.md gives the measurements
behind the defaults. The functions are pure: runs in, :class:`Claim` rows out.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ijr_core.phases import PhaseRules
from ijr_core.protocol import RunLike

CHECK, CLAIM = "numerical check", "claim"
PASSED, FAILED = "passed", "failed"
HELD, NOT_HELD, NOT_MEASURABLE = "held", "not held", "not measurable"


@dataclass(frozen=True)
class Thresholds:
    """Every threshold of the scorecard, in one place (see the module docstring)."""

    identity_rtol: float = 5e-3  # max |‖G‖ − ⟨λ*‖J‖²⟩| / scale (Lanczos tolerance 1e-3)
    identity_floor: float = 1e-3  # scale = max(‖G‖, this · 2/η): float32 when ‖G‖ ≈ 0
    bound_atol: float = 1e-5  # λ* ≤ ‖M‖ + this (float32 per-sample arrays)
    eos_band: tuple[float, float] = (0.8, 1.5)  # median ‖H‖/(2/η) at the edge
    gn_gap: float = 0.10  # median |‖H‖ − ‖G‖| / ‖H‖
    u_rise: float = 1.2  # peak ⟨‖M‖⟩ ≥ u_rise · initial
    u_fall: float = 0.5  # final ⟨‖M‖⟩ ≤ u_fall · peak
    ijr_loss: float = 0.1  # preferred matched training loss
    ijr_max_loss: float = 0.5  # matched loss at most this fraction of the initial loss
    ijr_rank: float = -0.8  # Spearman(η, ⟨‖J‖²⟩) at matched loss at most this
    ejr_margin: float = 0.0  # EJR test accuracy − other's must exceed this


THRESHOLDS = Thresholds()


@dataclass(frozen=True)
class Claim:
    """One scorecard row: ``kind`` (CHECK or CLAIM), the claim, its measured ``value``,
    the ``verdict`` (passed / failed for checks; held / not held / not measurable for
    claims) and ``detail`` (the threshold, or why it is not measurable)."""

    kind: str
    name: str
    value: str
    verdict: str
    detail: str


def _g(x: float) -> str:
    return f"{x:.3g}" if math.isfinite(x) else "—"


def _fin(x: np.ndarray) -> np.ndarray:
    return x[np.isfinite(x)]


# --------------------------------------------------------------------------- one run


def identity_check(run: RunLike, t: Thresholds = THRESHOLDS) -> Claim:
    """‖G‖ = ⟨λ*‖J‖²⟩ at every probe (max relative gap)."""
    name = "‖G‖ = ⟨λ*‖J‖²⟩ (identity)"
    g, lj = run.scalar("gn_sharpness"), run.scalar("lambda_star_jac")
    scale = np.fmax(np.abs(g), t.identity_floor * run.scalar("two_over_eta"))
    ok = np.isfinite(g) & np.isfinite(lj) & np.isfinite(scale) & (scale > 0)
    if not ok.any():
        return Claim(CHECK, name, "—", NOT_MEASURABLE, "no probe recorded ‖G‖ and ⟨λ*‖J‖²⟩")
    gap = float(np.max(np.abs(g[ok] - lj[ok]) / scale[ok]))
    return Claim(CHECK, name, f"max relative gap {gap:.1e} over {int(ok.sum())} probes",
                 PASSED if gap <= t.identity_rtol else FAILED,
                 f"holds by the definition of λ* (checks the solver); tolerance "
                 f"{t.identity_rtol:g} of max(‖G‖, {t.identity_floor:g} · 2/η)")


def bound_check(run: RunLike, t: Thresholds = THRESHOLDS) -> Claim:
    """λ*(x) ≤ ‖M(x)‖ for every sample at every checkpoint (violation count)."""
    name = "λ* ≤ ‖M‖ (bound)"
    samples = run.samples
    lam, m = samples.get("lambda_star"), samples.get("m_norm")
    if lam is None or m is None or not lam.size:
        return Claim(CHECK, name, "—", NOT_MEASURABLE, "no per-sample checkpoints")
    ok = np.isfinite(lam) & np.isfinite(m)
    bad = int(np.count_nonzero(lam[ok] > m[ok] + t.bound_atol))
    return Claim(CHECK, name, f"{bad} violations in {int(ok.sum()):,} sample-checkpoints",
                 PASSED if bad == 0 else FAILED,
                 f"a mathematical bound (checks the solver); tolerance {t.bound_atol:g}")


def _at_edge(run: RunLike) -> tuple[Any, np.ndarray]:
    a = run.phase_analysis()
    return a, np.isin(a.labels, ("II", "U"))


def eos_claim(run: RunLike, t: Thresholds = THRESHOLDS) -> Claim:
    """Edge of stability: reached (sustained), then hovering at 2/η. A mini-batch run that
    never reaches it is not measurable: the claim is about full-batch GD."""
    name = "edge of stability: ‖H‖ hovers at 2/η"
    lo, hi = t.eos_band
    rule = (f"held if reached and the median over the probes at the edge (II, unstable) is in "
            f"[{lo:g}, {hi:g}] with none unstable")
    a, edge = _at_edge(run)
    r = a.ratio
    if not np.isfinite(r).any():
        return Claim(CLAIM, name, "—", NOT_MEASURABLE, "no probe recorded ‖H‖ and 2/η")
    steps = run.scalars["step"]
    cat = ""
    if a.catapult is not None:
        i, j, peak = a.catapult
        cat = f"; initial catapult {peak:.3g} · 2/η (steps {steps[i]}–{steps[j]}) not counted"
    if a.eos_index is None:
        value = f"never reached; max ‖H‖/(2/η) = {_g(np.nanmax(r))}{cat}"
        if getattr(run.config, "batch_size", None) is not None:
            return Claim(CLAIM, name, value, NOT_MEASURABLE,
                         "mini-batch run: the claim is about full-batch GD (mini-batch noise "
                         "keeps the full-batch ‖H‖ below 2/η)")
        return Claim(CLAIM, name, value, NOT_HELD, rule)
    at = _fin(r[edge])
    med, top = float(np.median(at)), float(np.max(at))
    n_u = int(np.count_nonzero(a.labels == "U"))
    held = lo <= med <= hi and n_u == 0
    value = (f"reached at step {steps[a.eos_index]}; ‖H‖/(2/η) median {med:.3g}, max {top:.3g}"
             f" ({len(at)} probes{f', {n_u} unstable' if n_u else ''}){cat}")
    return Claim(CLAIM, name, value, HELD if held else NOT_HELD, rule)


def gn_claim(run: RunLike, t: Thresholds = THRESHOLDS) -> Claim:
    """‖H‖ ≈ ‖G‖ (median relative gap)."""
    name = "‖H‖ ≈ ‖G‖ (Gauss–Newton)"
    h, g = run.scalar("sharpness"), run.scalar("gn_sharpness")
    a, edge = _at_edge(run)
    where = "at the edge"
    if not edge.any():
        edge = np.arange(len(h)) > 0
        where = "edge never reached: all probes but the first"
    ok = edge & np.isfinite(h) & np.isfinite(g) & (h != 0)
    if not ok.any():
        return Claim(CLAIM, name, "—", NOT_MEASURABLE, "no probes with ‖H‖ and ‖G‖")
    gap = float(np.median(np.abs(h[ok] - g[ok]) / np.abs(h[ok])))
    return Claim(CLAIM, name, f"median relative gap {100 * gap:.2g} % ({where}, "
                 f"{int(ok.sum())} probes)", HELD if gap <= t.gn_gap else NOT_HELD,
                 f"held if ≤ {100 * t.gn_gap:g} % (at the edge; where it is never reached, "
                 "over all probes but the first, whose residual term is large)")


def _n_classes(run: RunLike) -> int:
    labels = np.asarray(run.sample_labels)
    return len(np.unique(labels)) if labels.size else 0


def inverted_u_claim(run: RunLike, t: Thresholds = THRESHOLDS) -> Claim:
    """⟨‖M‖⟩ rises from its initial value to a peak, then falls."""
    name = "impurity: inverted U of ⟨‖M‖⟩"
    m, steps = run.scalar("m_norm_mean"), run.scalars["step"]
    ok = np.isfinite(m)
    if getattr(run.config, "loss", "ce") == "mse":
        return Claim(CLAIM, name, "—", NOT_MEASURABLE, "squared loss: M = I, ‖M‖ = 1")
    if ok.sum() < 3:
        return Claim(CLAIM, name, "—", NOT_MEASURABLE, "fewer than 3 probes")
    mm, st = m[ok], steps[ok]
    p = int(np.argmax(mm))
    value = f"{mm[0]:.3g} → peak {mm[p]:.3g} (step {st[p]}) → {mm[-1]:.3g}"
    if _n_classes(run) == 2:
        return Claim(CLAIM, name, value, NOT_MEASURABLE,
                     "K = 2: ⟨‖M‖⟩ starts at its maximum 1/2, so it can only fall")
    rises, falls = mm[p] >= t.u_rise * mm[0], mm[-1] <= t.u_fall * mm[p]
    if rises and not falls:
        value += f"; plateaus (final = {mm[-1] / mm[p]:.2g} · peak)"
    if run.phase_analysis().eos_index is None:
        value += "; without the edge of stability"
    return Claim(CLAIM, name, value, HELD if rises and falls else NOT_HELD,
                 f"held if peak ≥ {t.u_rise:g} · initial and final ≤ {t.u_fall:g} · peak "
                 "(the U also appears without the edge of stability)")


def arp_claim(run: RunLike, t: Thresholds = THRESHOLDS) -> Claim:
    """Impurity as a weight: the ARP ends when predictions become pure, and then ‖H‖ leaves
    the edge (median ‖H‖/(2/η) in phase III below eos_fraction)."""
    name = "impurity as a weight: once pure (III), ‖H‖ leaves the edge"
    a = run.phase_analysis()
    steps, labels = run.scalars["step"], a.labels
    if a.eos_index is None:
        return Claim(CLAIM, name, "no ARP", NOT_MEASURABLE, "the run never reached the edge")
    span = max(int(steps[-1] - steps[0]), 1)
    length = int(sum(b - s for p, s, b in run.phase_spans() if p == "II"))
    value = f"ARP {length} steps ({100 * length / span:.0f} % of the run)"
    iii = _fin(a.ratio[labels == "III"])
    if getattr(run.config, "loss", "ce") == "mse":
        return Claim(CLAIM, name, value, NOT_MEASURABLE,
                     "squared loss: M = I, no impurity weight (‖M‖ = 1 throughout)")
    if not len(iii):
        return Claim(CLAIM, name, value, NOT_MEASURABLE,
                     f"no phase III by step {steps[-1]}: impurity stays high (a plateau, or "
                     "a run too short)")
    eos = PhaseRules.from_config(run.config).eos_fraction
    med = float(np.median(iii))
    value += f"; in III ‖H‖/(2/η) median {med:.3g}"
    return Claim(CLAIM, name, value, HELD if med < eos else NOT_HELD,
                 f"held if that median is below eos_fraction = {eos:g}")


def run_claims(run: RunLike, t: Thresholds = THRESHOLDS) -> list[Claim]:
    """The scorecard of one run: two checks, then the claims that can fail."""
    return [identity_check(run, t), bound_check(run, t), eos_claim(run, t), gn_claim(run, t),
            inverted_u_claim(run, t), arp_claim(run, t)]


# --------------------------------------------------------------------------- several runs


def _combine(name_rows: Sequence[tuple[str, Claim]]) -> Claim:
    """One row for a claim measured on several runs: held / passed only if it is on every
    run where it is measurable; the value lists each run's."""
    first = name_rows[0][1]
    measured = [(n, c) for n, c in name_rows if c.verdict != NOT_MEASURABLE]
    value = "; ".join(f"{n}: {c.value}" for n, c in name_rows)
    if not measured:
        return Claim(first.kind, first.name, value, NOT_MEASURABLE, first.detail)
    good = PASSED if first.kind == CHECK else HELD
    bad = [n for n, c in measured if c.verdict != good]
    if bad:
        return Claim(first.kind, first.name, value, FAILED if first.kind == CHECK else NOT_HELD,
                     f"not on {', '.join(bad)}; {measured[0][1].detail}")
    n_skip = len(name_rows) - len(measured)
    skip = f"; not measurable on {n_skip} run(s)" if n_skip else ""
    return Claim(first.kind, first.name, value, good, measured[0][1].detail + skip)


def _per_run(runs: Mapping[str, RunLike], t: Thresholds) -> list[Claim]:
    cards = {name: run_claims(run, t) for name, run in runs.items()}
    rows = list(zip(*cards.values(), strict=True)) if cards else []
    return [_combine(list(zip(cards, row, strict=True))) for row in rows]


def _spearman(x: np.ndarray, y: np.ndarray) -> float:
    rx, ry = np.argsort(np.argsort(x)), np.argsort(np.argsort(y))
    if np.ptp(rx) == 0 or np.ptp(ry) == 0:
        return math.nan
    return float(np.corrcoef(rx, ry)[0, 1])


def ijr_claim(lrs: Sequence[float], runs: Sequence[RunLike], t: Thresholds = THRESHOLDS) -> Claim:
    """Implicit Jacobian regularization: ⟨‖J‖²⟩ against η at matched training loss."""
    name = "IJR: larger η, smaller ⟨‖J‖²⟩ at matched loss"
    keep = [(float(lr), r) for lr, r in zip(lrs, runs, strict=True) if r.status != "diverged"]
    if len({lr for lr, _ in keep}) < 2:
        return Claim(CLAIM, name, "—", NOT_MEASURABLE, "needs runs at two or more η (a sweep) "
                     "that did not diverge")
    losses = [_fin(r.scalar("train_loss")) for _, r in keep]
    if any(not len(x) for x in losses):
        return Claim(CLAIM, name, "—", NOT_MEASURABLE, "a run has no training loss")
    lowest = [float(x.min()) for x in losses]
    common = max(lowest)
    target = t.ijr_loss if common <= t.ijr_loss else common
    start = max(float(x[0]) for x in losses)
    if target > t.ijr_max_loss * start:
        worst = keep[int(np.argmax(lowest))][0]
        return Claim(CLAIM, name, f"lowest common loss {common:.3g} (η={worst:g} gets no lower; "
                     f"initial {start:.3g})", NOT_MEASURABLE,
                     f"the runs never share a loss below {t.ijr_max_loss:g} · initial")
    lr_a, jac, matched = [], [], []
    for lr, r in keep:
        loss = r.scalar("train_loss")
        i = int(np.flatnonzero(loss <= target)[0])
        lr_a.append(lr)
        jac.append(float(r.scalar("jac_spectral_sq_mean")[i]))
        matched.append(float(loss[i]))
    lr_a, jac = np.array(lr_a), np.array(jac)
    rho = _spearman(lr_a, jac)
    value = ", ".join(f"η={lr:g}: {j:.4g} (loss {ml:.3g})"
                      for lr, j, ml in zip(lr_a, jac, matched, strict=True))
    value += f"; rank correlation {_g(rho)}"
    reached = [lr for lr, r in keep if r.phase_analysis().eos_index is not None]
    detail = (f"⟨‖J‖²⟩ at the first probe with training loss ≤ {target:.3g}; held if "
              f"Spearman(η, ⟨‖J‖²⟩) ≤ {t.ijr_rank:g}; {len(reached)} of {len(keep)} runs "
              "reached the edge of stability")
    verdict = HELD if math.isfinite(rho) and rho <= t.ijr_rank else NOT_HELD
    return Claim(CLAIM, name, value, verdict, detail)


def sweep_claims(lrs: Sequence[float], runs: Sequence[RunLike],
                 t: Thresholds = THRESHOLDS) -> list[Claim]:
    """Scorecard of a learning-rate sweep: each run's rows combined, then IJR."""
    named = {f"η={float(lr):g}": r for lr, r in zip(lrs, runs, strict=True)}
    return _per_run(named, t) + [ijr_claim(lrs, runs, t)]


def _at_budget(run: RunLike, budget: float) -> int | None:
    ge = run.scalar("grad_evals")
    hit = np.flatnonzero(np.isfinite(ge) & (ge <= budget))
    return int(hit[-1]) if len(hit) else None


def ejr_claims(runs: Mapping[str, RunLike], t: Thresholds = THRESHOLDS) -> list[Claim]:
    """EJR against every other method of a comparison, at equal gradient evaluations."""
    name = "EJR vs {}: better test accuracy at equal gradient evaluations"
    by: dict[str, list[RunLike]] = {}
    for run in runs.values():
        by.setdefault(getattr(run.config, "optimizer", "?"), []).append(run)
    if "ejr" not in by or len(by) < 2:
        return [Claim(CLAIM, name.format("others"), "—", NOT_MEASURABLE,
                      "needs an EJR run and a run of another method")]
    finals = [_fin(r.scalar("grad_evals")) for rs in by.values() for r in rs]
    if any(not len(f) for f in finals):
        return [Claim(CLAIM, name.format("others"), "—", NOT_MEASURABLE,
                      "a run did not record gradient evaluations")]
    budget = min(float(f[-1]) for f in finals)

    def at(method: str, key: str) -> float:
        vals = []
        for r in by[method]:
            i = _at_budget(r, budget)
            vals.append(r.scalar(key)[i] if i is not None else math.nan)
        return float(np.mean(vals))

    out = []
    acc_e, jac_e = at("ejr", "test_acc"), at("ejr", "jac_spectral_sq_mean")
    for method in (m for m in by if m != "ejr"):
        acc_o, jac_o = at(method, "test_acc"), at(method, "jac_spectral_sq_mean")
        value = (f"test accuracy {_g(acc_e)} vs {_g(acc_o)}; ⟨‖J‖²⟩ {_g(jac_e)} vs {_g(jac_o)} "
                 f"(at {budget:g} gradient evaluations)")
        if not (math.isfinite(acc_e) and math.isfinite(acc_o)):
            verdict, detail = NOT_MEASURABLE, "no test accuracy at that budget"
        else:
            verdict = HELD if acc_e - acc_o > t.ejr_margin else NOT_HELD
            seeds = len(by["ejr"]), len(by[method])
            detail = (f"held if EJR's accuracy exceeds {method}'s by more than {t.ejr_margin:g}"
                      f" (means over {seeds[0]} and {seeds[1]} seed(s))")
        out.append(Claim(CLAIM, name.format(method.upper()), value, verdict, detail))
    return out


def group_claims(runs: Mapping[str, RunLike], t: Thresholds = THRESHOLDS) -> list[Claim]:
    """Scorecard of an optimizer comparison: each run's rows combined, then EJR's."""
    return _per_run(runs, t) + ejr_claims(runs, t)


# --------------------------------------------------------------------------- output


COLUMNS = ("kind", "claim", "value", "verdict", "detail")


def claims_rows(claims: Sequence[Claim]) -> list[dict[str, str]]:
    """Rows (kind, claim, value, verdict, detail) for a table."""
    return [dict(zip(COLUMNS, (c.kind, c.name, c.value, c.verdict, c.detail), strict=True))
            for c in claims]


def format_claims(claims: Sequence[Claim]) -> str:
    """Plain-text scorecard: checks first, then claims, one verdict per line with its
    number and (indented) the threshold or reason."""
    lines = []
    for kind, title in ((CHECK, "numerical checks (hold by construction; verify the solver)"),
                        (CLAIM, "claims (can fail on a run)")):
        rows = [c for c in claims if c.kind == kind]
        if rows:
            lines.append(title)
        for c in rows:
            lines.append(f"  [{c.verdict}] {c.name}: {c.value}")
            lines.append(f"      {c.detail}")
    return "\n".join(lines)
