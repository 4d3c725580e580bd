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
"""

from __future__ import annotations

import csv
import gzip
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
import torch

from ijr_core.config import (
    DATASET_NAMES,
    FILE_DATASETS,
    MAX_CLASSES,
    MAX_FEATURES,
    MAX_SAMPLES,
    RunConfig,
    registrar,
)

__all__ = ["DATASETS", "Dataset", "DatasetError", "RawData", "check_data_path",
           "load_dataset"]

MAX_FILE_BYTES = 256 * 2**20  # one IDX / CIFAR file, after gunzip (MNIST train: 47 MB)
MAX_CSV_BYTES = 32 * 2**20
MAX_CSV_FIELD = 1000  # characters of one CSV cell


class DatasetError(ValueError):
    """A dataset cannot be loaded: missing or malformed file, too few samples, ..."""


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


_STREAMS = ("generate", "label_noise", "shuffle")


def data_rng(config: RunConfig, purpose: str) -> np.random.Generator:
    """Independent generator per purpose, all derived from ``config.data_seed`` (sharing one
    stream would correlate, e.g., which samples get noisy labels with their class)."""
    return np.random.default_rng([config.data_seed, _STREAMS.index(purpose)])


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


def _split(X, y, config: RunConfig, available_what: str) -> tuple[np.ndarray, ...]:
    """First n_train samples for training, the next n_test for testing."""
    need = config.n_train + config.n_test
    if need > len(X):
        raise DatasetError(
            f"{config.dataset}: n_train + n_test = {need} exceeds the {len(X)} samples "
            f"available in {available_what}"
        )
    tr, te = slice(0, config.n_train), slice(config.n_train, need)
    return X[tr], y[tr], X[te], y[te]


def _digit_names() -> list[str]:
    return [str(i) for i in range(10)]


# -- bundled and generated data ------------------------------------------------------

@register("digits")
def _digits(config: RunConfig) -> RawData:
    """scikit-learn's bundled 8×8 digits (1797 samples): the first n_train train, the
    next n_test test, pixels scaled from 0..16 to [0, 1]."""
    X, y = _digits_arrays()
    parts = _split(X, y, config, "scikit-learn's digits")
    return RawData(*parts, class_names=_digit_names(), image_shape=(1, 8, 8))


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
    X_tr, y_tr, X_te, y_te = _split(X, y, config, "the generator")
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


# -- files ---------------------------------------------------------------------------

def check_data_path(config: RunConfig, roots: Iterable[str | os.PathLike]) -> None:
    """DatasetError unless ``config`` reads no file, or its data_path (links resolved) lies
    inside one of ``roots``. Decided from the path alone, before anything is opened, so the
    answer never tells whether an outside path exists. (The CLI does not call it: its user
    may read any file they can.)"""
    if config.dataset not in FILE_DATASETS or not config.data_path:
        return
    resolved = Path(config.data_path).expanduser().resolve()
    for root in roots:
        r = Path(root).expanduser().resolve()
        if resolved == r or r in resolved.parents:
            return
    raise DatasetError(
        f"{config.dataset}: data_path {config.data_path[:200]!r} is not allowed: it must be a "
        "file you uploaded or lie in an allow-listed data folder (the app reads no other file "
        "on the server)"
    )


def _regular_file(path: Path, limit: int) -> None:
    """DatasetError unless ``path`` is a regular file of at most ``limit`` bytes."""
    try:
        st = path.stat()
    except FileNotFoundError:
        raise DatasetError(f"{path}: file not found") from None
    except OSError as e:
        raise DatasetError(f"{path}: cannot read ({type(e).__name__})") from None
    import stat

    if not stat.S_ISREG(st.st_mode):
        raise DatasetError(f"{path}: not a regular file")
    if st.st_size > limit:
        raise DatasetError(f"{path}: {st.st_size / 2**20:.1f} MiB; at most {limit / 2**20:.0f} MiB")


def _folder(config: RunConfig) -> Path:
    path = Path(config.data_path).expanduser()
    if not path.is_dir():
        raise DatasetError(f"{config.dataset}: data_path {str(path)!r} is not a folder")
    return path


def _find(folder: Path, names: list[str], what: str) -> Path:
    """First existing file among `names` in folder, folder/raw or folder/*/raw."""
    def places():
        yield from (folder, folder / "raw")
        subs = sorted(p for p in folder.iterdir() if p.is_dir())
        yield from (p / "raw" for p in subs)
        yield from subs

    for place in places():
        for name in names:
            if (place / name).is_file():
                return place / name
    raise DatasetError(f"{what}: none of {', '.join(names)} found in {str(folder)!r}")


def _read_bytes(path: Path) -> bytes:
    """The file's bytes (gunzipped for .gz), at most MAX_FILE_BYTES of them."""
    _regular_file(path, MAX_FILE_BYTES)
    try:
        with (gzip.open(path, "rb") if path.suffix == ".gz" else path.open("rb")) as f:
            data = f.read(MAX_FILE_BYTES + 1)
    except (OSError, EOFError) as e:
        raise DatasetError(f"{path}: cannot read ({type(e).__name__})") from None
    if len(data) > MAX_FILE_BYTES:
        raise DatasetError(f"{path}: unpacks to more than {MAX_FILE_BYTES // 2**20} MiB")
    return data


def read_idx(path: Path) -> np.ndarray:
    """Array of an IDX file (MNIST format) of unsigned bytes, raw or gzip-compressed.

    Header: two zero bytes, type code 0x08 (ubyte), number of dimensions d, then d
    big-endian uint32 sizes; the data are prod(sizes) bytes.
    """
    data = _read_bytes(path)
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise DatasetError(f"{path}: not an IDX file (its first bytes are not an IDX header)")
    if data[2] != 0x08:
        raise DatasetError(f"{path}: IDX type code 0x{data[2]:02x}, only 0x08 (ubyte) supported")
    ndim = data[3]
    header = 4 + 4 * ndim
    if ndim == 0 or len(data) < header:
        raise DatasetError(f"{path}: truncated IDX header ({ndim} dimensions)")
    shape = tuple(int(s) for s in np.frombuffer(data[4:header], dtype=">u4"))
    size = int(np.prod(shape))
    if len(data) - header != size:
        raise DatasetError(
            f"{path}: wrong size: header says {shape} = {size} bytes, file has "
            f"{len(data) - header}"
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape)


def _idx_pair(folder: Path, prefix: str, what: str):
    """(images (N, H·W) uint8, labels (N,), (H, W)) of the IDX files `prefix`-*."""
    def names(kind):
        base = [f"{prefix}-{kind}-idx{3 if kind == 'images' else 1}-ubyte",
                f"{prefix}-{kind}.idx{3 if kind == 'images' else 1}-ubyte"]
        return [n + ext for n in base for ext in ("", ".gz")]

    img_path = _find(folder, names("images"), what)
    lab_path = _find(folder, names("labels"), what)
    images, labels = read_idx(img_path), read_idx(lab_path)
    if images.ndim != 3:
        raise DatasetError(f"{img_path}: expected 3 dimensions (N, H, W), got {images.shape}")
    if labels.ndim != 1:
        raise DatasetError(f"{lab_path}: expected 1 dimension (N,), got {labels.shape}")
    if len(images) != len(labels):
        raise DatasetError(
            f"{img_path}: {len(images)} images but {lab_path.name} has {len(labels)} labels"
        )
    if labels.size and labels.max() > 9:
        raise DatasetError(f"{lab_path}: label {labels.max()} outside 0..9")
    return images.reshape(len(images), -1), labels, images.shape[1:]


def _idx_dataset(config: RunConfig, class_names: list[str]) -> RawData:
    """First n_train samples of the train-* files, first n_test of the t10k-* files."""
    folder = _folder(config)
    X_tr, y_tr, hw = _idx_pair(folder, "train", config.dataset)
    X_te, y_te, hw_te = _idx_pair(folder, "t10k", config.dataset)
    if hw != hw_te:
        raise DatasetError(f"{config.dataset}: train images {hw} but test images {hw_te}")
    _check_count(config, "n_train", len(X_tr), f"train-images in {folder}")
    _check_count(config, "n_test", len(X_te), f"t10k-images in {folder}")
    scale = np.float32(1 / 255)
    return RawData(
        X_tr[: config.n_train] * scale, y_tr[: config.n_train], X_te[: config.n_test] * scale,
        y_te[: config.n_test], class_names=class_names, image_shape=(1, *hw),
    )


def _check_count(config: RunConfig, what: str, available: int, where: str) -> None:
    wanted = getattr(config, what)
    if wanted > available:
        raise DatasetError(f"{config.dataset}: {what} = {wanted} but only {available} in {where}")


@register("mnist")
def _mnist(config: RunConfig) -> RawData:
    """MNIST from IDX files in data_path (train-images-idx3-ubyte[.gz], ...)."""
    return _idx_dataset(config, _digit_names())


FASHION_NAMES = [
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
]


@register("fashion-mnist")
def _fashion(config: RunConfig) -> RawData:
    """Fashion-MNIST from IDX files in data_path (same file names as MNIST)."""
    return _idx_dataset(config, FASHION_NAMES)


CIFAR10_NAMES = [
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
]
_CIFAR_RECORD = 1 + 3 * 32 * 32


def read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(images (N, 3072) uint8 in C-major 3×32×32 order, labels (N,)) of a binary batch:
    records of one label byte followed by 1024 red, 1024 green and 1024 blue bytes."""
    data = _read_bytes(path)
    if len(data) == 0 or len(data) % _CIFAR_RECORD:
        raise DatasetError(
            f"{path}: wrong size {len(data)} bytes, not a multiple of the {_CIFAR_RECORD}-byte "
            "CIFAR-10 record"
        )
    rec = np.frombuffer(data, dtype=np.uint8).reshape(-1, _CIFAR_RECORD)
    labels = rec[:, 0]
    if labels.max() > 9:
        raise DatasetError(f"{path}: label {labels.max()} outside 0..9 (not a CIFAR-10 batch)")
    return rec[:, 1:], labels


def _cifar_take(folder: Path, names: list[str], n: int, what: str):
    """The first n records of the batches `names`, read in order, as many as needed."""
    xs, ys, have = [], [], 0
    for name in names:
        if have >= n:
            break
        x, y = read_cifar_batch(_find(folder, [name], "cifar10"))
        xs.append(x)
        ys.append(y)
        have += len(y)
    if have < n:
        raise DatasetError(f"cifar10: {what} wants {n} samples but {', '.join(names)} hold {have}")
    return np.concatenate(xs)[:n] / np.float32(255.0), np.concatenate(ys)[:n]


@register("cifar10")
def _cifar10(config: RunConfig) -> RawData:
    """CIFAR-10 binary version: first n_train records of data_batch_1..5.bin, first
    n_test of test_batch.bin (also found inside a cifar-10-batches-bin subfolder)."""
    folder = _folder(config)
    sub = folder / "cifar-10-batches-bin"
    folder = sub if sub.is_dir() else folder
    train = [f"data_batch_{i}.bin" for i in range(1, 6)]
    X_tr, y_tr = _cifar_take(folder, train, config.n_train, "n_train")
    X_te, y_te = _cifar_take(folder, ["test_batch.bin"], config.n_test, "n_test")
    return RawData(X_tr, y_tr, X_te, y_te, class_names=CIFAR10_NAMES, image_shape=(3, 32, 32))


@register("csv")
def _csv(config: RunConfig) -> RawData:
    """Numeric feature columns plus one label column (header name, integer index, or the
    last column). A header row is detected when its feature cells are not all numbers.
    Labels may be any strings; classes are sorted (numerically when all are integers).
    Rows are shuffled with data_seed, then split n_train / n_test."""
    path = Path(config.data_path).expanduser()
    rows = _read_csv_rows(path)
    header = rows[0] if _has_header(rows, config.csv_label_column) else None
    body = rows[1:] if header is not None else rows
    col = _label_column(path, header, len(rows[0]), config.csv_label_column)
    for i, r in enumerate(body):
        if len(r) != len(rows[0]):
            raise DatasetError(f"{path}: line {i + 1 + (header is not None)} has {len(r)} "
                               f"columns, expected {len(rows[0])}")
    labels = [r[col].strip() for r in body]
    distinct = set(labels)
    if len(distinct) > MAX_CLASSES:
        raise DatasetError(f"{path}: the label column has {len(distinct)} different labels; "
                           f"at most {MAX_CLASSES} classes")
    if len(distinct) < 2:
        raise DatasetError(f"{path}: the label column has fewer than 2 classes")
    features = _numeric_features(path, header, body, col)
    names = sorted(distinct, key=int if all(map(_is_int, distinct)) else None)
    index = {name: i for i, name in enumerate(names)}
    y = np.array([index[s] for s in labels], dtype=np.int64)
    order = data_rng(config, "shuffle").permutation(len(y))
    X_tr, y_tr, X_te, y_te = _split(features[order], y[order], config, str(path))
    return RawData(X_tr, y_tr, X_te, y_te, class_names=names)


def _read_csv_rows(path: Path) -> list[list[str]]:
    """Non-empty rows; bounded: a regular file of at most MAX_CSV_BYTES, at most
    MAX_SAMPLES + 1 rows and MAX_FEATURES + 1 columns, cells of at most MAX_CSV_FIELD
    characters (checked while reading, so a hostile file stops early)."""
    _regular_file(path, MAX_CSV_BYTES)
    rows = []
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:  # -sig: Excel's BOM
            for r in csv.reader(f):
                if not (r and any(c.strip() for c in r)):
                    continue
                if len(r) > MAX_FEATURES + 1:
                    raise DatasetError(f"{path}: a row has {len(r)} columns; at most "
                                       f"{MAX_FEATURES} features and a label")
                if max(map(len, r)) > MAX_CSV_FIELD:
                    raise DatasetError(f"{path}: a cell is longer than {MAX_CSV_FIELD} characters")
                rows.append(r)
                if len(rows) > MAX_SAMPLES + 1:
                    raise DatasetError(f"{path}: more than {MAX_SAMPLES} rows")
    except csv.Error as e:
        too_long = "field larger than field limit" in str(e)
        reason = f"a cell is longer than {MAX_CSV_FIELD} characters" if too_long else "not CSV"
        raise DatasetError(f"{path}: cannot read as CSV ({reason})") from None
    except UnicodeDecodeError as e:
        raise DatasetError(f"{path}: not UTF-8 text (byte {e.start})") from None
    except OSError as e:
        raise DatasetError(f"{path}: cannot read ({type(e).__name__})") from None
    if not rows:
        raise DatasetError(f"{path}: empty file")
    if len(rows[0]) < 2:
        raise DatasetError(f"{path}: needs at least one feature column and a label column")
    return rows


def _has_header(rows: list[list[str]], label_spec: str | None) -> bool:
    """The first row is a header when it names the label column or has more
    non-numeric cells than the second row (labels may be non-numeric in every row)."""
    def non_numeric(row):
        return sum(not _is_number(c) for c in row)

    if non_numeric(rows[0]) == 0:
        return False
    if label_spec is not None and label_spec in [c.strip() for c in rows[0]]:
        return True
    return len(rows) > 1 and non_numeric(rows[0]) > non_numeric(rows[1])


def _label_column(path: Path, header: list[str] | None, n_cols: int, spec: str | None) -> int:
    if spec is None:
        return n_cols - 1
    if header is not None and spec in [h.strip() for h in header]:
        return [h.strip() for h in header].index(spec)
    if _is_int(spec) and -n_cols <= int(spec) < n_cols:
        return int(spec) % n_cols
    known = f"not among the {n_cols} header names" if header else "no header row"
    raise DatasetError(f"{path}: label column {spec!r} not found ({known}; "
                       f"or an index in -{n_cols}..{n_cols - 1})")


def _numeric_features(path: Path, header, body, col: int) -> np.ndarray:
    n_cols = len(body[0]) if body else 0
    out = np.empty((len(body), n_cols - 1), dtype=np.float64)
    feature_cols = [j for j in range(n_cols) if j != col]
    for i, r in enumerate(body):
        for jj, j in enumerate(feature_cols):
            try:
                out[i, jj] = float(r[j])
            except ValueError:  # the cell is not quoted: errors never show file contents
                line = i + 1 + (header is not None)
                raise DatasetError(
                    f"{path}: column {j + 1}, line {line}: the cell is not a number"
                ) from None
    if not np.isfinite(out).all():
        raise DatasetError(f"{path}: features contain NaN or infinity")
    return out


def _is_number(s: str) -> bool:
    try:
        float(s)
    except ValueError:
        return False
    return True


def _is_int(s: str) -> bool:
    try:
        int(s)
    except ValueError:
        return False
    return True
