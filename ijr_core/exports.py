"""Text exports of runs: the one scalars CSV and the JSON summary.

The CLI (``python -m ijr_core export``) and the app's download buttons call these same
functions, so a run exported from either place gives the same bytes.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Iterable

from ijr_core.protocol import RunLike

__all__ = ["scalars_csv", "runs_json"]

Pair = tuple[float | None, RunLike]  # (learning rate of a sweep member or None, a run)


def scalars_csv(pairs: Iterable[Pair], sweep: bool = False) -> str:
    """Scalars as CSV text, one row per recorded (probe) step of each run.

    ``pairs``: (learning rate, run) per run, the rate None for a single run. Columns, in
    order:

    - ``lr_sweep`` (only when ``sweep``): the run's learning rate, formatted ``%g``;
    - every scalar metric recorded by any of the runs, in the order first seen
      (``step`` first for a :class:`~ijr_core.record.Run`): ``step`` as an integer, the
      others as ``repr(float)`` (the shortest text that reads back to the same float64),
      an empty cell for NaN and ±inf and for a metric a run never recorded;
    - ``phase``: the run's phase at that step ("I", "II", "III" or "U",
      :meth:`~ijr_core.record.Run.phases`).

    Header row first; rows end with "\\n"; sweep members one after the other."""
    pairs = list(pairs)
    keys: list[str] = []
    for _, run in pairs:
        keys += [k for k in run.scalars if k not in keys]
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow((["lr_sweep"] if sweep else []) + keys + ["phase"])
    for lr, run in pairs:
        phases = run.phases()
        cols = [run.scalar(k) for k in keys]
        for i in range(len(run.scalars["step"])):
            row = [f"{lr:g}"] if sweep else []
            row += [_csv_value(k, c[i]) for k, c in zip(keys, cols, strict=True)]
            writer.writerow(row + [phases[i]])
    return buf.getvalue()


def _csv_value(key: str, value) -> str:
    if key == "step":
        return str(int(value))
    return repr(float(value)) if math.isfinite(value) else ""


def runs_json(pairs: Iterable[Pair], sweep: bool = False) -> str:
    """Run summary + scalars as JSON text (indent 1, trailing newline): per run its status,
    step, config dict, meta, phase spans [phase, start, end] and scalars (NaN and ±inf →
    null), plus ``lr_sweep`` when the rate is given; a list of those when ``sweep``."""
    docs = []
    for lr, run in pairs:
        doc = {
            "status": run.status,
            "step": run.step,
            "config": run.config.to_dict() if run.config is not None else None,
            "meta": run.meta,
            "phases": [list(s) for s in run.phase_spans()],
            "scalars": {k: [_finite_or_none(float(x)) for x in v] for k, v in run.scalars.items()},
        }
        if lr is not None:
            doc["lr_sweep"] = lr
        docs.append(doc)
    out = docs if sweep else docs[0]
    return json.dumps(out, indent=1, default=str) + "\n"


def _finite_or_none(x: float):
    return float(x) if math.isfinite(x) else None
