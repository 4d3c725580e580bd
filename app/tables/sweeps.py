"""Tables of learning-rate sweeps and grids: the (η × step) heatmap frame, the per-η final
frame, ⟨‖J‖²⟩ at a matched training loss, log-axis ticks, and the labelled runs of a
sweep or grid. Pure pandas / numpy.

A sweep is anything with ``lrs`` and ``runs`` (:class:`ijr_core.sweep.Sweep`), a grid a
:class:`ijr_core.grid.Grid`. ‖H‖ / (2/η) = ‖H‖·η/2 is 1 at the edge of stability.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from app.tables.access import SweepLike, last, last_std, quiet_nan, scalar
from ijr_core.protocol import RunLike
from ijr_core.sweep import matched_loss_point

if TYPE_CHECKING:
    from ijr_core.grid import Grid

HEATMAP_COLUMNS = 300


def _eta_label(lr: float) -> str:
    return f"{lr:g}"


# Metrics offered by the sweep heatmap: scalar names, plus the derived ‖H‖ / (2/η).
HEATMAP_METRICS = {
    "m_norm_mean": "⟨‖M‖⟩",
    "sharpness_over_2eta": "‖H‖ / (2/η)",
    "jac_spectral_sq_mean": "⟨‖J‖²⟩",
    "lambda_star_jac": "⟨λ*‖J‖²⟩",
    "train_loss": "train loss",
    "test_acc": "test accuracy",
}


def heatmap_values(run: RunLike, metric: str) -> np.ndarray:
    """A scalar series of the run, or ``sharpness_over_2eta`` = ‖H‖ · η / 2 (1 = at the
    edge of stability, for whatever η was in force at each probe)."""
    if metric == "sharpness_over_2eta":
        with np.errstate(invalid="ignore", divide="ignore"):
            return scalar(run, "sharpness") / scalar(run, "two_over_eta")
    return scalar(run, metric)


def sweep_heatmap_frame(
    sweep: SweepLike, metric: str = "m_norm_mean", max_columns: int = HEATMAP_COLUMNS
) -> pd.DataFrame:
    """Cells (kind="cell", eta, step, step_end, value) of the (η × step) map of a scalar
    and rectangles (kind="arp", eta, step, step_end) of each run's phase II (the ARP).
    A run with more than ``max_columns`` probes is averaged over consecutive probes."""
    parts = []
    for lr, run in zip(sweep.lrs, sweep.runs, strict=True):
        steps = np.asarray(run.scalars["step"], dtype=float)
        vals = heatmap_values(run, metric)
        if not len(steps):
            continue
        b = max(1, math.ceil(len(steps) / max_columns))
        start = steps[::b]
        end = np.append(
            start[1:], steps[-1] + (np.median(np.diff(steps)) if len(steps) > 1 else 1.0)
        )
        with quiet_nan():
            pad = (-len(vals)) % b
            v = np.nanmean(np.append(vals, np.full(pad, np.nan)).reshape(-1, b), axis=1)
        parts.append(
            pd.DataFrame(
                {
                    "kind": "cell",
                    "eta": _eta_label(lr),
                    "lr": float(lr),
                    "step": start,
                    "step_end": end,
                    "value": v,
                }
            )
        )
        try:
            spans = run.phase_spans()
        except (KeyError, ValueError):
            spans = []
        arp = [(a, e) for ph, a, e in spans if ph == "II"]
        if arp:
            parts.append(
                pd.DataFrame(
                    {
                        "kind": "arp",
                        "eta": _eta_label(lr),
                        "lr": float(lr),
                        "step": [float(a) for a, _ in arp],
                        "step_end": [float(max(e, a + 1)) for a, e in arp],
                        "value": np.nan,
                    }
                )
            )
    cols = ["kind", "eta", "lr", "step", "step_end", "value"]
    if not parts:
        return pd.DataFrame(
            {c: pd.Series(dtype=str if c in ("kind", "eta") else float) for c in cols}
        )
    return pd.concat(parts, ignore_index=True).reindex(columns=cols)


def _statuses(sweep: SweepLike) -> list[str]:
    return [str(r.status) for r in sweep.runs]


def at_loss(run: RunLike, target: float, name: str = "jac_spectral_sq_mean") -> tuple[float, float]:
    """(step, value of ``name``) at the first probe whose training loss is ≤ ``target``;
    (NaN, NaN) when the run never gets there: :func:`ijr_core.sweep.matched_loss_point`."""
    return matched_loss_point(run, target, name)


def sweep_final_frame(sweep: SweepLike, matched_loss: float | None = None) -> pd.DataFrame:
    """Per η: final ⟨‖J‖²⟩ (spectral and Frobenius), max ‖H‖, 2/η, test accuracy, status;
    with ``matched_loss`` also ⟨‖J‖²⟩ and the step where the training loss first reaches it."""
    lrs = np.asarray(sweep.lrs, dtype=float)
    max_h = [float(np.nanmax(scalar(r, "sharpness"), initial=-np.inf)) for r in sweep.runs]
    frame = pd.DataFrame(
        {
            "lr": lrs,
            "two_over_eta": 2.0 / lrs,
            "final_jac": [last(r, "jac_spectral_sq_mean") for r in sweep.runs],
            "final_jac_f": [last(r, "jac_frobenius_sq_mean") for r in sweep.runs],
            "max_sharpness": [h if math.isfinite(h) else np.nan for h in max_h],
            "test_acc": [last(r, "test_acc") for r in sweep.runs],
            "status": _statuses(sweep),
        }
    )
    if any("jac_spectral_sq_mean_std" in r.scalars for r in sweep.runs):  # seed means
        frame.insert(frame.columns.get_loc("final_jac") + 1, "final_jac_std",
                     [last_std(r, "jac_spectral_sq_mean") for r in sweep.runs])
    if matched_loss is not None:
        hits = [at_loss(r, matched_loss) for r in sweep.runs]
        frame["step_at_loss"] = [h[0] for h in hits]
        frame["jac_at_loss"] = [h[1] for h in hits]
    return frame


# Column -> (heading, printf format) of the sweep table, for the page's column config.
SWEEP_COLUMNS = {
    "lr": ("η", "%.3g"),
    "two_over_eta": ("2/η", "%.3g"),
    "final_jac": ("final ⟨‖J‖²⟩", "%.4g"),
    "final_jac_f": ("final ⟨‖J‖²⟩ Frobenius", "%.4g"),
    "max_sharpness": ("max ‖H‖", "%.3g"),
    "test_acc": ("final test acc.", "%.3f"),
    "status": ("status", None),
    "step_at_loss": ("step at matched loss", "%d"),
    "jac_at_loss": ("⟨‖J‖²⟩ at matched loss", "%.4g"),
}


# ... and of a grid's seed means.
SEED_COLUMNS = {"final_jac_std": ("± std over seeds", "%.3g")}


# Column of sweep_final_frame -> legend label of the final ⟨‖J‖²⟩ chart.
JAC_SERIES = (("final_jac", "⟨‖J‖²⟩ (spectral)"), ("final_jac_f", "⟨‖J‖²⟩ (Frobenius)"))


def jac_series(matched_loss: float | None = None) -> list[tuple[str, str]]:
    """(column, label) of the ⟨‖J‖²⟩ series against η: :data:`JAC_SERIES`, and with
    ``matched_loss`` the value at that training loss."""
    series = list(JAC_SERIES)
    if matched_loss is not None:
        series.append(("jac_at_loss", f"⟨‖J‖²⟩ at train loss ≤ {matched_loss:g}"))
    return series


def final_jac_frame(
    final: pd.DataFrame, matched_loss: float | None = None
) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """(rows, band) of the ⟨‖J‖²⟩-against-η chart from ``final`` (:func:`sweep_final_frame`
    with the same ``matched_loss``). rows: (lr, value, series, status) of the final spectral
    and Frobenius ⟨‖J‖²⟩ and, with ``matched_loss``, ⟨‖J‖²⟩ where the training loss first
    reaches it; only positive finite values (the axes are log). band: (lr, lo, hi) = final
    ⟨‖J‖²⟩ ∓ its std over seeds, rows with hi > 0, lo clipped to hi·10⁻³; None when
    ``final`` has no seed std."""
    rows = []
    for key, label in jac_series(matched_loss):
        ok = np.isfinite(final[key]) & (final[key] > 0)
        rows.append(
            pd.DataFrame(
                {"lr": final["lr"][ok], "value": final[key][ok], "series": label,
                 "status": final["status"][ok]}
            )
        )
    band = None
    if "final_jac_std" in final:
        band = pd.DataFrame({"lr": final["lr"], "lo": final["final_jac"] - final["final_jac_std"],
                             "hi": final["final_jac"] + final["final_jac_std"]})
        band = band[np.isfinite(band["hi"]) & (band["hi"] > 0)]
        band["lo"] = np.maximum(band["lo"], band["hi"] * 1e-3)
    return pd.concat(rows, ignore_index=True), band


def max_sharpness_frame(final: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(points, diagonal) of the max-‖H‖-against-2/η chart from ``final``
    (:func:`sweep_final_frame`): the runs with a finite max ‖H‖ (without the matched-loss
    columns), and the two ends of the line ‖H‖ = 2/η, from min(0, smallest value) to 1.05 ×
    the largest of 2/η and max ‖H‖."""
    f = final.drop(columns=["step_at_loss", "jac_at_loss"], errors="ignore")
    f = f[np.isfinite(f["max_sharpness"])]
    hi = float(max(f["two_over_eta"].max(), f["max_sharpness"].max())) if len(f) else 1.0
    lo = float(min(f["two_over_eta"].min(), f["max_sharpness"].min())) if len(f) else 0.0
    ends = [min(lo, 0.0), hi * 1.05]
    return f, pd.DataFrame({"two_over_eta": ends, "max_sharpness": ends})


