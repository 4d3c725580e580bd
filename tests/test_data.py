"""Datasets: digits, 2-D toys, IDX / CIFAR-10 / CSV files (written here), noise, standardisation."""

from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from ijr_core.config import RunConfig
from ijr_core.data import (
    CIFAR10_NAMES,
    DATASETS,
    FASHION_NAMES,
    Dataset,
    DatasetError,
    add_label_noise,
    load_dataset,
    read_idx,
)

DIGITS = load_digits()


def _check_layout(d: Dataset, n_train: int, n_test: int, k: int, dim: int):
    assert d.X_train.shape == (n_train, dim) and d.X_test.shape == (n_test, dim)
    assert d.X_train.dtype == d.X_test.dtype == torch.float32
    assert d.y_train.shape == (n_train,) and d.y_test.shape == (n_test,)
    assert d.y_train.dtype == d.y_test.dtype == d.y_train_clean.dtype == torch.int64
    assert d.n_classes == k == len(d.class_names)
    assert d.input_shape == (dim,) and d.is_2d == (dim == 2)
    assert isinstance(d.noisy, np.ndarray) and d.noisy.dtype == bool and d.noisy.shape == (n_train,)
    for y in (d.y_train, d.y_test):
        assert 0 <= int(y.min()) and int(y.max()) < k
    assert np.array_equal(d.noisy, (d.y_train != d.y_train_clean).numpy())


# -- digits --------------------------------------------------------------------------

def test_digits_default_is_the_science_setting():
    d = load_dataset(RunConfig())
    _check_layout(d, 1000, 500, 10, 64)
    assert d.name == "digits" and d.is_image and d.image_shape == (1, 8, 8)
    assert d.class_names == [str(i) for i in range(10)]
    # the first 1000 samples train, the next 500 test, test labels untouched
    assert torch.equal(d.y_train_clean, torch.from_numpy(DIGITS.target[:1000]))
    assert torch.equal(d.y_test, torch.from_numpy(DIGITS.target[1000:1500]))


