"""The values of RunConfig's fields: their types (read from the annotations), the checks of
type and bounds (``choices``, ``min`` / ``max`` metadata), and their text form in URL
queries and on the command line (``parse_str(format_value(v)) == v`` for every valid v).
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import types
import typing
from collections.abc import Mapping
from functools import cache
from urllib.parse import parse_qs

from ijr_core.config_names import ConfigError, is_cuda_index

__all__ = ["check_bounds", "check_type", "field_types", "format_value", "parse_str",
           "query_dict", "type_name"]


@cache
def field_types(cls) -> dict[str, tuple[type, bool]]:
    """Field name -> (base type, optional) of a dataclass, from its resolved annotations."""
    hints = typing.get_type_hints(cls)
    out = {}
    for f in dataclasses.fields(cls):
        t = hints[f.name]
        args = typing.get_args(t)
        if typing.get_origin(t) in (typing.Union, types.UnionType) and type(None) in args:
            (base,) = [a for a in args if a is not type(None)]
            out[f.name] = (base, True)
        else:
            out[f.name] = (t, False)
    return out


def type_name(tp: tuple[type, bool]) -> str:
    base, optional = tp
    return base.__name__ + (" or None" if optional else "")


def check_type(name: str, value, tp: tuple[type, bool]):
    """Return `value` as the field's plain Python type, else raise ConfigError.

    Integers (also numpy's) are accepted for float fields; bools are never numbers;
    an empty string of an optional string field means None.
    """
    base, optional = tp
    if optional and (value is None or (base is str and value == "")):
        return None
    if isinstance(value, bool) or value is None:
        ok = base is bool and value is not None
    elif base is int:
        ok = isinstance(value, numbers.Integral)
    elif base is float:
        ok = isinstance(value, numbers.Real)
    else:
        ok = isinstance(value, base)
    if not ok:
        raise ConfigError(name, value, f"expected {type_name(tp)}, got {type(value).__name__}")
    value = base(value)
    if base is float and not math.isfinite(value):
        raise ConfigError(name, value, "expected a finite number")
    return value


def check_bounds(f: dataclasses.Field, value) -> None:
    """Enforce `choices` and `min`/`max` of the field's metadata."""
    if value is None:
        return
    m = f.metadata
    choices = m.get("choices")
    if choices is not None:
        if f.name == "device" and is_cuda_index(value):
            return
        if value not in choices:
            raise ConfigError(f.name, value, f"known {f.name} names: {', '.join(choices)}")
        return
    lo, hi = m.get("min"), m.get("max")
    lo_bad = lo is not None and (value <= lo if m.get("min_open") else value < lo)
    hi_bad = hi is not None and (value >= hi if m.get("max_open") else value > hi)
    if lo_bad or hi_bad:
        raise ConfigError(f.name, value, f"must be in {_interval(m)}")


def _interval(m: Mapping) -> str:
    lo, hi = m.get("min"), m.get("max")
    left = "(" if m.get("min_open") or lo is None else "["
    right = ")" if m.get("max_open") or hi is None else "]"
    return f"{left}{'-inf' if lo is None else lo}, {'inf' if hi is None else hi}{right}"


_TRUE = ("true", "1", "yes", "on")
_FALSE = ("false", "0", "no", "off")


def parse_str(name: str, s: str, tp: tuple[type, bool]):
    """Parse a query/CLI string into the field's type; ConfigError if it cannot be."""
    base, optional = tp
    text = s.strip()
    if base is str:
        return s
    if optional and text.lower() in ("", "none", "null"):
        return None
    try:
        if base is bool:
            if text.lower() in _TRUE:
                return True
            if text.lower() in _FALSE:
                return False
            raise ValueError
        if base is int:
            return int(text)
        if base is float:
            return float(text)
    except ValueError:
        pass
    raise ConfigError(name, s, f"expected {type_name(tp)}")


def format_value(v) -> str:
    """Value -> query string text that `parse_str` maps back to the same value."""
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    return repr(v) if isinstance(v, float) else str(v)


def query_dict(q: str | Mapping) -> dict[str, str]:
    """A query string or mapping (str -> str or list of str) as str -> str, the last of
    repeated keys winning."""
    if isinstance(q, str):
        q = parse_qs(q.lstrip("?"), keep_blank_values=True)
    if not isinstance(q, Mapping):
        raise ConfigError(None, q, "expected a query string or a mapping")
    d = {}
    for k, v in q.items():
        if isinstance(v, (list, tuple)):
            if not v:
                continue
            v = v[-1]
        d[k] = v if isinstance(v, str) else str(v)
    return d
