"""The runs of a grid: its axes (RunConfig fields and their values, parsed from text or
given as lists), their Cartesian product as validated configs, and the identity of a run
(a hash of its configuration without ``name`` and ``device``)."""

from __future__ import annotations

import hashlib
import itertools
import json
import math
from collections.abc import Mapping, Sequence

import numpy as np

from ijr_core.config import ConfigError, RunConfig
from ijr_core.values import parse_values

__all__ = ["IDENTITY_EXCLUDED", "MAX_RUNS", "config_key", "expand", "parse_axes"]

MAX_RUNS = 1000
IDENTITY_EXCLUDED = ("name", "device")


def parse_axes(specs: Mapping[str, str] | Sequence[str]) -> dict[str, list]:
    """Axes from ``["lr=0.1,0.5", "seed=0:2:3"]`` or ``{"lr": "0.1,0.5"}``: each field's
    values in the grammar of :mod:`ijr_core.values`, typed like the field ("none" for an
    optional one). Raises ConfigError naming the field."""
    from ijr_core.config import _field_types
    from ijr_core.config_codec import parse_str

    pairs = []
    if isinstance(specs, Mapping):
        pairs = list(specs.items())
    else:
        for spec in specs:
            name, sep, text = str(spec).partition("=")
            if not sep:
                raise ConfigError(name.strip() or None, spec,
                                  "an axis is FIELD=VALUES, e.g. lr=0.1,0.5 or seed=0:2:3")
            pairs.append((name.strip(), text))
    types = _field_types()
    axes: dict[str, list] = {}
    for name, text in pairs:
        if name not in types:
            raise ConfigError(name, text, f"unknown field {name!r}; known fields: "
                                          f"{', '.join(types)}")
        if name in axes:
            raise ConfigError(name, text, "this axis is given twice")
        base, _ = types[name]
        kind = base if base in (int, float) else str
        try:
            axes[name] = parse_values(
                text, kind, name,
                parse_one=lambda tok, n=name: parse_str(n, tok, types[n]),
            )
        except ConfigError:
            raise
        except ValueError as exc:
            raise ConfigError(name, text, str(exc).removeprefix(f"{name}: ")) from None
    return axes


def expand(base: RunConfig, axes: Mapping[str, Sequence]) -> list[tuple[dict, RunConfig]]:
    """(axis values, config) of every run, the last axis varying fastest; every config is
    validated here. ConfigError (naming the field) on an unknown field, an empty axis, a
    value the field does not allow, or more than MAX_RUNS runs."""
    if not isinstance(base, RunConfig):
        raise TypeError(f"base must be a RunConfig, got {type(base).__name__}")
    if not isinstance(axes, Mapping) or not axes:
        raise ConfigError(None, axes, "give at least one axis, e.g. {'lr': [0.1, 0.5]}")
    axes = {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in axes.items()}
    names = list(axes)
    known = base.to_dict()
    for name in names:
        if name not in known:
            raise ConfigError(name, axes[name], f"unknown field {name!r}; known fields: "
                                                f"{', '.join(known)}")
        values = axes[name]
        if isinstance(values, (str, bytes)) or not isinstance(values, Sequence) or not values:
            raise ConfigError(name, values, "an axis needs a non-empty list of values")
    total = math.prod(len(axes[n]) for n in names)
    if total > MAX_RUNS:
        raise ConfigError(names[0], total, f"a grid has at most {MAX_RUNS} runs, this one "
                                           f"{' × '.join(str(len(axes[n])) for n in names)}")
    return [(combo, _replace(base, combo))
            for combo in (dict(zip(names, vals, strict=True))
                          for vals in itertools.product(*(axes[n] for n in names)))]


def _replace(base: RunConfig, combo: dict) -> RunConfig:
    try:
        return base.replace(**combo)
    except ConfigError as exc:
        if len(combo) == 1:
            raise
        what = ", ".join(f"{k}={v}" for k, v in combo.items())
        raise ConfigError(exc.field, exc.value, f"{exc.allowed} (in the run {what})") from None
    except (TypeError, ValueError) as exc:
        name = next(iter(combo))
        raise ConfigError(name, combo[name], str(exc)) from None


def config_key(config: RunConfig | Mapping) -> str:
    """Identity of a run: a hash of its configuration without ``name`` and ``device``."""
    d = config.to_dict() if isinstance(config, RunConfig) else dict(config)
    doc = {k: v for k, v in sorted(d.items()) if k not in IDENTITY_EXCLUDED}
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:20]
