"""Captions state what the run shown measured, not what the default run did."""

from __future__ import annotations

import numpy as np

from app import captions
from ijr_core.config import RunConfig
from ijr_core.run import Run


def make_run(h, m, lr=0.5, train_acc=None, test_acc=None, k=10, noise=0.3, status="finished"):
    run = Run(RunConfig(lr=lr, label_noise=noise), status=status, meta={"n_classes": k})
    n = len(h)
    train_acc = np.linspace(0.2, 1.0, n) if train_acc is None else train_acc
    test_acc = np.linspace(0.2, 0.8, n) if test_acc is None else test_acc
    for i in range(n):
        run.append_scalars(25 * i, sharpness=h[i], two_over_eta=2 / lr, m_norm_mean=m[i],
                           train_acc=train_acc[i], test_acc=test_acc[i],
                           jac_spectral_sq_mean=10.0 * (i + 1))
    return run


def test_sharpness_caption_states_this_runs_peak_and_plateau():
    # 2/η = 4: rises, sits at 1.0-1.1×, peak 1.25× at step 100
    run = make_run([1, 2, 3.8, 4.4, 5.0, 4.2, 4.0, 4.1], [0.1] * 8)
    text = captions.sharpness(run)
    assert "peak of 1.25× at step 100" in text and "now 1.02×" in text
    assert "Edge of stability from step 50" in text and "1.6" not in text
    low = captions.sharpness(make_run([1, 1.5, 2.0, 2.2], [0.1] * 4, lr=0.1))  # 2/η = 20
    assert "has not reached 0.9 · 2/η" in low and "peak of 0.11×" in low
    fell = captions.sharpness(make_run([1, 3, 4, 4, 2, 1.5], [0.1] * 6))
    assert "fallen back below" in fell


def test_m_norm_caption_names_the_shape_it_sees():
    u = captions.m_norm(make_run([1] * 6, [0.1, 0.25, 0.3, 0.2, 0.1, 0.05]))
    assert "inverted U" in u and "peaked at 0.300 at step 50" in u and "1/K = 0.100" in u
    falls = captions.m_norm(make_run([1] * 4, [0.5, 0.4, 0.2, 0.1], k=2))
    assert "only falls" in falls and "two classes" in falls
    rising = captions.m_norm(make_run([1] * 4, [0.1, 0.2, 0.25, 0.3], status="running"))
    assert "rising so far" in rising and "inverted U" not in rising


def test_accuracy_caption_tells_memorisation_from_a_clean_plateau():
    mem = captions.accuracy(make_run([1] * 5, [0.1] * 5, train_acc=[0.2, 0.5, 0.7, 0.9, 1.0],
                                     test_acc=[0.2, 0.7, 0.8, 0.75, 0.7]))
    assert "train 1.00, test 0.70" in mem and "Test peaked at 0.80 (step 50)" in mem
    assert "memorising" in mem and "0.73" in mem  # 1 − 0.3 · 9/10
    # two-moons-like: K = 2, 20 % noise, train plateaus at 0.9 < test 0.97: no memorising
    clean = captions.accuracy(make_run([1] * 3, [0.4] * 3, k=2, noise=0.2,
                                       train_acc=[0.5, 0.85, 0.9], test_acc=[0.5, 0.95, 0.97]))
    assert "memorising" not in clean and "reaching 1" not in clean and "0.90" in clean


def test_sweep_heatmap_caption_lists_each_etas_arp_from_the_runs():
    from app import runs_store
    from ijr_core.sweep import load_sweep

    sweep = load_sweep(runs_store.demo_sweeps()[0])
    text = captions.sweep_heatmap(sweep.lrs, sweep.runs)
    for lr, run in zip(sweep.lrs, sweep.runs, strict=True):
        (a, b) = next((int(x), int(y)) for p, x, y in run.phase_spans() if p == "II")
        assert f"η = {lr:g}: ARP {a}–{b}" in text
    assert text.index("η = 0.5") < text.index("η = 0.2")  # largest first, as the rows
    assert "a larger η enters its ARP earlier" in text  # true of the demo sweep


def test_overlay_sharpness_caption_names_the_runs_that_did_not_reach_the_edge():
    runs = {"fast": make_run([1, 3.8, 4.4], [0.1] * 3),  # 2/η = 4: reached (1.10×)
            "slow": make_run([1, 2, 3], [0.1] * 3, lr=0.1)}  # 2/η = 20: 0.15×
    text = captions.overlay_sharpness(runs)
    assert "Reached the edge of stability: fast (1.10×)" in text
    assert "Not reached: slow (0.15×)" in text


def test_m_norm_caption_and_the_scorecard_agree_on_the_inverted_u():
    """The caption's shape and the inverted-U claim read the same thresholds: a rise of
    10 % (below u_rise) or a fall to 0.6 of the peak (above u_fall) is no U for either."""
    from ijr_core.claims import HELD, inverted_u_claim

    shapes = {
        "u": [0.1, 0.25, 0.3, 0.2, 0.1, 0.05],
        "small rise": [0.1, 0.11, 0.105, 0.05, 0.04, 0.03],
        "small fall": [0.1, 0.2, 0.3, 0.25, 0.2, 0.18],
    }
    for name, m in shapes.items():
        run = make_run([1, 2, 3.8, 4.0, 4.1, 4.0], m)
        says_u = "inverted U" in captions.m_norm(run)
        assert says_u == (inverted_u_claim(run).verdict == HELD), name
    assert "inverted U" in captions.m_norm(make_run([1] * 6, shapes["u"]))


def test_theory_verdicts_at_one_step_follow_the_numbers():
    from ijr_core.phases import PhaseRules

    rules = PhaseRules()  # eos_fraction 0.9, unstable_factor 2
    assert captions.edge_at_step(2.0, 4.0, rules).startswith("below the edge")
    assert captions.edge_at_step(3.8, 4.0, rules).startswith("at the edge")
    assert captions.edge_at_step(9.0, 4.0, rules).startswith("far above")
    assert captions.edge_at_step(float("nan"), 4.0, rules) == ""
    assert "agree within 5 %" in captions.gauss_newton_at_step(1.0, 0.95)
    assert "differ by 50 %" in captions.gauss_newton_at_step(1.0, 0.5)
    assert captions.gauss_newton_at_step(0.0, 1.0) == ""
