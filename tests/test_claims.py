"""Claims scorecard (ijr_core.claims) on synthetic runs whose numbers are known exactly,
and on one small seeded run (checks pass; properties that hold on any machine)."""

from __future__ import annotations

import numpy as np
import pytest

from ijr_core import claims as cl
from ijr_core.config import RunConfig
from ijr_core.run import SAMPLE_KEYS, Run


def make_run(ratio, m=None, *, cfg=None, labels=(0, 1, 2), step=10, g_gap=0.0, **cols):
    """A run with ‖H‖ = ratio · 2/η (η = 0.5), ‖G‖ = (1 − g_gap)‖H‖ = ⟨λ*‖J‖²⟩, ⟨‖M‖⟩ = m
    (0.2 when not given) and any other scalar columns."""
    ratio = np.asarray(ratio, dtype=float)
    n = len(ratio)
    m = np.full(n, 0.2) if m is None else np.asarray(m, dtype=float)
    run = Run(cfg or RunConfig(), sample_ids=range(len(labels)), sample_labels=labels)
    for i in range(n):
        h = 4.0 * ratio[i]
        row = dict(sharpness=h, gn_sharpness=h * (1 - g_gap), lambda_star_jac=h * (1 - g_gap),
                   two_over_eta=4.0, m_norm_mean=m[i])
        row.update({k: float(np.asarray(v)[i]) for k, v in cols.items()})
        run.append_scalars(i * step, **row)
    return run


def _by_name(rows, start):
    (row,) = [c for c in rows if c.name.startswith(start)]
    return row


EDGE = [0.3, 0.6, 1.0, 1.2, 1.1, 0.9, 1.3, 1.0, 1.1, 1.2]  # reached at probe 2, median 1.1


def test_identity_check_measures_the_largest_relative_gap():
    run = make_run(EDGE)
    c = cl.identity_check(run)
    assert c.kind == cl.CHECK and c.verdict == cl.PASSED and "0.0e+00 over 10 probes" in c.value
    run.append_scalars(100, gn_sharpness=4.0, lambda_star_jac=4.04, two_over_eta=4.0)
    c = cl.identity_check(run)
    assert c.verdict == cl.FAILED and "1.0e-02" in c.value
    # ‖G‖ ≈ 0 (pure predictions): the gap is measured against 1e-3 · 2/η, not against ‖G‖
    tiny = make_run([0.5, 0.5])
    tiny.append_scalars(20, gn_sharpness=1e-8, lambda_star_jac=2e-8, two_over_eta=4.0)
    assert cl.identity_check(tiny).verdict == cl.PASSED
    assert cl.identity_check(Run(RunConfig())).verdict == cl.NOT_MEASURABLE


def test_bound_check_counts_violations_over_samples_and_checkpoints():
    run = make_run(EDGE)
    assert cl.bound_check(run).verdict == cl.NOT_MEASURABLE  # no checkpoints
    ok = {k: np.full(3, 0.1) for k in SAMPLE_KEYS}
    run.append_checkpoint(100, {**ok, "m_norm": np.array([0.3, 0.2, 0.1]),
                                "lambda_star": np.array([0.3, 0.1, 0.1])})
    c = cl.bound_check(run)
    assert c.verdict == cl.PASSED and c.value.startswith("0 violations in 3 ")
    run.append_checkpoint(110, {**ok, "m_norm": np.array([0.3, 0.2, 0.1]),
                                "lambda_star": np.array([0.31, 0.1, 0.2])})
    c = cl.bound_check(run)
    assert c.verdict == cl.FAILED and c.value.startswith("2 violations in 6 ")


def test_edge_of_stability_claim_reports_median_and_max_at_the_edge():
    c = cl.eos_claim(make_run(EDGE))
    assert c.verdict == cl.HELD
    assert c.value == "reached at step 20; ‖H‖/(2/η) median 1.1, max 1.3 (8 probes)"
    assert c.detail.startswith("held if reached and the median") and "[0.8, 1.5]" in c.detail
    high = make_run([0.5, 1.6, 1.7, 1.6, 1.8])  # at the edge but hovering well above it
    assert cl.eos_claim(high).verdict == cl.NOT_HELD
    c = cl.eos_claim(make_run([0.3, 0.5, 0.7, 0.8, 0.7]))
    assert c.verdict == cl.NOT_HELD and "never reached; max ‖H‖/(2/η) = 0.8" in c.value
    no_lr = Run(RunConfig())  # e.g. a RunWriter run given no learning rate
    no_lr.append_scalars(0, sharpness=1.0, gn_sharpness=1.0, lambda_star_jac=1.0)
    assert cl.eos_claim(no_lr).detail == "no probe recorded ‖H‖ and 2/η"
    assert cl.identity_check(no_lr).verdict == cl.PASSED
    sgd = make_run([0.3, 0.5], cfg=RunConfig(optimizer="sgd", batch_size=32))
    c = cl.eos_claim(sgd)  # the claim is about full-batch GD
    assert c.verdict == cl.NOT_MEASURABLE and "mini-batch noise" in c.detail