def test_standardisation_uses_training_statistics():
    d = load_dataset(RunConfig())
    raw_tr, raw_te = DIGITS.data[:1000] / 16, DIGITS.data[1000:1500] / 16
    mu, sd = raw_tr.mean(0), raw_tr.std(0)
    varying = sd > 1e-6
    X = d.X_train.numpy()
    np.testing.assert_allclose(X.mean(0), 0, atol=1e-5)
    np.testing.assert_allclose(X.std(0)[varying], 1, rtol=1e-4)
    assert np.all(X[:, ~varying] == 0) and (~varying).any()  # constant pixels, no 0/0
    np.testing.assert_allclose(d.mean, mu, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(d.std[varying], sd[varying], rtol=1e-5)
    assert np.all(d.std[~varying] == 1)
    np.testing.assert_allclose(d.X_test.numpy(), (raw_te - d.mean) / d.std, atol=1e-5)


def test_no_standardisation_keeps_pixels_in_unit_range():
    d = load_dataset(RunConfig(standardize=False, n_train=100, n_test=50))
    np.testing.assert_allclose(d.X_train.numpy(), DIGITS.data[:100] / 16, atol=1e-7)
    assert np.all(d.mean == 0) and np.all(d.std == 1)


def test_digits_too_many_samples_is_a_clear_error():
    with pytest.raises(DatasetError, match="1800 exceeds the 1797 samples"):
        load_dataset(RunConfig(n_train=1300, n_test=500))


# -- label noise ---------------------------------------------------------------------

def test_label_noise_rate_and_reproducibility():
    c = RunConfig(dataset="blobs", n_classes=4, n_train=4000, n_test=10, label_noise=0.5)
    d = load_dataset(c)
    # round(0.5 · 4000) labels redrawn uniformly: (K − 1)/K of them change
    assert abs(d.noisy.mean() - 0.5 * 3 / 4) < 0.03
    again = load_dataset(c.replace(seed=7))  # init seed does not touch the data
    assert torch.equal(again.y_train, d.y_train) and torch.equal(again.X_train, d.X_train)
    other = load_dataset(c.replace(data_seed=1))
    assert not np.array_equal(other.noisy, d.noisy)


def test_label_noise_is_independent_of_class():
    c = RunConfig(dataset="blobs", n_classes=4, n_train=4000, n_test=10, label_noise=0.4)
    d = load_dataset(c)
    per_class = [d.noisy[d.y_train_clean.numpy() == j].mean() for j in range(4)]
    np.testing.assert_allclose(per_class, 0.4 * 3 / 4, atol=0.05)


def test_class_count_comes_from_config_not_from_the_sample():
    d = load_dataset(RunConfig(dataset="spirals", n_classes=5, n_train=3, n_test=1))
    assert d.n_classes == 5 and d.class_names == ["0", "1", "2", "3", "4"]


def test_digits_label_noise_matches_science_setting():
    d = load_dataset(RunConfig())
    assert 0.23 < d.noisy.mean() < 0.31  # expectation 0.3 · 9/10 = 0.27
    assert not load_dataset(RunConfig(label_noise=0.0)).noisy.any()


def test_add_label_noise_replaces_an_exact_count_uniformly():
    y = np.zeros(100_000, dtype=np.int64)
    out = add_label_noise(y, 5, 0.4, np.random.default_rng(0))
    counts = np.bincount(out, minlength=5)
    # 40 000 redrawn labels, 8 000 expected per class, and the rest stay 0
    np.testing.assert_allclose(counts[1:], 8000, rtol=0.05)
    assert counts[0] == 100_000 - counts[1:].sum()
    assert np.array_equal(y, np.zeros_like(y))  # input untouched


# -- 2-D toys ------------------------------------------------------------------------

@pytest.mark.parametrize("name, k", [("moons", 2), ("circles", 2), ("blobs", 5), ("spirals", 5)])
def test_toys_shapes_classes_and_seeds(name, k):
    c = RunConfig(dataset=name, n_classes=5, n_train=200, n_test=100, label_noise=0.0)
    d = load_dataset(c)
    _check_layout(d, 200, 100, k, 2)
    assert d.is_2d and not d.is_image and d.image_shape is None
    counts = np.bincount(torch.cat([d.y_train, d.y_test]).numpy(), minlength=k)
    assert counts.max() - counts.min() <= 1  # balanced
    assert torch.equal(load_dataset(c).X_train, d.X_train)
    assert not torch.equal(load_dataset(c.replace(data_seed=3)).X_train, d.X_train)


def _raw(name, **kw):
    c = RunConfig(dataset=name, n_train=300, n_test=100, label_noise=0.0, noise=0.0,
                  standardize=False, **kw)
    d = load_dataset(c)
    return torch.cat([d.X_train, d.X_test]).double().numpy(), torch.cat([d.y_train, d.y_test])


def test_noise_free_toys_lie_on_their_curves():
    X, y = _raw("circles")
    r = np.linalg.norm(X, axis=1)
    np.testing.assert_allclose(r, np.where(y.numpy() == 0, 1.0, 0.5), atol=1e-6)
    X, y = _raw("blobs", n_classes=4)
    angle = 2 * np.pi * y.numpy() / 4
    np.testing.assert_allclose(X, np.stack([np.cos(angle), np.sin(angle)], 1), atol=1e-6)
    X, y = _raw("spirals", n_classes=3)
    t = np.linalg.norm(X, axis=1)
    expected = 2 * np.pi * y.numpy() / 3 + 3 * np.pi * t
    np.testing.assert_allclose(np.cos(np.arctan2(X[:, 1], X[:, 0]) - expected), 1, atol=1e-4)
    X, y = _raw("moons")
    upper = X[y.numpy() == 0]
    np.testing.assert_allclose(np.linalg.norm(upper, axis=1), 1, atol=1e-6)


def test_toy_noise_level_scales_the_scatter():
    X0, _ = _raw("blobs", n_classes=3)
    c = RunConfig(dataset="blobs", n_classes=3, n_train=300, n_test=100, label_noise=0.0,
                  noise=0.2, standardize=False)
    d = load_dataset(c)
    X = torch.cat([d.X_train, d.X_test]).double().numpy()
    assert abs(np.std(X - X0) - 0.2) < 0.02


# -- IDX (MNIST, Fashion-MNIST) ------------------------------------------------------

def _idx_bytes(arr: np.ndarray) -> bytes:
    head = bytes([0, 0, 0x08, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape)
    return head + arr.astype(np.uint8).tobytes()


def _write_idx_set(folder, n_train=12, n_test=6, h=4, w=5, gz=False, seed=0):
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    data = {}
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, size=(n, h, w), dtype=np.uint8)
        labels = np.arange(n, dtype=np.uint8) % 10
        for kind, arr in (("images-idx3", images), ("labels-idx1", labels)):
            name = f"{prefix}-{kind}-ubyte"
            raw = _idx_bytes(arr)
            if gz:
                (folder / (name + ".gz")).write_bytes(gzip.compress(raw))
            else:
                (folder / name).write_bytes(raw)
        data[prefix] = (images, labels)
    return data


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("name", ["mnist", "fashion-mnist"])
def test_idx_files_load(tmp_path, gz, name):
    data = _write_idx_set(tmp_path, gz=gz)
    c = RunConfig(dataset=name, data_path=str(tmp_path), n_train=10, n_test=5, label_noise=0.0,
                  standardize=False)
    d = load_dataset(c)
    _check_layout(d, 10, 5, 10, 20)
    assert d.is_image and d.image_shape == (1, 4, 5)
    assert d.class_names == ([str(i) for i in range(10)] if name == "mnist" else FASHION_NAMES)
    images, labels = data["train"]
    np.testing.assert_allclose(d.X_train.numpy(), images[:10].reshape(10, -1) / 255, atol=1e-7)
    assert np.array_equal(d.y_train.numpy(), labels[:10])
    assert np.array_equal(d.y_test.numpy(), data["t10k"][1][:5])


def test_idx_files_in_torchvision_layout_are_found(tmp_path):
    _write_idx_set(tmp_path / "MNIST" / "raw")
    c = RunConfig(dataset="mnist", data_path=str(tmp_path), n_train=12, n_test=6)
    assert load_dataset(c).n_train == 12


def _mnist(tmp_path, **kw):
    kw = {"n_train": 10, "n_test": 5, **kw}
    return load_dataset(RunConfig(dataset="mnist", data_path=str(tmp_path), **kw))


def test_idx_missing_file_names_it(tmp_path):
    _write_idx_set(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(DatasetError, match="t10k-labels-idx1-ubyte"):
        _mnist(tmp_path)


def test_idx_missing_folder(tmp_path):
    with pytest.raises(DatasetError, match="not a folder"):
        _mnist(tmp_path / "nowhere")


def test_idx_bad_magic_number(tmp_path):
    _write_idx_set(tmp_path)
    (tmp_path / "train-images-idx3-ubyte").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(100))
    with pytest.raises(DatasetError, match=r"train-images-idx3-ubyte: not an IDX file"):
        _mnist(tmp_path)


def test_idx_wrong_size(tmp_path):
    _write_idx_set(tmp_path)
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-7])
    with pytest.raises(DatasetError, match=r"train-images-idx3-ubyte: wrong size.*\(12, 4, 5\)"):
        _mnist(tmp_path)