def log_ticks(values) -> list[float]:
    """Tick values for a log axis over ``values``: 1-2-5 × 10^k within their range (with
    1-9 × 10^k when that gives fewer than three), so a range inside one decade is labelled."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v) & (v > 0)]
    if not len(v):
        return []
    lo, hi = v.min() / 1.1, v.max() * 1.1
    decades = range(int(np.floor(np.log10(lo))), int(np.ceil(np.log10(hi))) + 1)
    for mantissas in ((1, 2, 5), range(1, 10)):
        ticks = [m * 10.0**k for k in decades for m in mantissas if lo <= m * 10.0**k <= hi]
        if len(ticks) >= 3:
            return ticks
    return sorted({float(x) for x in v})


def sweep_runs(sweep: SweepLike) -> dict[str, RunLike]:
    """Label -> run of a sweep ("η=0.5"), for the overlay charts."""
    return {f"η={_eta_label(lr)}": run for lr, run in zip(sweep.lrs, sweep.runs, strict=True)}


def grid_runs(grid: Grid, fixed: Mapping | None = None) -> dict[str, RunLike]:
    """Label -> run of the saved runs of a grid (:class:`ijr_core.grid.Grid`) whose axes
    other than lr and seed take the ``fixed`` values (all runs when None), labelled
    "η=0.5-s1": runs that differ only in the seed end in -s<seed>, so :func:`seed_groups`
    makes one band of them."""
    out = {}
    for values, run in zip(grid.values, grid.runs, strict=True):
        if run is None or any(values.get(k) != v for k, v in (fixed or {}).items()):
            continue
        parts = [f"η={values['lr']:g}" if k == "lr" else f"{k}={values[k]}"
                 for k in values if k != "seed"]
        seed = f"-s{values['seed']}" if "seed" in values else ""
        out["-".join(parts or ["run"]) + seed] = run
    return out
