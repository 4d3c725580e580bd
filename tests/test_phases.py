"""Phase rule (ijr_core.phases): each case of the rule on synthetic series, the settings as
RunConfig fields, and the rule on small seeded runs (properties that hold on any machine)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from ijr_core.config import RunConfig
from ijr_core.phases import (
    PhaseRules,
    analyse_phases,
    phase_events,
    phase_spans,
    running_median,
)
from ijr_core.run import Run


def _analyse(ratio, m=None, **rules):
    ratio = np.asarray(ratio, dtype=float)
    m = np.full(len(ratio), 0.2) if m is None else np.asarray(m, dtype=float)
    return analyse_phases(4.0 * ratio, np.full(len(ratio), 4.0), m, PhaseRules(**rules))


def _labels(a) -> str:
    return " ".join(a.labels)


def test_rules_default_to_run_config_and_read_a_config():
    cfg = RunConfig()
    for f in dataclasses.fields(PhaseRules):
        assert getattr(PhaseRules(), f.name) == getattr(cfg, f.name), f.name
    cfg = RunConfig(phase_sustain=5, unstable_factor=3.0, arp_smoothing=1)
    rules = PhaseRules.from_config(cfg, eos_fraction=0.8, arp_fraction=None)
    assert (rules.phase_sustain, rules.unstable_factor, rules.arp_smoothing) == (5, 3.0, 1)
    assert (rules.eos_fraction, rules.arp_fraction) == (0.8, 0.5)
    assert PhaseRules.from_config(None) == PhaseRules()


@pytest.mark.parametrize("bad", [dict(phase_sustain=0), dict(unstable_factor=0.5),
                                 dict(arp_smoothing=0)])
def test_new_settings_are_validated(bad):
    with pytest.raises(ValueError):
        RunConfig(**bad)


def test_an_initial_catapult_is_an_event_not_the_edge_of_stability():
    # digits softplus 256×3 at η = 0.5 (measured): 7.6 · 2/η at step 0, 0.05 by step 25,
    # then progressive sharpening to the edge.
    ratio = [7.6, 0.05, 0.06, 0.1, 0.3, 0.6, 0.95, 1.1, 1.3, 1.2, 1.0]
    a = _analyse(ratio)
    assert a.catapult == (0, 1, 7.6)
    assert a.eos_index == 6
    assert _labels(a) == " ".join(["I"] * 6 + ["II"] * 5)
    events = phase_events(a, np.arange(11) * 25)
    assert [e[:2] for e in events] == [("catapult", 0), ("edge of stability", 150)]
    assert events[1][2] == "‖H‖ = 0.95 · 2/η; ARP (II) begins"
    assert "7.6 · 2/η" in events[0][2] and "by step 25" in events[0][2]


def test_a_run_that_starts_above_the_line_and_stays_is_at_the_edge_from_its_first_probe():
    a = _analyse([1.3, 1.1, 1.2, 1.0, 1.1])
    assert a.catapult is None and a.eos_index == 0
    assert set(a.labels) == {"II"}


def test_a_boundary_needs_a_sustained_crossing():
    ratio = [0.3, 0.5, 1.2, 0.5, 0.6, 0.95, 0.7, 0.8, 0.92, 1.0, 1.1, 1.0]
    a = _analyse(ratio)
    assert a.eos_index == 8  # the spikes at 2 and 5 are one probe each
    assert a.catapult is None  # a spike later than the first probe is no catapult
    assert _labels(a) == " ".join(["I"] * 8 + ["II"] * 4)
    # with phase_sustain = 1 a single probe is enough (the rule before issue 11)
    assert _analyse(ratio, phase_sustain=1).eos_index == 2
    # a crossing that has not lasted phase_sustain probes by the end of the series is not one
    assert _analyse([0.5, 0.5, 0.95, 1.0]).eos_index is None


def test_sustained_sharpness_far_above_two_over_eta_is_unstable_not_the_edge():
    # blobs K = 5 at η = 2 (measured): ‖H‖ at 2-13 · 2/η for the first 150 steps
    ratio = [2.2, 9.5, 7.3, 13.4, 6.1, 10.5, 0.7, 1.3, 1.1, 3.1, 1.2, 1.0, 1.1, 0.9]
    a = _analyse(ratio)
    assert a.eos_index == 0 and a.catapult is None
    # U from the start; leaving it needs three probes below 2 · 2/η; one spike (3.1) does
    # not enter it again
    assert _labels(a) == " ".join(["U"] * 6 + ["II"] * 8)
    assert set(_analyse(ratio, unstable_factor=20.0).labels) == {"II"}


def test_the_arp_decision_uses_a_smoothed_impurity_and_ii_can_be_re_entered():
    ratio = np.full(18, 1.0)
    m = np.array([0.2, 0.24, 0.25, 0.24, 0.05, 0.24, 0.23, 0.24, 0.24,  # one outlier: still II
                  0.1, 0.08, 0.07, 0.06, 0.05,  # sustained fall below 0.5 · 0.25: III
                  0.2, 0.22, 0.23, 0.22])  # sustained return: II again
    a = _analyse(ratio, m)
    assert _labels(a) == " ".join(["II"] * 9 + ["III"] * 5 + ["II"] * 4)
    assert np.isclose(a.m_smooth[4], 0.24)  # the outlier is smoothed away
    # raw and single-probe: the outlier alone would end the ARP
    assert _analyse(ratio, m, phase_sustain=1, arp_smoothing=1).labels[4] == "III"
    spans = phase_spans(a.labels, np.arange(18) * 10)
    assert spans == [("II", 0, 90), ("III", 90, 140), ("II", 140, 170)]
    events = phase_events(a, np.arange(18) * 10)
    assert [e[:2] for e in events] == [("edge of stability", 0), ("phase III", 90),
                                       ("ARP (II)", 140)]


def test_the_impurity_peak_counts_from_the_edge_of_stability():
    # K = 2: ⟨‖M‖⟩ starts at 1/2 and has halved before the edge; the ARP is not skipped
    ratio = [0.3, 0.4, 0.6, 0.95, 1.0, 1.1, 1.0, 1.05, 1.0]
    m = [0.5, 0.28, 0.27, 0.25, 0.24, 0.24, 0.23, 0.22, 0.22]
    assert _labels(_analyse(ratio, m)) == " ".join(["I"] * 3 + ["II"] * 6)


def test_missing_probes_neither_confirm_nor_break_a_crossing():
    nan = np.nan
    ratio = [0.5, 1.0, nan, 1.0, nan, 1.0, 0.5]
    a = _analyse(ratio)
    assert a.eos_index == 1
    assert _labels(a) == "I II II II II II II"
    assert _analyse([0.5, 1.0, nan, 1.0, 0.5]).eos_index is None  # only two valid probes
    assert _analyse([nan, nan]).eos_index is None
    assert list(_analyse([]).labels) == []


def test_running_median_is_centred_clipped_and_skips_nan():
    x = np.array([1.0, 5.0, np.nan, 2.0, 3.0, 100.0])
    out = running_median(x, 3)
    assert np.isnan(out[2])
    assert list(out[[0, 1, 3, 4, 5]]) == [3.0, 2.0, 3.0, 3.0, 51.5]
    assert np.array_equal(running_median(x, 1)[[0, 1]], [1.0, 5.0])


def _median_reference(x, window):
    """pandas' centred rolling median of the finite entries (windows clipped at the ends)."""
    import pandas as pd

    ok = np.isfinite(x)
    width = window // 2 * 2 + 1
    out = np.full(len(x), np.nan)
    out[ok] = pd.Series(x[ok]).rolling(width, center=True, min_periods=1).median().to_numpy()
    return out