def test_edge_of_stability_claim_is_not_held_on_an_unstable_run_and_names_a_catapult():
    c = cl.eos_claim(make_run([3.0, 4.0, 3.5, 3.0, 1.0, 1.1, 1.0]))
    assert c.verdict == cl.NOT_HELD and "median 3, max 4 (7 probes, 4 unstable)" in c.value
    c = cl.eos_claim(make_run([7.6, 0.1, 0.2, 0.5, 1.0, 1.1, 1.0, 1.0]))
    assert c.verdict == cl.HELD and c.value.startswith("reached at step 40")
    assert c.value.endswith("; initial catapult 7.6 · 2/η (steps 0–10) not counted")


def test_gauss_newton_claim_uses_the_median_gap_at_the_edge():
    c = cl.gn_claim(make_run(EDGE, g_gap=0.03))
    assert c.verdict == cl.HELD and c.value == "median relative gap 3 % (at the edge, 8 probes)"
    assert cl.gn_claim(make_run(EDGE, g_gap=0.2)).verdict == cl.NOT_HELD
    c = cl.gn_claim(make_run([0.3, 0.4, 0.5], g_gap=0.05))
    assert "edge never reached" in c.value and c.verdict == cl.HELD


def test_inverted_u_claim_rises_falls_plateaus_and_knows_its_limits():
    m_u = [0.1, 0.25, 0.3, 0.2, 0.1, 0.05, 0.04, 0.03, 0.03, 0.02]
    c = cl.inverted_u_claim(make_run(EDGE, m_u))
    assert c.verdict == cl.HELD and c.value == "0.1 → peak 0.3 (step 20) → 0.02"
    plateau = [0.1, 0.25, 0.3, 0.29, 0.28, 0.28, 0.27, 0.28, 0.27, 0.27]
    c = cl.inverted_u_claim(make_run(EDGE, plateau))
    assert c.verdict == cl.NOT_HELD and c.value.endswith("; plateaus (final = 0.9 · peak)")
    no_edge = cl.inverted_u_claim(make_run([0.3] * 10, m_u))
    assert no_edge.verdict == cl.HELD and "without the edge of stability" in no_edge.value
    two = cl.inverted_u_claim(make_run(EDGE, m_u, labels=(0, 1, 1)))
    assert two.verdict == cl.NOT_MEASURABLE and "K = 2" in two.detail
    mse = cl.inverted_u_claim(make_run(EDGE, m_u, cfg=RunConfig(loss="mse")))
    assert mse.verdict == cl.NOT_MEASURABLE


def test_arp_claim_gives_the_arp_length_and_the_sharpness_after_it():
    ratio = [0.5, 1.0, 1.1, 1.0, 1.0, 1.1, 0.8, 0.6, 0.5, 0.4]
    m = [0.2, 0.3, 0.3, 0.3, 0.3, 0.3, 0.1, 0.05, 0.04, 0.03]
    c = cl.arp_claim(make_run(ratio, m))
    # II from step 10 until III at step 60 (the median over 5 probes there is 0.1 < 0.15)
    assert c.verdict == cl.HELD
    assert c.value.startswith("ARP 50 steps (56 % of the run); in III ‖H‖/(2/η) median 0.55")
    still = cl.arp_claim(make_run(ratio, [0.3] * 10))
    assert still.verdict == cl.NOT_MEASURABLE and "no phase III by step 90" in still.detail
    assert cl.arp_claim(make_run([0.3] * 5)).verdict == cl.NOT_MEASURABLE
    up = cl.arp_claim(make_run([1.0] * 10, m))  # impurity gone, ‖H‖ still at the edge
    assert up.verdict == cl.NOT_HELD
    mse = cl.arp_claim(make_run(ratio, [1.0] * 10, cfg=RunConfig(loss="mse")))
    assert mse.verdict == cl.NOT_MEASURABLE and "squared loss" in mse.detail


def _loss_run(ratio_jac_loss):
    jac = [j for j, _ in ratio_jac_loss]
    loss = [ls for _, ls in ratio_jac_loss]
    return make_run(EDGE[: len(jac)], jac_spectral_sq_mean=jac, train_loss=loss)


