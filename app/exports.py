"""Exports of a run: scalars as CSV, per-sample arrays as CSV or NPZ, charts as PNG / SVG.

All functions return bytes (or text) ready for a download button or a file; nothing
here calls streamlit. Charts are rendered offline by ``vl-convert-python`` (a bundled
Vega engine, no browser and no network). NPZ files are written without pickling, so
``np.load(..., allow_pickle=False)`` reads them.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import pandas as pd

from ijr_core import exports as core_exports
from ijr_core.names import safe_name
from ijr_core.protocol import RunLike
from ijr_core.run import SAMPLE_KEYS


def scalars_csv(run: RunLike) -> bytes:
    """The run's scalars as UTF-8 CSV: :func:`ijr_core.exports.scalars_csv` (the columns are
    documented there), the same bytes as ``python -m ijr_core export RUN --csv``."""
    return core_exports.scalars_csv([(None, run)]).encode("utf-8")


def samples_frame(run: RunLike, step_index: int | None = None) -> pd.DataFrame:
    """Long table of the per-sample arrays: one row per (checkpoint, sample) with columns
    step, sample_id, label, noisy and one per per-sample metric. ``step_index`` keeps one
    checkpoint only (negative indices count from the end)."""
    samples = run.samples
    steps = np.asarray(run.sample_steps)
    ids = np.asarray(run.sample_ids)
    chosen = np.arange(len(steps))
    if step_index is not None:
        if not len(steps):
            raise IndexError("the run has no checkpoints")
        chosen = np.asarray([np.arange(len(steps))[step_index]])
    c, n = len(chosen), len(ids)
    frame = {
        "step": np.repeat(steps[chosen], n),
        "sample_id": np.tile(ids, c),
        "label": np.tile(np.asarray(run.sample_labels), c),
        "noisy": np.tile(np.asarray(run.sample_noisy, dtype=bool), c),
    }
    for key in SAMPLE_KEYS:
        if key in samples:
            frame[key] = np.asarray(samples[key])[chosen].reshape(-1)
    return pd.DataFrame(frame)


def samples_csv(run: RunLike, step_index: int | None = None) -> bytes:
    """:func:`samples_frame` as UTF-8 CSV."""
    return samples_frame(run, step_index).to_csv(index=False).encode("utf-8")


def samples_npz(run: RunLike) -> bytes:
    """NPZ bytes: step (C,), sample_ids / labels / noisy (S,) and one (C, S) float32 array
    per per-sample metric, the layout of a run folder's samples.npz."""
    arrays = {
        "step": np.asarray(run.sample_steps, dtype=np.int64),
        "sample_ids": np.asarray(run.sample_ids, dtype=np.int64),
        "labels": np.asarray(run.sample_labels, dtype=np.int64),
        "noisy": np.asarray(run.sample_noisy, dtype=bool),
        **{k: np.asarray(v, dtype=np.float32) for k, v in run.samples.items()},
    }
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    return buf.getvalue()


# --------------------------------------------------------------------------- charts


def chart_spec(chart: Any) -> dict:
    """Vega-Lite dict of an Altair chart (data inlined) or of a spec dict as is."""
    return chart if isinstance(chart, dict) else chart.to_dict()


def chart_svg(chart: Any) -> str:
    """SVG text of a chart, rendered offline by vl-convert."""
    import vl_convert as vlc

    return vlc.vegalite_to_svg(chart_spec(chart))


def chart_png(chart: Any, scale: float = 2.0) -> bytes:
    """PNG bytes of a chart (``scale`` × its CSS pixel size), rendered offline by vl-convert."""
    import vl_convert as vlc

    return vlc.vegalite_to_png(chart_spec(chart), scale=scale)


def safe_filename(text: str, default: str = "run") -> str:
    """A file-name stem from free text: :func:`ijr_core.names.safe_name` (letters, digits
    and ``_.=+-``, at most 100 characters)."""
    return safe_name(text, default)