def _hysteresis_reference(cond, valid, k, start):
    """Probe by probe: switch at i when the next k valid probes (i included) all differ."""
    idx = list(np.flatnonzero(valid))
    state, s = {}, start
    for j, i in enumerate(idx):
        ahead = [bool(cond[q]) for q in idx[j : j + k]]
        if len(ahead) == k and all(a != s for a in ahead):
            s = not s
        state[i] = s
    out, s = [], start
    for i in range(len(valid)):
        s = state.get(i, s)
        out.append(s)
    return np.array(out, dtype=bool)


def test_running_median_and_hysteresis_match_brute_force_references():
    from ijr_core.phases import _hysteresis

    rng = np.random.default_rng(0)
    for n in range(0, 15):
        for window in (1, 2, 3, 4, 5, 7):
            x = rng.normal(size=n)
            x[rng.random(n) < 0.2] = np.nan
            np.testing.assert_allclose(running_median(x, window), _median_reference(x, window))
        for k in (1, 2, 3):
            cond, valid = rng.random(n) < 0.5, rng.random(n) < 0.8
            for start in (False, True):
                assert np.array_equal(_hysteresis(cond, valid, k, start),
                                      _hysteresis_reference(cond, valid, k, start))


def test_run_uses_its_config_rules():
    run = Run(RunConfig(phase_sustain=1))
    for step, r in enumerate([0.2, 1.0, 0.5, 0.5, 0.5]):
        run.append_scalars(step * 10, sharpness=4 * r, two_over_eta=4.0, m_norm_mean=0.2)
    assert run.phase_spans() == [("I", 0, 10), ("II", 10, 40)]
    run.config = RunConfig()  # three probes needed: the single one is not the edge
    assert run.phase_spans() == [("I", 0, 40)]
    assert run.phase_analysis(phase_sustain=1).eos_index == 1


