"""The ``csv`` dataset: numeric feature columns and one label column of a UTF-8 CSV file
(an upload, or a file in an allow-listed folder). The file is bounded before and while it
is read: a regular file of at most ``MAX_CSV_BYTES``, cells of at most ``MAX_CSV_FIELD``
characters, rows, columns and labels within config.LIMITS; errors never quote a cell."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from ijr_core.config import MAX_CLASSES, MAX_FEATURES, MAX_SAMPLES, RunConfig
from ijr_core.data_files import regular_file
from ijr_core.data_registry import DatasetError, RawData, data_rng, register, split_first

__all__ = ["MAX_CSV_BYTES", "MAX_CSV_FIELD"]

MAX_CSV_BYTES = 32 * 2**20
MAX_CSV_FIELD = 1000  # characters of one CSV cell


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
    names = sorted(distinct, key=int if all(_reads_as(int, d) for d in distinct) else None)
    index = {name: i for i, name in enumerate(names)}
    y = np.array([index[s] for s in labels], dtype=np.int64)
    order = data_rng(config, "shuffle").permutation(len(y))
    X_tr, y_tr, X_te, y_te = split_first(features[order], y[order], config, str(path))
    return RawData(X_tr, y_tr, X_te, y_te, class_names=names)


def _read_csv_rows(path: Path) -> list[list[str]]:
    """Non-empty rows; bounded: a regular file of at most MAX_CSV_BYTES, at most
    MAX_SAMPLES + 1 rows and MAX_FEATURES + 1 columns, cells of at most MAX_CSV_FIELD
    characters (checked while reading, so a hostile file stops early)."""
    regular_file(path, MAX_CSV_BYTES)
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
        return sum(not _reads_as(float, c) for c in row)

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
    if _reads_as(int, spec) and -n_cols <= int(spec) < n_cols:
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


def _reads_as(kind: type, s: str) -> bool:
    """True when ``kind(s)`` (int or float) parses the cell."""
    try:
        kind(s)
    except ValueError:
        return False
    return True
