"""What every dataset loader shares: the registry ``DATASETS`` (name -> loader) and its
``register`` decorator, the loader's result :class:`RawData`, :class:`DatasetError`, the
seeded random streams of the data, and the first-n_train / next-n_test split. The loaders
are in :mod:`ijr_core.data_builtin`, :mod:`ijr_core.data_files` and :mod:`ijr_core.data_csv`;
:func:`ijr_core.data.load_dataset` applies the steps common to all."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ijr_core.config import DATASET_NAMES, RunConfig, registrar

__all__ = ["DATASETS", "DatasetError", "RawData", "check_count", "data_rng", "digit_names",
           "register", "split_first"]


class DatasetError(ValueError):
    """A dataset cannot be loaded: missing or malformed file, too few samples, ..."""


@dataclass(frozen=True)
class RawData:
    """What a loader returns: unprocessed arrays, labels already in [0, K)."""

    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    class_names: list[str]
    image_shape: tuple[int, int, int] | None = None


DATASETS: dict[str, Callable[[RunConfig], RawData]] = {}


register = registrar(DATASETS, DATASET_NAMES)  # @register(name) adds to DATASETS


_STREAMS = ("generate", "label_noise", "shuffle")


def data_rng(config: RunConfig, purpose: str) -> np.random.Generator:
    """Independent generator per purpose, all derived from ``config.data_seed`` (sharing one
    stream would correlate, e.g., which samples get noisy labels with their class)."""
    return np.random.default_rng([config.data_seed, _STREAMS.index(purpose)])


def split_first(X, y, config: RunConfig, available_what: str) -> tuple[np.ndarray, ...]:
    """First n_train samples for training, the next n_test for testing."""
    need = config.n_train + config.n_test
    if need > len(X):
        raise DatasetError(
            f"{config.dataset}: n_train + n_test = {need} exceeds the {len(X)} samples "
            f"available in {available_what}"
        )
    tr, te = slice(0, config.n_train), slice(config.n_train, need)
    return X[tr], y[tr], X[te], y[te]


def check_count(config: RunConfig, what: str, available: int, where: str) -> None:
    """DatasetError unless the config's ``what`` (n_train or n_test) is at most ``available``."""
    wanted = getattr(config, what)
    if wanted > available:
        raise DatasetError(f"{config.dataset}: {what} = {wanted} but only {available} in {where}")


def digit_names() -> list[str]:
    """Class names "0" … "9" (a new list each call)."""
    return [str(i) for i in range(10)]
