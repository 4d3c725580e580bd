"""Science tests: SCIENCE.md's claims, reproduced on its digits setting (RunConfig's defaults;
the app's default preset is tested in test_default_picture.py).

The setting (digits, 1000 samples, 30 % label noise, MLP 64-128-128-10 tanh, full-batch GD,
η = 0.5) is shortened to 600 steps: the whole story — progressive sharpening to 2/η, the
identity ‖G‖ = ⟨λ*‖J‖²⟩, the bound λ* ≤ ‖M‖, the inverted U of ⟨‖M‖⟩ and the phases
I → II → III — plays out by then (SCIENCE.md's table). One seeded run, shared by the tests.
"""

from __future__ import annotations

import numpy as np
import pytest

from ijr_core.config import PRESETS, RunConfig
from ijr_core.trainer import train

STEPS = 600


@pytest.fixture(scope="module")
def eos_run():
    cfg = RunConfig(name="science-md", steps=STEPS, device="cpu")
    run = train(cfg)
    assert run.status == "finished", run.meta.get("error")
    return run


def test_sharpness_reaches_the_edge_of_stability(eos_run):
    s = eos_run.scalars
    two_over_eta = s["two_over_eta"][0]
    assert two_over_eta == 4.0
    assert s["sharpness"][0] < 0.5 * two_over_eta  # starts well below 2/η (progressive sharpening)
    assert s["sharpness"].max() >= 0.85 * two_over_eta
    # ... and hovers around it instead of growing without bound
    assert s["sharpness"].max() <= 2.0 * two_over_eta


def test_identity_gn_equals_lambda_star_weighted_jacobian_at_every_probe(eos_run):
    s = eos_run.scalars
    rel = np.abs(s["gn_sharpness"] - s["lambda_star_jac"]) / s["gn_sharpness"]
    assert rel.max() <= 2e-3, rel


def test_gauss_newton_is_close_to_the_hessian_at_the_edge_of_stability(eos_run):
    # At initialisation the residual term of H is large (measured ‖G‖/‖H‖ ≈ 0.46 at step
    # 0); from the edge of stability on, ‖H‖ ≈ ‖G‖.
    s = eos_run.scalars
    at_eos = eos_run.phases() != "I"
    ratio = s["gn_sharpness"][at_eos] / s["sharpness"][at_eos]
    assert at_eos.sum() >= 10
    assert np.all((ratio > 0.95) & (ratio < 1.05)), ratio