def test_idx_label_count_mismatch_and_bad_labels(tmp_path):
    _write_idx_set(tmp_path)
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(_idx_bytes(np.zeros(11, np.uint8)))
    with pytest.raises(DatasetError, match="12 images but train-labels-idx1-ubyte has 11"):
        _mnist(tmp_path)
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(_idx_bytes(np.full(12, 42, np.uint8)))
    with pytest.raises(DatasetError, match="label 42 outside 0..9"):
        _mnist(tmp_path)


def test_idx_corrupt_gzip(tmp_path):
    _write_idx_set(tmp_path, gz=True)
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(b"\x1f\x8b" + b"garbage")
    with pytest.raises(DatasetError, match="train-images-idx3-ubyte.gz: cannot read"):
        _mnist(tmp_path)


def test_idx_not_enough_samples(tmp_path):
    _write_idx_set(tmp_path)
    with pytest.raises(DatasetError, match="n_train = 20 but only 12"):
        _mnist(tmp_path, n_train=20)
    with pytest.raises(DatasetError, match="n_test = 7 but only 6"):
        _mnist(tmp_path, n_test=7)


def test_read_idx_roundtrip(tmp_path):
    arr = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    (tmp_path / "x").write_bytes(_idx_bytes(arr))
    assert np.array_equal(read_idx(tmp_path / "x"), arr)


