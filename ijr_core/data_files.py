"""The datasets read from files in ``data_path`` (never downloaded): MNIST and
Fashion-MNIST from IDX files (raw or .gz), CIFAR-10 from its binary batches; and
:func:`check_data_path`, whether a config reads only inside allow-listed folders. Every
file is bounded (``MAX_FILE_BYTES``, regular files only) before it is read, and errors
name the file and what is wrong, never what it holds."""

from __future__ import annotations

import gzip
import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from ijr_core.config import FILE_DATASETS, RunConfig
from ijr_core.data_registry import DatasetError, RawData, check_count, digit_names, register

__all__ = ["CIFAR10_NAMES", "FASHION_NAMES", "MAX_FILE_BYTES", "check_data_path",
           "read_cifar_batch", "read_idx", "regular_file"]

MAX_FILE_BYTES = 256 * 2**20  # one IDX / CIFAR file, after gunzip (MNIST train: 47 MB)


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


def regular_file(path: Path, limit: int) -> None:
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
    regular_file(path, MAX_FILE_BYTES)
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
    check_count(config, "n_train", len(X_tr), f"train-images in {folder}")
    check_count(config, "n_test", len(X_te), f"t10k-images in {folder}")
    scale = np.float32(1 / 255)
    return RawData(
        X_tr[: config.n_train] * scale, y_tr[: config.n_train], X_te[: config.n_test] * scale,
        y_te[: config.n_test], class_names=class_names, image_shape=(1, *hw),
    )


@register("mnist")
def _mnist(config: RunConfig) -> RawData:
    """MNIST from IDX files in data_path (train-images-idx3-ubyte[.gz], ...)."""
    return _idx_dataset(config, digit_names())


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