def test_lambda_star_is_bounded_by_m_norm_for_every_sample(eos_run):
    lam, m = eos_run.samples["lambda_star"], eos_run.samples["m_norm"]
    assert lam.shape == m.shape == (STEPS // 25 + 1, 1000)
    assert np.all(lam >= -1e-6)
    assert np.all(lam <= m + 1e-6)
    assert np.all(m <= 0.5 + 1e-6)  # ‖M‖ ≤ 1/2
    # and ⟨λ*‖J‖²⟩ ≤ ⟨‖M‖‖J‖²⟩
    s = eos_run.scalars
    assert np.all(s["lambda_star_jac"] <= s["m_norm_jac"] * (1 + 1e-6))


def test_m_norm_mean_follows_an_inverted_u(eos_run):
    m = eos_run.scalars["m_norm_mean"]
    peak = int(np.argmax(m))
    assert abs(m[0] - 0.12) < 0.03  # ≈ 1/K-ish at initialisation (SCIENCE.md: 0.121)
    assert m[peak] > 1.5 * m[0]  # rises
    assert 0 < peak < len(m) - 1
    assert m[-1] < 0.3 * m[peak]  # falls well below its peak
    assert m[-1] < m[0]


def test_phases_in_order(eos_run):
    spans = eos_run.phase_spans()
    assert [p for p, _, _ in spans] == ["I", "II", "III"]
    phases = eos_run.phases()
    s = eos_run.scalars
    first_eos = np.flatnonzero(s["sharpness"] >= 0.9 * s["two_over_eta"])[0]
    assert phases[first_eos] == "II" and np.all(phases[:first_eos] == "I")
    # in III impurity is low: below half its running peak since the edge of stability
    iii = phases == "III"
    peak_since_eos = np.maximum.accumulate(s["m_norm_mean"][first_eos:])
    assert np.all(s["m_norm_mean"][first_eos:][iii[first_eos:]]
                  < 0.5 * peak_since_eos[iii[first_eos:]])


def test_jacobian_norm_keeps_growing_once_impurity_has_decayed(eos_run):
    # In phase III the fit is nearly pure (‖M‖ → 0), which switches the implicit
    # regularization off: ⟨‖J‖²⟩ is no longer held down.
    s = eos_run.scalars
    iii = eos_run.phases() == "III"
    jac = s["jac_spectral_sq_mean"][iii]
    assert np.all(np.diff(jac) > 0)
    assert s["jac_spectral_sq_mean"][-1] > 10 * s["jac_spectral_sq_mean"][0]


def test_sharpness_resettles_at_the_new_two_over_eta_after_a_live_lr_change():
    # The classic demo: at the edge of stability (‖H‖ ≈ 6 at η = 0.5), raising η to 1.0
    # mid-run drives the sharpness down to the new 2/η = 2 within ~100 steps.
    from ijr_core.trainer import TrainingControl

    cfg = RunConfig(steps=400, device="cpu")
    control = TrainingControl()

    def raise_lr(snap):
        if snap.step == 250:
            control.set_lr(1.0)

    run = train(cfg, callbacks=[raise_lr], control=control)
    s = run.scalars
    before = s["step"] < 250  # the change is probed at once: step 250's row has the new η
    assert np.all(s["lr"][before] == 0.5) and np.all(s["lr"][~before] == 1.0)
    assert run.meta["lr_changes"] == [[250, 1.0]]
    assert s["sharpness"][before][-1] > 1.5 * 2.0  # above the new line before the change
    late = s["step"] >= 375
    assert np.all(s["sharpness"][late] <= 1.2 * 2.0)
    assert np.all(s["two_over_eta"][late] == 2.0)


def test_larger_learning_rates_reach_the_same_loss_with_smaller_jacobians():
    # Implicit Jacobian regularization (SCIENCE.md, chain step 4): at the edge of stability
    # ⟨λ*‖J‖²⟩ is pinned near 2/η, so a larger η holds ‖J‖ lower. Compared at matched
    # training loss (measured: ⟨‖J‖²⟩ ≈ 2655 / 2148 / 1731 at loss 0.1 for η = 0.25 / 0.5 / 1).
    from ijr_core.sweep import sweep_lr

    cfg = RunConfig(steps=800, probe_every=25, device="cpu")
    sweep = sweep_lr(cfg, [0.25, 0.5, 1.0])
    assert sweep.statuses == ["finished"] * 3
    assert np.all(sweep.max_sharpness() >= 0.85 * 2 / sweep.lrs)  # all reach the EoS
    jac = sweep.at_loss(0.1)
    assert np.isfinite(jac).all(), jac
    assert jac[0] > 1.1 * jac[1] > 1.1 * 1.1 * jac[2], jac


def test_two_class_preset_does_not_skip_the_arp():
    # K = 2: ⟨‖M‖⟩ starts at its maximum 1/2 and falls to ≈ 0.25 before the EoS (step
    # ≈ 175); with 20 % label noise it then stays near 0.21-0.25 for the rest of the run,
    # so the ARP lasts to the end (measured: I 0-175, II 175-800; no phase III by step 800).
    cfg = PRESETS["two-moons"].replace(device="cpu")
    run = train(cfg)
    s, phases = run.scalars, run.phases()
    first_eos = np.flatnonzero(s["sharpness"] >= 0.9 * s["two_over_eta"])[0]
    assert s["m_norm_mean"][0] > 0.49 and s["m_norm_mean"][first_eos] < 0.3
    assert phases[first_eos] == "II" and np.all(phases[:first_eos] == "I")
    assert [p for p, _, _ in run.phase_spans()][:2] == ["I", "II"]


def test_probe_eigenvalues_are_within_the_tolerance_at_every_probe(eos_run):
    """The warm-started, early-stopped Lanczos of the probes against tight solves at the
    saved parameters. At the edge of stability the top eigenvalues swap places between
    probes; a warm start that missed the new top once gave ‖G‖ 5 % low here (step 425)."""
    import torch

    from ijr_core import curvature as cv
    from ijr_core.data import load_dataset
    from ijr_core.models import build_model
    from ijr_core.trainer import probe_subset

    cfg = eos_run.config
    ds = load_dataset(cfg)
    idx = torch.as_tensor(probe_subset(len(ds.y_train), cfg.probe_size, cfg.data_seed))
    X, y = ds.X_train[idx], ds.y_train[idx]
    steps = list(eos_run.scalars["step"])
    assert list(eos_run.sample_steps) == steps  # a parameter snapshot at every probe
    model = build_model(cfg, ds)
    P = cv.num_parameters(model)
    for i, (step, params) in enumerate(zip(steps, eos_run.params, strict=True)):
        with torch.no_grad():
            for name, p in model.named_parameters():
                p.copy_(torch.from_numpy(params[name]))
        graph = cv.CurvatureGraph(model, X, y)
        for key, op in (("sharpness", graph.hvp), ("gn_sharpness", graph.gvp)):
            ref = float(cv.top_eigenpairs(op, P, k=2, tol=1e-6, max_iter=150, seed=1)[0][0])
            err = (ref - eos_run.scalars[key][i]) / ref
            assert err <= cfg.eig_tol, (key, step, ref, eos_run.scalars[key][i])


def test_scorecard_of_the_preset_holds_every_claim(eos_run):
    # Measured (docs/science.md): edge reached at step 175, ‖H‖/(2/η) median 1.33 and max
    # 1.61 at the edge; ‖H‖ ≈ ‖G‖ within 1.7 %; ⟨‖M‖⟩ 0.12 → 0.26 → 0.03; in III the
    # median ‖H‖/(2/η) is ≈ 0.6, below the edge.
    from ijr_core import claims

    rows = claims.run_claims(eos_run)
    assert [(r.kind, r.verdict) for r in rows] == [
        (claims.CHECK, claims.PASSED)] * 2 + [(claims.CLAIM, claims.HELD)] * 4, rows
