"""Tables and numerics of runs, sweeps and groups: pure pandas / numpy, no streamlit, no altair.

Everything a chart of :mod:`app.charts` draws, or a page shows as a table, that is a
computation on the data. One module per kind of view:

- :mod:`app.tables.access`: reading a run (scalars, config values, final values, K) —
  the one place the tables and charts read a :class:`ijr_core.protocol.RunLike`;
- :mod:`app.tables.samples`: per-sample views (heatmap cells and orders, one checkpoint's
  table, the most impure samples, one sample's history);
- :mod:`app.tables.series`: series over training (envelope, debiased EMA, η·step time,
  the overlay's long frame with its seed bands);
- :mod:`app.tables.runs`: several runs side by side (config differences, final metrics,
  optimizer tables, seed groups);
- :mod:`app.tables.scrub`: the Inspect scrubber's long frames (every scrubbable
  checkpoint's rows at once, filtered in the browser);
- :mod:`app.tables.sweeps`: learning-rate sweeps and grids (heatmap and final frames,
  values at a matched loss, log ticks, labelled runs).

Every public name is re-exported here, so ``from app.tables import X`` works.

Symbols follow SCIENCE.md: ‖H‖ sharpness, ⟨‖M‖⟩ mean impurity, ⟨‖J‖²⟩ mean squared
spectral logit-Jacobian norm, λ* the per-sample weight, η the learning rate, "time"
η·step = Σ_t η_t.
"""

from app.tables.access import (
    RunOrScalars,
    SweepLike,
    config_dict,
    config_value,
    last,
    last_std,
    n_classes,
    quiet_nan,
    scalar,
    scalars_of,
)
from app.tables.runs import (
    FINAL_METRICS,
    OPTIMIZER_METRICS,
    SEED_FIELDS,
    config_diff,
    final_metrics,
    optimizer_summary,
    optimizer_table,
    seed_groups,
)
from app.tables.samples import (
    HEATMAP_MARKS,
    HEATMAP_ORDERS,
    SAMPLE_METRICS,
    first_correct_index,
    heatmap_bins,
    heatmap_frame,
    metric_domain,
    sample_history_frame,
    sample_order,
    sample_table,
    step_edges,
    subsample_indices,
    top_impure,
)
from app.tables.scrub import (
    MAX_SCRUB_CHECKPOINTS,
    POINT_METRICS,
    SCRUB_POINTS,
    histogram_edges,
    histogram_frame,
    nearest_position,
    point_frame,
    scrub_indices,
    tick_frame,
)
from app.tables.series import (
    MAX_POINTS,
    X_AXES,
    ema_debiased,
    envelope_indices,
    overlay_frame,
    run_x,
    step_domain,
    time_axis,
)
from app.tables.sweeps import (
    HEATMAP_COLUMNS,
    HEATMAP_METRICS,
    JAC_SERIES,
    SEED_COLUMNS,
    SWEEP_COLUMNS,
    at_loss,
    final_jac_frame,
    grid_runs,
    heatmap_values,
    jac_series,
    log_ticks,
    max_sharpness_frame,
    sweep_final_frame,
    sweep_heatmap_frame,
    sweep_runs,
)

__all__ = [
    "FINAL_METRICS", "HEATMAP_COLUMNS", "HEATMAP_MARKS", "HEATMAP_METRICS", "HEATMAP_ORDERS",
    "JAC_SERIES", "MAX_POINTS", "MAX_SCRUB_CHECKPOINTS", "OPTIMIZER_METRICS", "POINT_METRICS",
    "SAMPLE_METRICS", "SCRUB_POINTS", "SEED_COLUMNS", "SEED_FIELDS", "SWEEP_COLUMNS", "X_AXES",
    "RunOrScalars", "SweepLike", "at_loss", "config_dict", "config_diff", "config_value",
    "ema_debiased", "envelope_indices", "final_jac_frame", "final_metrics",
    "first_correct_index", "grid_runs", "heatmap_bins", "heatmap_frame", "heatmap_values",
    "histogram_edges", "histogram_frame", "jac_series", "last", "last_std", "log_ticks",
    "max_sharpness_frame", "metric_domain", "n_classes", "nearest_position",
    "optimizer_summary", "optimizer_table", "overlay_frame", "point_frame", "quiet_nan",
    "run_x", "sample_history_frame", "sample_order", "sample_table", "scalar", "scalars_of",
    "scrub_indices", "seed_groups", "step_domain", "step_edges", "subsample_indices",
    "sweep_final_frame", "sweep_heatmap_frame", "sweep_runs", "tick_frame", "time_axis",
    "top_impure",
]