def test_ijr_claim_compares_jacobians_at_matched_training_loss():
    loss = [2.0, 1.0, 0.5, 0.2, 0.09, 0.05]
    runs = [_loss_run(list(zip([10, 20, 30, 40, 50 * s, 60], loss, strict=True)))
            for s in (3, 2, 1)]
    c = cl.ijr_claim([0.25, 0.5, 1.0], runs)
    assert c.verdict == cl.HELD
    assert c.value == ("η=0.25: 150 (loss 0.09), η=0.5: 100 (loss 0.09), η=1: 50 (loss 0.09); "
                       "rank correlation -1")
    assert "training loss ≤ 0.1" in c.detail
    c = cl.ijr_claim([1.0, 0.5, 0.25], runs)  # reversed: larger η, larger ⟨‖J‖²⟩
    assert c.verdict == cl.NOT_HELD and "rank correlation 1" in c.value
    # no run below 0.1: matched at the lowest loss they all reach
    high = [_loss_run(list(zip([10, 20, 30], [2.0, 0.6, ls], strict=True))) for ls in
            (0.3, 0.4)]
    c = cl.ijr_claim([0.5, 1.0], high)
    assert "training loss ≤ 0.4" in c.detail and "(loss 0.3)" in c.value
    stuck = [_loss_run(list(zip([10, 20], [2.0, ls], strict=True))) for ls in (1.5, 1.9)]
    c = cl.ijr_claim([0.5, 1.0], stuck)
    assert c.verdict == cl.NOT_MEASURABLE
    assert c.value == "lowest common loss 1.9 (η=1 gets no lower; initial 2)"
    assert cl.ijr_claim([0.5], runs[:1]).verdict == cl.NOT_MEASURABLE


def _opt_run(method, evals_per_step, acc):
    cfg = RunConfig(optimizer=method, batch_size=None if method == "gd" else 64)
    n = len(acc)
    return make_run([0.5] * n, cfg=cfg, step=100, test_acc=acc, jac_spectral_sq_mean=[5.0] * n,
                    grad_evals=[evals_per_step * 100 * i for i in range(n)])


def test_ejr_claims_compare_at_equal_gradient_evaluations():
    runs = {
        "sgd": _opt_run("sgd", 1, [0.1, 0.5, 0.6, 0.62, 0.63]),
        "ejr": _opt_run("ejr", 2, [0.1, 0.55, 0.61, 0.7, 0.8]),
        "sam": _opt_run("sam", 2, [0.1, 0.6, 0.65, 0.9, 0.9]),
    }
    rows = cl.ejr_claims(runs)
    # budget: SGD's 400 evaluations = step 200 of EJR and SAM
    sgd, sam = _by_name(rows, "EJR vs SGD"), _by_name(rows, "EJR vs SAM")
    assert sgd.value.startswith("test accuracy 0.61 vs 0.63") and sgd.verdict == cl.NOT_HELD
    assert "(at 400 gradient evaluations)" in sgd.value
    assert sam.value.startswith("test accuracy 0.61 vs 0.65") and sam.verdict == cl.NOT_HELD
    runs["sgd"] = _opt_run("sgd", 1, [0.1, 0.5, 0.55, 0.6, 0.6])
    assert _by_name(cl.ejr_claims(runs), "EJR vs SGD").verdict == cl.HELD
    (none,) = cl.ejr_claims({"sgd": runs["sgd"]})
    assert none.verdict == cl.NOT_MEASURABLE


def test_sweep_and_group_scorecards_combine_runs():
    good, bad = make_run(EDGE), make_run([0.5, 1.6, 1.7, 1.6, 1.8])
    rows = cl.sweep_claims([0.5, 1.0], [good, bad])
    eos = _by_name(rows, "edge of stability")
    assert eos.verdict == cl.NOT_HELD and eos.detail.startswith("not on η=1; held if")
    assert eos.value.startswith("η=0.5: reached at step 20")
    assert _by_name(rows, "‖G‖ = ").verdict == cl.PASSED
    assert rows[-1].name.startswith("IJR")
    group = cl.group_claims({"a": good, "b": good})
    assert _by_name(group, "edge of stability").verdict == cl.HELD
    assert group[-1].verdict == cl.NOT_MEASURABLE  # no EJR run


def test_output_formats():
    rows = cl.run_claims(make_run(EDGE))
    assert [r.kind for r in rows[:2]] == [cl.CHECK] * 2 and {r.kind for r in rows[2:]} == {
        cl.CLAIM}
    table = cl.claims_rows(rows)
    assert list(table[0]) == list(cl.COLUMNS) and len(table) == len(rows)
    text = cl.format_claims(rows)
    assert text.splitlines()[0].startswith("numerical checks")
    assert "  [held] edge of stability: ‖H‖ hovers at 2/η: reached at step 20" in text


def test_thresholds_are_one_object_and_change_verdicts():
    run = make_run([0.5, 1.6, 1.7, 1.6, 1.8])
    assert cl.eos_claim(run).verdict == cl.NOT_HELD
    wide = cl.Thresholds(eos_band=(0.8, 2.0))
    assert cl.eos_claim(run, wide).verdict == cl.HELD


@pytest.fixture(scope="module")
def small_run():
    from ijr_core.trainer import train

    cfg = RunConfig(dataset="blobs", n_classes=4, n_train=200, n_test=100, probe_size=200,
                    width=32, lr=1.0, steps=100, probe_every=10, device="cpu")
    return train(cfg)


def test_checks_pass_on_a_seeded_run(small_run):
    rows = cl.run_claims(small_run)
    assert [r.verdict for r in rows if r.kind == cl.CHECK] == [cl.PASSED, cl.PASSED]
    assert {r.verdict for r in rows} <= {cl.PASSED, cl.HELD, cl.NOT_HELD, cl.NOT_MEASURABLE}
