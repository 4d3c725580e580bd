"""Synthetic runs shaped like SCIENCE.md's story, for chart tests and benchmarks.

No training: the curves are closed-form caricatures (sharpness rising to 2/η, ⟨‖M‖⟩ an
inverted U from 1/K, ‖J‖² shrinking), per-sample values drawn around them with
0 ≤ λ* ≤ ‖M‖ ≤ 1/2 enforced. Use real runs for anything scientific.
"""

from __future__ import annotations

import numpy as np

from ijr_core.config import RunConfig
from ijr_core.run import Run


def synthetic_run(
    n_samples: int = 200,
    n_checkpoints: int = 30,
    steps: int = 600,
    n_classes: int = 10,
    lr: float = 0.5,
    lr_change: tuple[int, float] | None = None,
    seed: int = 0,
    with_params: bool = False,
) -> Run:
    """A finished Run with ``n_checkpoints`` per-sample checkpoints of ``n_samples`` samples
    and one scalar row per checkpoint; ``lr_change=(step, lr)`` switches η mid-run."""
    rng = np.random.default_rng(seed)
    config = RunConfig(steps=steps, lr=lr, probe_every=max(1, steps // max(n_checkpoints - 1, 1)))
    labels = rng.integers(0, n_classes, n_samples)
    noisy = rng.random(n_samples) < 0.3
    run = Run(
        config,
        sample_ids=np.arange(n_samples),
        sample_labels=labels,
        sample_noisy=noisy,
        checkpoint_limit=max(n_checkpoints, 2),
        meta={"n_classes": n_classes},
    )
    hardness = rng.random(n_samples) + noisy  # noisy samples stay impure longer
    for step in np.linspace(0, steps, n_checkpoints).round().astype(int):
        t = step / steps
        eta = lr_change[1] if lr_change and step >= lr_change[0] else lr
        two = 2.0 / eta
        h = two * min(1.0, 0.2 + 1.6 * t) * (1 + 0.03 * np.sin(40 * t))
        m_mean = 1 / n_classes + 0.2 * np.sin(np.pi * min(t * 1.3, 1.0))
        decay = np.exp(-4 * t / (0.3 + hardness))
        m = np.clip(m_mean * decay * 2 * rng.random(n_samples) ** 0.5, 0, 0.5).astype(np.float32)
        lam = (m * rng.random(n_samples)).astype(np.float32)
        jac = (5 * np.exp(-t) * (1 + rng.random(n_samples))).astype(np.float32)
        p_max = np.clip(1 - m * 1.5, 1 / n_classes, 1).astype(np.float32)
        correct = (rng.random(n_samples) < 0.3 + 0.7 * t * (~noisy)).astype(np.float32)
        run.append_scalars(
            int(step),
            lr=eta,
            two_over_eta=two,
            sharpness=h,
            gn_sharpness=0.97 * h,
            lambda_star_jac=0.97 * h,
            m_norm_mean=float(m.mean()),
            train_loss=2.3 * (1 - 0.9 * t),
            test_loss=2.3 * (1 - 0.5 * t),
            train_acc=0.1 + 0.8 * t,
            test_acc=0.1 + 0.5 * t,
            jac_spectral_sq_mean=float(jac.mean()),
            jac_frobenius_sq_mean=float(2 * jac.mean()),
        )
        params = {"w": rng.standard_normal((3, 2)).astype(np.float32)} if with_params else None
        run.append_checkpoint(
            int(step),
            {
                "m_norm": m,
                "lambda_star": lam,
                "jac_spectral_sq": jac,
                "jac_frobenius_sq": 2 * jac,
                "p_max": p_max,
                "correct": correct,
            },
            params,
        )
    run.set_status("finished")
    return run
