"""Datasets by name: `load_dataset(config) -> Dataset`.

Every loader returns raw arrays; `load_dataset` then applies the same steps to all:

1. subsets: n_train training and n_test test samples (see each loader for which ones);
2. label noise: ``round(label_noise · n_train)`` training samples, chosen with
   ``data_seed``, get a label drawn uniformly from the K classes. A replaced label keeps
   its value with probability 1/K, so the expected fraction of changed labels is
   label_noise · (K − 1)/K; ``Dataset.noisy`` is True exactly where the label changed;
3. standardisation (``standardize=True``): x ← (x − μ)/σ per feature with μ, σ of the
   training set, σ < 1e-6 replaced by 1 (constant features stay constant, no 0/0).

Layout: X is always flat, (N, D) float32, so mlp/linear and the curvature code see one
shape. Image data also sets ``image_shape = (C, H, W)`` (pixels in C-major order, like
``x.reshape(C, H, W)``); the cnn model unflattens its input to that shape. Pixel values are
scaled to [0, 1] before standardisation. Tensors live on the CPU; the trainer moves them.

Files are never downloaded: mnist / fashion-mnist read IDX files (raw or .gz) and cifar10
the binary batches from the folder ``config.data_path``; csv reads the file at
``config.data_path``. Problems raise `DatasetError` naming the file and what is wrong,
never quoting what the file holds.

Data files are bounded before they are read (``MAX_FILE_BYTES``, regular files only; a
CSV by ``MAX_CSV_BYTES``, its rows, columns, field length and labels by config.LIMITS),
and :func:`check_data_path` tells whether a config reads only inside allow-listed folders
(the app checks it before every load: a path in a link or an uploaded run must not read
the server's files).

Layout: this module holds :class:`Dataset` and :func:`load_dataset` (the common steps) and
keeps every name below importable from here; the registry, :class:`RawData` and the
shared helpers are in :mod:`ijr_core.data_registry`, the loaders in
:mod:`ijr_core.data_builtin` (digits, toy sets), :mod:`ijr_core.data_files` (mnist,
fashion-mnist, cifar10, check_data_path) and :mod:`ijr_core.data_csv` (csv).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

# The loader modules register themselves in DATASETS when imported.
from ijr_core import data_builtin, data_csv  # noqa: F401
from ijr_core.config import RunConfig
from ijr_core.data_csv import MAX_CSV_BYTES
from ijr_core.data_files import (
    CIFAR10_NAMES,
    FASHION_NAMES,
    MAX_FILE_BYTES,
    check_data_path,
    read_idx,
)
from ijr_core.data_registry import DATASETS, DatasetError, RawData, data_rng, register

__all__ = ["DATASETS", "Dataset", "DatasetError", "RawData", "check_data_path",
           "load_dataset",
           # from the loader modules, for the code that imports them from here
           "CIFAR10_NAMES", "FASHION_NAMES", "MAX_CSV_BYTES", "MAX_FILE_BYTES",
           "add_label_noise", "data_rng", "read_idx", "register",
           "standardization_stats"]


@dataclass(frozen=True, eq=False)
class Dataset:
    """Train/test tensors plus what the model and the views need to know.

    X_* are (N, D) float32, y_* (N,) int64 in [0, n_classes). ``y_train`` holds the
    (possibly noisy) labels used for training, ``y_train_clean`` the original ones and
    ``noisy = (y_train != y_train_clean)`` as a numpy bool array. ``input_shape`` is the
    shape of one row of X, ``image_shape`` (C, H, W) for image data else None;
    ``mean``/``std`` the standardisation statistics (zeros/ones when not standardised),
    so new points (e.g. a 2-D grid) map as (x − mean)/std.
    """

    name: str
    X_train: torch.Tensor
    y_train: torch.Tensor
    X_test: torch.Tensor
    y_test: torch.Tensor
    n_classes: int
    input_shape: tuple[int, ...]
    class_names: list[str]
    noisy: np.ndarray
    is_image: bool
    is_2d: bool
    image_shape: tuple[int, int, int] | None
    y_train_clean: torch.Tensor
    mean: np.ndarray
    std: np.ndarray

    @property
    def n_train(self) -> int:
        return int(self.X_train.shape[0])

    @property
    def n_test(self) -> int:
        return int(self.X_test.shape[0])


def load_dataset(config: RunConfig) -> Dataset:
    """Load ``config.dataset`` and apply subsets, label noise and standardisation."""
    raw = DATASETS[config.dataset](config)
    X_tr, X_te = raw.X_train.astype(np.float32), raw.X_test.astype(np.float32)
    y_clean = raw.y_train.astype(np.int64)
    k = len(raw.class_names)
    if k < 2:
        raise DatasetError(f"{config.dataset}: needs at least 2 classes, found {k}")
    if len(X_tr) != config.n_train or len(X_te) != config.n_test:
        raise DatasetError(f"{config.dataset}: loader returned {len(X_tr)}/{len(X_te)} samples")
    y_noisy = add_label_noise(y_clean, k, config.label_noise, data_rng(config, "label_noise"))
    mean, std = standardization_stats(X_tr, config.standardize)
    X_tr, X_te = (X_tr - mean) / std, (X_te - mean) / std
    d = X_tr.shape[1]
    return Dataset(
        name=config.dataset,
        X_train=torch.from_numpy(np.ascontiguousarray(X_tr, dtype=np.float32)),
        y_train=torch.from_numpy(y_noisy),
        X_test=torch.from_numpy(np.ascontiguousarray(X_te, dtype=np.float32)),
        y_test=torch.from_numpy(raw.y_test.astype(np.int64)),
        n_classes=k,
        input_shape=(d,),
        class_names=list(raw.class_names),
        noisy=y_noisy != y_clean,
        is_image=raw.image_shape is not None,
        is_2d=d == 2,
        image_shape=raw.image_shape,
        y_train_clean=torch.from_numpy(y_clean),
        mean=mean,
        std=std,
    )


def add_label_noise(y: np.ndarray, k: int, fraction: float, rng) -> np.ndarray:
    """Replace ``round(fraction · N)`` labels, chosen without replacement, by U{0..k−1}."""
    y = y.copy()
    n_replace = int(round(fraction * len(y)))
    idx = rng.choice(len(y), size=n_replace, replace=False)
    y[idx] = rng.integers(0, k, size=n_replace)
    return y


def standardization_stats(X: np.ndarray, standardize: bool) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature (μ, σ) of X (σ < 1e-6 -> 1), or (0, 1) when not standardising."""
    if not standardize:
        return np.zeros(X.shape[1], np.float32), np.ones(X.shape[1], np.float32)
    mean = X.mean(axis=0, dtype=np.float64)
    std = X.std(axis=0, dtype=np.float64)
    std = np.where(std < 1e-6, 1.0, std)
    return mean.astype(np.float32), std.astype(np.float32)
