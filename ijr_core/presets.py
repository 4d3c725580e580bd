"""Presets: named RunConfigs for the settings of SCIENCE.md, each with what it was measured
to show. A preset is a RunConfig like any other (RunConfig holds every default)."""

from __future__ import annotations

from ijr_core.config import ConfigError, RunConfig

__all__ = ["PRESETS", "preset"]

_DIGITS = RunConfig()  # SCIENCE.md's digits setting: 30 % label noise, η = 0.5
# The default: the digits setting with more label noise and a smaller step, tuned by
# measurement (notes/issue14.md) to show the whole textbook picture in 800 steps.
_EOS = RunConfig(name="edge-of-stability", label_noise=0.5, lr=0.3)

PRESETS: dict[str, RunConfig] = {
    # Digits, 1000 samples, 50 % label noise, MLP 64-128-128-10 tanh, GD η = 0.3. Measured
    # (seeds 0/1/2, 800 steps, ≈ 4 s on a quiet 2-core CPU): ‖H‖ starts at 0.08 · 2/η,
    # crosses 0.9 · 2/η at step ≈ 300, peaks at 1.25-1.36 · 2/η and stays within 0.9-1.2 ·
    # 2/η (median) for ≥ 0.6 of the run; ⟨‖M‖⟩ rises 0.12 → 0.27 and falls to 0.05: phases
    # I (0-300) → II (300-600) → III. With 30 % noise and η = 0.5 ‖H‖ overshoots to 1.6 · 2/η
    # and then falls to 0.4 · 2/η; with less noise it never reaches 2/η (the fit turns pure
    # first).
    "edge-of-stability": _EOS,
    # Same data and η with mini-batches of 32 (epoch-wise shuffling): the full-batch ‖H‖
    # stays at ≤ 0.67 · 2/η over 800 steps for seeds 0-2, where GD overshoots to 1.57 · 2/η.
    "sgd-vs-gd": _DIGITS.replace(name="sgd-vs-gd", optimizer="sgd", batch_size=32),
    # EJR on an SGD base (batch 64); compare with sgd / sam by changing `optimizer` only.
    # Measured after 800 steps, seeds 0/1: final ⟨‖J‖²⟩ ≈ 700 (EJR), ≈ 120 (SAM) against
    # ≈ 1780 (SGD); test accuracy 0.71-0.75 / 0.86-0.88 / 0.67-0.72. At ρ = 0.05 EJR is
    # indistinguishable from SGD (⟨‖J‖²⟩ 1740), hence ρ = 1.
    "ejr-vs-sam": _DIGITS.replace(name="ejr-vs-sam", optimizer="ejr", batch_size=64, rho=1.0),
    # 2-D data for decision maps. Measured (seeds 0-2): ‖H‖ starts near 1.9-2.3, crosses
    # 0.9 · 2/η = 6 by step 175 and then hovers around 2/η = 6.7 (6.0-7.3).
    "two-moons": RunConfig(
        name="two-moons", dataset="moons", n_train=500, n_test=500, noise=0.2,
        label_noise=0.2, width=64, depth=3, lr=0.3, steps=800, probe_every=25,
        probe_size=500,
    ),
    # Base of learning-rate sweeps: the default, probed a little more often. Measured at
    # η = 0.2 / 0.5 / 0.8: ‖H‖ reaches 2/η at step ≈ 540 / 140 / 60; above η ≈ 0.5 it
    # overshoots to ≈ 1.5 · 2/η before settling (the demo sweep stays at η ≤ 0.5).
    "lr-sweep": _EOS.replace(name="lr-sweep", probe_every=20),
}


def preset(name: str) -> RunConfig:
    """The preset ``name``; ConfigError naming the known presets otherwise."""
    if name not in PRESETS:
        raise ConfigError("preset", name, f"known presets: {', '.join(PRESETS)}")
    return PRESETS[name]