# -- CIFAR-10 binary -----------------------------------------------------------------

def _cifar_records(n, seed):
    rng = np.random.default_rng(seed)
    labels = (np.arange(n) % 10).astype(np.uint8)
    pixels = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
    return np.concatenate([labels[:, None], pixels], axis=1), labels, pixels


def _write_cifar(folder, n_batch=8, n_test=5, batches=(1, 2)):
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for i in batches:
        rec, labels, pixels = _cifar_records(n_batch, i)
        (folder / f"data_batch_{i}.bin").write_bytes(rec.tobytes())
        out[i] = (labels, pixels)
    rec, labels, pixels = _cifar_records(n_test, 99)
    (folder / "test_batch.bin").write_bytes(rec.tobytes())
    out["test"] = (labels, pixels)
    return out


def _cifar(path, **kw):
    kw = {"n_train": 12, "n_test": 4, "label_noise": 0.0, "standardize": False, **kw}
    return load_dataset(RunConfig(dataset="cifar10", data_path=str(path), **kw))


def test_cifar_batches_load_across_files(tmp_path):
    data = _write_cifar(tmp_path / "cifar-10-batches-bin")
    d = _cifar(tmp_path)
    _check_layout(d, 12, 4, 10, 3072)
    assert d.is_image and d.image_shape == (3, 32, 32) and d.class_names == CIFAR10_NAMES
    pixels = np.concatenate([data[1][1], data[2][1]])[:12]
    np.testing.assert_allclose(d.X_train.numpy(), pixels / 255, atol=1e-7)
    assert np.array_equal(d.y_train.numpy(), np.concatenate([data[1][0], data[2][0]])[:12])
    assert np.array_equal(d.y_test.numpy(), data["test"][0][:4])
    # C-major layout: the first 1024 values are the red plane
    red = d.X_train[0].reshape(3, 32, 32)[0]
    np.testing.assert_allclose(red.numpy().ravel(), pixels[0, :1024] / 255, atol=1e-7)


def test_cifar_missing_batch_is_named(tmp_path):
    _write_cifar(tmp_path, batches=(1,))
    with pytest.raises(DatasetError, match="data_batch_2.bin"):
        _cifar(tmp_path)
    assert _cifar(tmp_path, n_train=8).n_train == 8  # batch 2 not needed


def test_cifar_wrong_size_and_bad_label(tmp_path):
    _write_cifar(tmp_path)
    (tmp_path / "test_batch.bin").write_bytes(bytes(3073 * 2 + 10))
    with pytest.raises(DatasetError, match=r"test_batch.bin: wrong size 6156 .*3073"):
        _cifar(tmp_path)
    rec, _, _ = _cifar_records(5, 0)
    rec[2, 0] = 17
    (tmp_path / "test_batch.bin").write_bytes(rec.tobytes())
    with pytest.raises(DatasetError, match="test_batch.bin: label 17"):
        _cifar(tmp_path)


def test_cifar_not_enough_samples(tmp_path):
    _write_cifar(tmp_path, batches=(1, 2, 3, 4, 5))
    with pytest.raises(DatasetError, match="n_train wants 41 samples"):
        _cifar(tmp_path, n_train=41)


# -- CSV -----------------------------------------------------------------------------

def _csv(tmp_path, text, **kw):
    path = tmp_path / "data.csv"
    path.write_text(text)
    kw = {"n_train": 4, "n_test": 2, "label_noise": 0.0, "standardize": False, **kw}
    return load_dataset(RunConfig(dataset="csv", data_path=str(path), **kw))


CSV_HEADER = """x,species,y
1.0,cat,2
2.0,dog,3
3.0,cat,4
4.0,bird,5
5.0,dog,6
6.0,cat,7
"""


