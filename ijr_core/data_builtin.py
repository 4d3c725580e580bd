"""The datasets that need no file: scikit-learn's bundled 8×8 digits and the generated 2-D
toy sets (moons, circles, blobs, spirals), each drawn from ``data_seed``."""

from __future__ import annotations

from functools import cache

import numpy as np

from ijr_core.config import RunConfig
from ijr_core.data_registry import RawData, data_rng, digit_names, register, split_first


@register("digits")
def _digits(config: RunConfig) -> RawData:
    """scikit-learn's bundled 8×8 digits (1797 samples): the first n_train train, the
    next n_test test, pixels scaled from 0..16 to [0, 1]."""
    X, y = _digits_arrays()
    parts = split_first(X, y, config, "scikit-learn's digits")
    return RawData(*parts, class_names=digit_names(), image_shape=(1, 8, 8))


@cache
def _digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """All 1797 digits, read once per process (read-only arrays)."""
    from sklearn.datasets import load_digits

    d = load_digits()
    X, y = d.data / 16.0, d.target
    X.flags.writeable = y.flags.writeable = False
    return X, y


def _generated(config: RunConfig, make, k: int) -> RawData:
    """n_train + n_test points from make(n, rng) -> (X, y), first n_train for training."""
    n = config.n_train + config.n_test
    X, y = make(n, data_rng(config, "generate"))
    X_tr, y_tr, X_te, y_te = split_first(X, y, config, "the generator")
    return RawData(X_tr, y_tr, X_te, y_te, class_names=[str(i) for i in range(k)])


def _shuffled_labels(n: int, k: int, rng) -> np.ndarray:
    """Balanced labels (counts differ by at most 1) in random order."""
    return rng.permutation(np.arange(n) % k)


@register("moons")
def _moons(config: RunConfig) -> RawData:
    """Two interleaving half circles (sklearn make_moons) with Gaussian noise σ = noise."""
    from sklearn.datasets import make_moons

    def make(n, rng):
        seed = int(rng.integers(2**31 - 1))
        return make_moons(n_samples=n, noise=config.noise, random_state=seed)

    return _generated(config, make, 2)


@register("circles")
def _circles(config: RunConfig) -> RawData:
    """Two concentric circles of radii 1 and 0.5 (sklearn make_circles), noise σ = noise."""
    from sklearn.datasets import make_circles

    def make(n, rng):
        seed = int(rng.integers(2**31 - 1))
        return make_circles(n_samples=n, noise=config.noise, factor=0.5, random_state=seed)

    return _generated(config, make, 2)


@register("blobs")
def _blobs(config: RunConfig) -> RawData:
    """K isotropic Gaussians with std `noise`, centres evenly spaced on the unit circle."""
    k = config.n_classes

    def make(n, rng):
        y = _shuffled_labels(n, k, rng)
        angle = 2 * np.pi * np.arange(k) / k
        centres = np.stack([np.cos(angle), np.sin(angle)], axis=1)
        return centres[y] + config.noise * rng.standard_normal((n, 2)), y

    return _generated(config, make, k)


@register("spirals")
def _spirals(config: RunConfig) -> RawData:
    """K interleaved spiral arms: for t ~ U(0, 1), radius t and angle 2πc/K + 3πt for
    arm c, plus Gaussian noise of std `noise` on each coordinate."""
    k = config.n_classes

    def make(n, rng):
        y = _shuffled_labels(n, k, rng)
        t = rng.uniform(0.0, 1.0, n)
        angle = 2 * np.pi * y / k + 3 * np.pi * t
        X = t[:, None] * np.stack([np.cos(angle), np.sin(angle)], axis=1)
        return X + config.noise * rng.standard_normal((n, 2)), y

    return _generated(config, make, k)
