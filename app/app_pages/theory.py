"""Theory page: the chain 2/η ≈ ‖H‖ ≈ ‖G‖ = ⟨λ*‖J‖²⟩ in short sections, each with the
numbers of the selected run at the step scrubbed on Inspect and a link to its chart."""

from __future__ import annotations

import math

import numpy as np
import streamlit as st

from app import captions
from app.run_picker import pick_run, remember_step, remembered_step
from ijr_core import claims
from ijr_core.phases import PhaseRules
from ijr_core.protocol import RunLike

INSPECT = "app_pages/inspect.py"
TRAIN = "app_pages/train.py"


def _scalar_at(run: RunLike, name: str, step: int) -> float:
    """The scalar at the last probe at or before ``step`` (NaN if none)."""
    steps = np.asarray(run.scalars.get("step", []))
    values = run.scalars.get(name)
    if values is None or not len(steps):
        return math.nan
    i = int(np.searchsorted(steps, step, side="right")) - 1
    return float(values[i]) if i >= 0 else math.nan


def _fmt(x: float, spec: str = ".4g") -> str:
    return "—" if not math.isfinite(x) else format(x, spec)


def _samples_at(run: RunLike | None, c: int | None, *names: str) -> tuple[np.ndarray, ...] | None:
    """The per-sample arrays ``names`` at checkpoint ``c`` (as float) and the mask of the
    samples where all of them are finite; None without a run, a checkpoint or those arrays."""
    if run is None or c is None or not all(name in run.samples for name in names):
        return None
    arrays = [np.asarray(run.samples[name][c], dtype=float) for name in names]
    return (*arrays, np.logical_and.reduce([np.isfinite(a) for a in arrays]))


def _live(text: str, claim: claims.Claim | None = None) -> None:
    """The run's numbers under a statement; ``claim``: its verdict over the whole run."""
    if claim is not None:
        text += "\n\n" + captions.over_the_run(claim)
    st.info(text, icon=":material/monitoring:")


def _statement(title: str, latex: str, text: str) -> None:
    """A section's head: its title, the formula it states and the argument in words."""
    st.header(title)
    st.latex(latex)
    st.markdown(text)


def objects() -> None:
    st.header("1 · The objects")
    st.markdown(
        "A K-class classifier with parameters θ ∈ ℝᴾ, logits z = f(x; θ) ∈ ℝᴷ, "
        "p = softmax(z), cross-entropy loss ℓ; ⟨·⟩ is the mean over the (probe) data."
    )
    st.latex(
        r"J(x)=\nabla_\theta z(x)\in\mathbb{R}^{P\times K},\qquad "
        r"M(x)=\nabla_z^2\ell=\operatorname{diag}(p)-pp^\top"
    )
    st.latex(
        r"H=\langle\nabla_\theta^2\ell\rangle,\qquad G=\langle J M J^\top\rangle,\qquad "
        r"\|J(x)\|^2=\lambda_{\max}(J^\top J),\quad \|J\|_F^2=\operatorname{tr}(J^\top J)"
    )
    st.caption(
        "‖H‖ is the largest eigenvalue of H (the sharpness), ‖G‖ and ‖M‖ the largest "
        "eigenvalues of the PSD matrices G and M. M does not depend on the label."
    )


def edge_of_stability(run: RunLike | None, step: int) -> None:
    st.header("2 · Edge of stability: ‖H‖ ≈ 2/η")
    st.markdown(
        "Under full-batch gradient descent with step η, the sharpness rises (progressive "
        "sharpening) until it reaches about 2/η, then hovers near it (Cohen et al., 2021). "
        "Above 2/η, GD on the local quadratic would diverge along the top eigenvector; a "
        "real network does not diverge but stops descending smoothly (the loss can rise for a "
        "while), and ‖H‖ can overshoot 2/η for a time before it comes back down."
    )
    st.latex(r"\|H\|\;\approx\;\frac{2}{\eta}")
    if run is not None:
        h, two = _scalar_at(run, "sharpness", step), _scalar_at(run, "two_over_eta", step)
        rules = PhaseRules.from_config(run.config)
        _live(
            f"At step {step}: ‖H‖ = {_fmt(h)}, 2/η = {_fmt(two)}, "
            f"‖H‖·η/2 = {_fmt(h / two if two else math.nan, '.3f')}: "
            f"{captions.edge_at_step(h, two, rules)}",
            claims.eos_claim(run),
        )
    st.page_link(TRAIN, label="See it live: the sharpness panel", icon=":material/show_chart:")