# --------------------------------------------------------------------------- seeded runs


def _train(**kw):
    from ijr_core.trainer import train

    run = train(RunConfig(device="cpu", **kw))
    assert run.status == "finished", run.meta.get("error")
    return run


def test_seeded_catapult_at_initialisation_is_reported_and_stays_in_phase_i():
    # softplus 64×3 at η = 1: ‖H‖ ≈ 3-4 · 2/η at initialisation (seeds 0-3), ≤ 0.5 · 2/η ten
    # steps later (the loss catapults). The old single-probe rule called step 0 the edge.
    run = _train(dataset="digits", activation="softplus", width=64, depth=3, lr=1.0,
                 n_train=200, n_test=50, probe_size=200, steps=20, probe_every=10)
    a = run.phase_analysis()
    ratio = a.ratio
    assert ratio[0] > 2.0 and ratio[1] < 0.9  # the setting does catapult (init is seeded)
    assert a.catapult is not None and a.catapult[:2] == (0, 1)
    assert a.eos_index is None and set(a.labels) == {"I"}
    assert run.phase_analysis(phase_sustain=1).labels[0] != "I"  # at or above the edge
    assert phase_events(a, run.scalars["step"])[0][:2] == ("catapult", 0)


@pytest.mark.parametrize("lr, expected", [(0.5, "I"), (2.0, "II"), (5.0, "U")])
def test_seeded_linear_squared_loss_run_is_unstable_far_above_the_line(lr, expected):
    # Linear model, squared loss: H = ⟨x̃x̃ᵀ⟩ ⊗ I_K is constant, so ‖H‖/(2/η) = η‖H‖/2 is
    # the same at every probe (no chaos): ‖H‖ ≈ 1.05 on these blobs, so η = 0.5 / 2 / 5 sit
    # below / at / far above the edge (at η = 5 the loss grows ×16 per step).
    run = _train(dataset="blobs", n_classes=3, model="linear", loss="mse", lr=lr,
                 label_noise=0.0, n_train=100, n_test=50, probe_size=100, steps=4,
                 probe_every=1)
    ratio = run.phase_analysis().ratio
    assert np.ptp(ratio) < 1e-3 * ratio[0]
    assert set(run.phases()) == {expected}
