"""Folder (and file) names of runs, sweeps and grids: the one place that turns labels into
path components.

Every name built here is one safe path component: only letters, digits and ``_.=+-``
(so no separator, no NUL, no shell or URL metacharacter), never empty, never starting with
"." or "-" (so never ".", "..", a hidden file or something read as an option), and bounded
in length. Free text (a run's name, an uploaded file's name) can therefore never lead
outside the folder the name is joined to.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from datetime import datetime, timezone

__all__ = ["grid_member_name", "safe_name", "stamped_name", "sweep_member_name"]

_UNSAFE = re.compile(r"[^A-Za-z0-9_.=+-]+")


def safe_name(text: str, default: str = "run", limit: int = 100) -> str:
    """``text`` as one safe path component: each run of other characters becomes "-",
    leading and trailing "-" and "." are dropped, at most ``limit`` characters are kept;
    ``default`` (itself safe) when nothing is left."""
    return _UNSAFE.sub("-", str(text)).strip("-.")[:limit] or default


def stamped_name(label: str, default: str = "job", now: datetime | None = None) -> str:
    """``<UTC time>-<label>-<6 random hex digits>``, e.g. ``20261129-043636-sweep-moons-5e3e14``:
    names of one folder sort by age, and two jobs started in the same second with the same
    label still get different folders (the random part: 16⁶ choices). The label is made
    safe by :func:`safe_name` (at most 80 characters, ``default`` when empty)."""
    stamp = (now or datetime.now(timezone.utc)).strftime("%Y%m%d-%H%M%S")
    return f"{stamp}-{safe_name(label, default, 80)}-{uuid.uuid4().hex[:6]}"


def sweep_member_name(index: int, lr: float) -> str:
    """Folder of the index-th run of a sweep, e.g. ``lr-03-0.25`` (unique within the sweep:
    the index)."""
    return safe_name(f"lr-{index:02d}-{lr:g}")


def grid_member_name(index: int, combo: Mapping) -> str:
    """Folder of the index-th run of a grid from its axis values, e.g. ``003-lr=0.5-seed=1``
    (floats as ``%g``; unique within the grid: the index; at most 120 characters)."""
    parts = [f"{index:03d}"] + [f"{k}={_short(v)}" for k, v in combo.items()]
    return safe_name("-".join(parts), limit=120)


def _short(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)