def gauss_newton(run: RunLike | None, step: int) -> None:
    st.header("3 · Gauss–Newton: ‖H‖ ≈ ‖G‖")
    st.latex(
        r"H = G + \Big\langle \textstyle\sum_k \frac{\partial \ell}{\partial z_k}"
        r"\nabla_\theta^2 z_k \Big\rangle"
    )
    st.markdown(
        "Where the second term (the residual) is small, the top eigenvalues agree; the "
        "paper finds it small at the edge of stability. The numbers below say whether it is "
        "on this run."
    )
    if run is not None:
        h, g = _scalar_at(run, "sharpness", step), _scalar_at(run, "gn_sharpness", step)
        _live(
            f"At step {step}: ‖H‖ = {_fmt(h)}, ‖G‖ = {_fmt(g)}, ratio "
            f"{_fmt(h / g if g else math.nan, '.4f')}: {captions.gauss_newton_at_step(h, g)}",
            claims.gn_claim(run),
        )


def identity(run: RunLike | None, step: int) -> None:
    st.header("4 · The identity ‖G‖ = ⟨λ\\*‖J‖²⟩")
    st.markdown("Let u be the unit top eigenvector of G. Then, exactly,")
    st.latex(
        r"\|G\| = u^\top G u = \big\langle (J^\top u)^\top M (J^\top u) \big\rangle"
        r" = \big\langle \lambda^*\, \|J\|^2 \big\rangle,\qquad "
        r"\lambda^*(x) := \frac{(J^\top u)^\top M (J^\top u)}{\|J\|^2}"
    )
    st.markdown(
        "One line: uᵀGu = ⟨uᵀ J M Jᵀ u⟩ by the definition of G; dividing and multiplying "
        "each term by ‖J(x)‖² gives the right-hand side."
    )
    if run is not None:
        g, lj = _scalar_at(run, "gn_sharpness", step), _scalar_at(run, "lambda_star_jac", step)
        rel = abs(g - lj) / abs(g) if g else math.nan
        _live(
            f"At step {step}: ‖G‖ = {_fmt(g)}, ⟨λ\\*‖J‖²⟩ = {_fmt(lj)} "
            f"(relative difference {_fmt(rel, '.1e')}: numerical precision of the eigensolver)."
        )


def bound(run: RunLike | None, c: int | None) -> None:
    _statement(
        "5 · λ\\* ≤ ‖M‖",
        r"(J^\top u)^\top M (J^\top u) \le \|M\|\,\|J^\top u\|^2 \le \|M\|\,\|J\|^2"
        r"\quad\Rightarrow\quad 0 \le \lambda^*(x) \le \|M(x)\|",
        "M is PSD with largest eigenvalue ‖M‖, and ‖Jᵀu‖ ≤ ‖J‖ because ‖u‖ = 1. So "
        "**IJR**: at the edge of stability ⟨λ\\*‖J‖²⟩ is pinned near 2/η; where λ\\* is large "
        "the Jacobian must be small, and a larger η pins it lower."
    )
    at_c = _samples_at(run, c, "lambda_star", "m_norm")
    if at_c is not None:
        lam, m, ok = at_c
        tol = claims.THRESHOLDS.bound_atol  # the scorecard's check reads the same tolerance
        held = float(np.mean(lam[ok] <= m[ok] + tol)) if ok.any() else math.nan
        ratio = float(np.max(lam[ok] / np.maximum(m[ok], 1e-12))) if ok.any() else math.nan
        step = int(run.sample_steps[c])
        _live(
            f"At checkpoint step {step}: λ\\* ≤ ‖M‖ holds for {_fmt(100 * held, '.1f')} % of "
            f"{int(ok.sum())} samples; the largest λ\\*/‖M‖ is {_fmt(ratio, '.4f')}."
        )
    st.page_link(
        INSPECT, label="See every sample: the λ\\*–‖M‖ scatter", icon=":material/scatter_plot:"
    )


def impurity(run: RunLike | None, c: int | None) -> None:
    _statement(
        "6 · ‖M‖ measures impurity",
        r"p_{(2)} \le \|M\| \le p_{(1)},\qquad p_{(1)}(1-p_{(1)}) \le \|M\| \le "
        r"2\,p_{(1)}(1-p_{(1)}),\qquad \|M\| \le 1-\textstyle\sum_k p_k^2 \le 1,\qquad "
        r"\|M\|\le \tfrac12",
        "For K = 2, ‖M‖ = 2p₁p₂ exactly; for uniform p, ‖M‖ = 1/K. Pure predictions "
        "(p₍₁₎ → 1) send ‖M‖ → 0 and switch the regularization off: the implicit "
        "regularization is **weighted by impurity**. In the paper's picture ⟨‖M‖⟩ follows an "
        "inverted U over training (the box below says whether this run does): about 1/K at "
        "initialisation, rising while predictions commit to one or two "
        "classes, then falling as the fit becomes pure."
    )
    at_c = _samples_at(run, c, "p_max", "m_norm")
    if at_c is not None:
        p1, m, ok = at_c
        lo, hi = p1 * (1 - p1), 2 * p1 * (1 - p1)
        held = float(np.mean((lo[ok] <= m[ok] + 1e-5) & (m[ok] <= hi[ok] + 1e-5)))
        _live(
            f"At checkpoint step {int(run.sample_steps[c])}: p₍₁₎(1−p₍₁₎) ≤ ‖M‖ ≤ "
            f"2p₍₁₎(1−p₍₁₎) holds for {_fmt(100 * held, '.1f')} % of samples; "
            f"⟨‖M‖⟩ = {_fmt(float(np.mean(m[ok])))}.",
            claims.inverted_u_claim(run),
        )
    st.page_link(TRAIN, label="See the inverted U: the ⟨‖M‖⟩ chart", icon=":material/show_chart:")


