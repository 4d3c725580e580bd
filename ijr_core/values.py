"""One grammar for lists of values, shared by the command line and the app.

A list is items separated by commas (or semicolons); blanks are skipped. An item is one
value, or for numbers a range ``start:stop:n`` of n values from start to stop, both ends
included:

- real numbers: log-spaced (start · (stop/start)^(k/(n−1)), k = 0..n−1, rounded to 4
  significant digits) when both ends are > 0, the usual spacing of learning rates; else
  evenly spaced;
- whole numbers (seeds, widths): evenly spaced and rounded, repeats dropped.

Examples: ``0.1, 0.25, 0.5`` · ``0.1:1:4`` → 0.1, 0.2154, 0.4642, 1 · ``0:4:5`` (seeds)
→ 0, 1, 2, 3, 4 · ``sgd,sam``. Every error is a ``ValueError`` naming the item.
"""

from __future__ import annotations

import math

import numpy as np

MAX_VALUES = 100  # values of one list (a range may not expand to more)


def parse_values(text: str, kind: type = float, name: str = "values",
                 parse_one=None) -> list:
    """Values of ``text`` (see the module docstring) as ``kind`` (float, int or str).

    ``parse_one(token)`` converts a single item (default: ``kind(token)``); ranges are
    expanded only for int and float. ``name`` starts every error message."""
    if not isinstance(text, str):
        raise ValueError(f"{name}: expected text, got {type(text).__name__}")
    items = [part.strip() for part in text.replace(";", ",").split(",")]
    out: list = []
    for item in (i for i in items if i):
        if kind in (int, float) and item.count(":") == 2:
            out.extend(_range(item, kind, name))
        else:
            out.append(_one(item, kind, name, parse_one))
        if len(out) > MAX_VALUES:
            raise ValueError(f"{name}: at most {MAX_VALUES} values")
    if not out:
        raise ValueError(f"{name}: give at least one value")
    return out


def _number(token: str, kind: type, name: str):
    try:
        value = kind(token)
    except ValueError:
        raise ValueError(f"{name}: {token!r} is not "
                         f"{'a whole number' if kind is int else 'a number'}") from None
    if kind is float and not math.isfinite(value):
        raise ValueError(f"{name}: {token!r} is not a finite number")
    return value


def _one(token: str, kind: type, name: str, parse_one):
    if parse_one is not None:
        return parse_one(token)
    if kind in (int, float):
        return _number(token, kind, name)
    return kind(token)


def _range(item: str, kind: type, name: str) -> list:
    a, b, n = (part.strip() for part in item.split(":"))
    start, stop = _number(a, kind, name), _number(b, kind, name)
    count = _number(n, int, f"{name}: the count of {item!r}")
    if not 1 <= count <= MAX_VALUES:
        raise ValueError(f"{name}: the range {item!r} needs 1 ≤ n ≤ {MAX_VALUES}")
    if count == 1:
        return [start]
    if kind is int:
        return list(dict.fromkeys(int(round(x)) for x in np.linspace(start, stop, count)))
    if start > 0 and stop > 0:
        return [float(f"{x:.4g}") for x in np.geomspace(start, stop, count)]
    return [float(f"{x:.6g}") for x in np.linspace(start, stop, count)]


def parse_lrs(text: str, name: str = "learning rates") -> list[float]:
    """Learning rates: a list of finite numbers > 0 in the grammar above."""
    values = parse_values(text, float, name)
    bad = [x for x in values if not x > 0]
    if bad:
        raise ValueError(f"{name} must be positive numbers (finite and > 0), got {bad[0]:g}")
    return values