def test_csv_label_column_by_name_with_string_labels(tmp_path):
    d = _csv(tmp_path, CSV_HEADER, csv_label_column="species")
    _check_layout(d, 4, 2, 3, 2)
    assert d.class_names == ["bird", "cat", "dog"]
    X = torch.cat([d.X_train, d.X_test]).numpy()
    y = torch.cat([d.y_train, d.y_test]).numpy()
    # rows are shuffled but each keeps its label: y = x + 1 and species by row
    np.testing.assert_allclose(X[:, 1], X[:, 0] + 1)
    species = {1: "cat", 2: "dog", 3: "cat", 4: "bird", 5: "dog", 6: "cat"}
    assert [d.class_names[k] for k in y] == [species[int(x)] for x in X[:, 0]]


def test_csv_saved_by_excel_with_a_byte_order_mark(tmp_path):
    path = tmp_path / "data.csv"
    path.write_bytes(b"\xef\xbb\xbfkind,x\nb,1\na,2\nb,3\na,4\nb,5\na,6\n")
    cfg = RunConfig(dataset="csv", data_path=str(path), n_train=4, n_test=2, label_noise=0.0,
                    csv_label_column="kind")  # the first column's name, right after the BOM
    d = load_dataset(cfg)
    assert d.class_names == ["a", "b"] and d.input_shape == (1,)


def test_csv_without_header_uses_last_column_and_numeric_order(tmp_path):
    rows = "".join(f"{i},{i * 2},{[10, 2, 10, 2, 33, 33][i]}\n" for i in range(6))
    d = _csv(tmp_path, rows)
    assert d.class_names == ["2", "10", "33"]  # numeric, not string, order
    X = torch.cat([d.X_train, d.X_test]).numpy()
    y = torch.cat([d.y_train, d.y_test]).numpy()
    np.testing.assert_array_equal([int(d.class_names[k]) for k in y],
                                  [[10, 2, 10, 2, 33, 33][int(i)] for i in X[:, 0]])


def test_csv_label_column_by_index(tmp_path):
    rows = "".join(f"{i % 2},{i}.5\n" for i in range(6))
    d = _csv(tmp_path, rows, csv_label_column="0")
    assert d.class_names == ["0", "1"] and d.X_train.shape == (4, 1)


def test_csv_seed_controls_the_split(tmp_path):
    kw = {"csv_label_column": "species"}
    a = _csv(tmp_path, CSV_HEADER, data_seed=0, **kw)
    b = _csv(tmp_path, CSV_HEADER, data_seed=0, **kw)
    assert torch.equal(a.X_train, b.X_train)
    others = [_csv(tmp_path, CSV_HEADER, data_seed=s, **kw).X_train for s in range(1, 6)]
    assert any(not torch.equal(a.X_train, o) for o in others)


@pytest.mark.parametrize("text, kw, pattern", [
    ("a,b,label\n1,x,0\n2,3,1\n3,4,0\n4,5,1\n5,6,0\n6,7,1\n", {},
     r"data.csv: column 2, line 2: the cell is not a number"),
    ("a,label\n1,0\n2,0\n3,0\n4,0\n5,0\n6,0\n", {}, "fewer than 2 classes"),
    ("a,b,label\n1,2,0\n2,3\n3,4,0\n4,5,1\n5,6,0\n6,7,1\n", {}, "line 3 has 2 columns, expected 3"),
    ("a,b,label\n1,2,0\n2,3,1\n", {}, "n_train \\+ n_test = 6 exceeds the 2 samples"),
    (CSV_HEADER, {"csv_label_column": "kind"}, "'kind' not found \\(not among the 3 header"),
    ("", {}, "empty file"),
    ("1\n2\n", {}, "at least one feature column"),
    ("a,b,label\n1,nan,0\n2,3,1\n3,4,0\n4,5,1\n5,6,0\n6,7,1\n", {}, "NaN or infinity"),
])
def test_csv_errors(tmp_path, text, kw, pattern):
    with pytest.raises(DatasetError, match=pattern):
        _csv(tmp_path, text, **kw)


def test_csv_missing_file(tmp_path):
    with pytest.raises(DatasetError, match="missing.csv: file not found"):
        load_dataset(RunConfig(dataset="csv", data_path=str(tmp_path / "missing.csv")))


def test_dataset_error_is_a_value_error_and_registry_is_complete():
    assert issubclass(DatasetError, ValueError)
    assert set(DATASETS) == {"digits", "moons", "circles", "blobs", "spirals", "mnist",
                             "fashion-mnist", "cifar10", "csv"}