def phases(run: RunLike | None) -> None:
    st.header("7 · Phases and the active regularization period (ARP)")
    r = PhaseRules.from_config(None if run is None else run.config)
    k, w = r.phase_sustain, r.arp_smoothing
    st.markdown(
        f"""
| phase | condition (this project's operational definition) |
|---|---|
| **I** beginning | ‖H‖ has not yet stayed ≥ {r.eos_fraction} · 2/η for {k} probes in a row |
| **II** ARP | then, while ⟨‖M‖⟩ (median of {w}) ≥ {r.arp_fraction} · its peak since then |
| **III** later | that median below the fraction; II returns if it climbs back |
| **unstable** | ‖H‖ ≥ {r.unstable_factor} · 2/η for {k} probes in a row: far above the edge |

The talk names the three phases; the thresholds (`eos_fraction`, `arp_fraction`,
`phase_sustain`, `unstable_factor`, `arp_smoothing`) are **this project's own choice**
(config values), not the paper's; docs/science.md gives the measurements behind them. Every
boundary needs {k} probes in a row past it, so one spike does not change the
phase. A run that starts above 2/η and falls below it within a few probes (a **catapult**) is
reported as that event and stays in phase I. The peak counts from the edge of stability, not
from step 0: with K = 2 classes ⟨‖M‖⟩ starts at its largest value 1/2 and has usually halved
before ‖H‖ reaches 2/η. For SGD the same 2/η line is drawn, but mini-batch noise keeps the
full-batch sharpness below it.
"""
    )
    if run is not None:
        spans = run.phase_spans()
        if spans:
            rows = [{"phase": p, "from step": a, "to step": b} for p, a, b in spans]
            st.dataframe(rows, hide_index=True, width="content")
        _live("Phase spans of this run, above.", claims.arp_claim(run))


def ejr() -> None:
    st.header("8 · Explicit Jacobian regularization (EJR)")
    st.markdown(
        "A SAM-like two-step update. SAM perturbs along the normalised loss gradient; EJR "
        "perturbs along a random direction in the column space of the Jacobian:"
    )
    st.latex(
        r"\varepsilon_i\sim\mathcal N(0,I_K),\quad v=\nabla_\theta\sum_{i\in B}"
        r"\varepsilon_i^\top z(x_i;\theta),\quad \theta'=\theta+\rho\,\frac{v}{\|v\|},\quad "
        r"\theta\leftarrow\theta-\eta\,\nabla_\theta L_B(\theta')"
    )
    st.markdown(
        "Since $\\mathbb E\\,\\|\\sum_i J_i\\varepsilon_i\\|^2 = \\sum_i \\|J_i\\|_F^2$, the "
        "perturbation probes curvature along the "
        "Jacobian; its effect is measured, not assumed. **The paper's exact variant could not "
        "be confirmed: this update is the project's own definition.** Also offered: an "
        "explicit penalty L + β⟨‖Jε‖²⟩ (Hoffman et al., 2019), SAM and ASAM."
    )


def step_picker(run: RunLike) -> int:
    """Checkpoint index of the numbers below: a step slider shared with Inspect (moving
    either moves both), so a lecturer can show each link at the edge of stability."""
    steps = [int(x) for x in run.sample_steps]
    if len(steps) < 2:
        st.caption(f"Values at step {steps[0]}.")
        return 0
    if st.session_state.get("theory_step") not in steps:
        st.session_state["theory_step"] = steps[remembered_step(run)]
    step = st.select_slider(
        "Numbers at step",
        steps,
        key="theory_step",
        help="Every number on this page is taken at this checkpoint (the step scrubbed on "
        "Inspect, too).",
    )
    remember_step(step)
    return steps.index(step)


def page() -> None:
    st.title("IJR explorer · Theory")
    st.markdown(
        "The talk's chain, each link with the numbers of a run: "
        "**2/η ≈ ‖H‖ ≈ ‖G‖ = ⟨λ\\*‖J‖²⟩**. Source: S. Lee, J. Park, J. Lee, *Implicit Jacobian "
        "Regularization Weighted with Impurity of Probability Output*, ICML 2023."
    )
    run = pick_run("Numbers from run")
    c = step = None
    if run is not None and len(run.sample_steps):
        c = step_picker(run)
        step = int(run.sample_steps[c])
    elif run is not None:
        step = int(run.step)
    objects()
    edge_of_stability(run, step)
    gauss_newton(run, step)
    identity(run, step)
    bound(run, c)
    impurity(run, c)
    phases(run)
    ejr()


page()
