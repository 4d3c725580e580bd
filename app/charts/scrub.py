"""Inspect's scrub chart: the cursor strip, the heatmap, the histogram and the scatter of
:mod:`app.charts.samples` in one compound chart, every scrubbable checkpoint's rows in the
browser and one selection choosing the step.

Pure functions ``run -> altair`` (or, with ``as_spec``, (cached spec, named datasets)); the
tables behind it are in :mod:`app.tables.scrub`.
"""

from __future__ import annotations

import functools
import json
import warnings

import altair as alt
import numpy as np

from app.charts.samples import (
    _compact,
    _cursor_params,
    _heatmap_cursor_template,
    _heatmap_parts,
    _heatmap_template,
    _histogram_params,
    _histogram_template,
    _scatter_parts,
    _scatter_template,
)
from app.tables import HEATMAP_MARKS
from app.tables.scrub import (
    MAX_SCRUB_CHECKPOINTS,
    SCRUB_POINTS,
    histogram_frame,
    point_frame,
    scrub_indices,
    tick_frame,
)
from ijr_core.protocol import RunLike

SCRUB_PARAM = "at"


def scrub_chart(
    run: RunLike,
    metric: str = "m_norm",
    order: str = "class",
    mark_noisy: bool = True,
    color_by: str = "class",
    start: int = -1,
    max_marks: int = HEATMAP_MARKS,
    max_points: int = SCRUB_POINTS,
    max_checkpoints: int = MAX_SCRUB_CHECKPOINTS,
    panel_width: int = 330,
    as_spec: bool = False,
):
    """Inspect's step-dependent views as one chart, scrubbed in the browser: the cursor
    strip (:func:`heatmap_cursor_chart`) with a range input and clickable checkpoints,
    the heatmap (:func:`heatmap_chart`) below it, then the histogram and the scatter
    (:func:`histogram_chart`, :func:`scatter_chart`) side by side, ``panel_width`` pixels
    each (the strip and the heatmap span both). Their data hold every scrubbable
    checkpoint (:mod:`app.tables.scrub`); the one point selection ``at`` on the
    ``checkpoint`` position (starting at ``start``, an index into
    :func:`app.tables.scrub.scrub_indices`) filters the strip, the histogram and the
    scatter, so one step drives all of them. A click on a heatmap cell or a scatter point
    selects its sample (param ``pick``).

    Returns the chart or, with ``as_spec``, (spec, datasets): a spec without data whose
    views read the named datasets "tick", "heat", "hist" and "point" of that dict."""
    indices = scrub_indices(len(run.sample_steps), max_checkpoints)
    n = len(indices)
    start = int(np.clip(start if start >= 0 else n + start, 0, max(n - 1, 0)))
    strip = _cursor_params(run, order, mark_noisy, max_marks, metric)
    heat_params, heat = _heatmap_parts(run, metric, order, mark_noisy, max_marks, 360, False)
    hist_params, edges = _histogram_params(run, metric, 30, 240)
    point_params, points = _scatter_parts(run, point_frame(run, indices, max_points), color_by,
                                          300)
    views = (
        ("tick", _heatmap_cursor_template,
         {**strip, "at": SCRUB_PARAM, "positions": n, "start": start}),
        ("heat", _heatmap_template, {**heat_params, "view": "heat_view"}),
        ("hist", _histogram_template, {**hist_params, "at": SCRUB_PARAM}),
        ("point", _scatter_template, {**point_params, "at": SCRUB_PARAM, "view": "point_view"}),
    )
    datasets = {
        "tick": tick_frame(run, indices, strip["x0"], strip["x1"]),
        "heat": _compact(heat),
        "hist": _compact(histogram_frame(run, metric, indices, edges)),
        "point": points,
    }
    key = tuple((name, template, tuple(sorted(p.items()))) for name, template, p in views)
    if as_spec:
        return json.loads(_cached_scrub_spec(key, panel_width)), datasets
    return _scrub_template(key, panel_width).properties(datasets=datasets)


def _scrub_template(key: tuple, panel_width: int) -> alt.VConcatChart:
    part = {name: template(**dict(params)).properties(data=alt.Data(name=name))
            for name, template, params in key}
    row = alt.hconcat(part["hist"].properties(width=panel_width),
                      part["point"].properties(width=panel_width)).resolve_scale(
                          color="independent")
    # the strip and the heatmap as wide as the row below (its legends included): fixed
    # widths, since the autosize of a chart with a row inside cannot fit a column
    wide = 2 * panel_width + 150
    with warnings.catch_warnings():  # one "pick" in two views is meant: Altair merges them
        warnings.filterwarnings("ignore", "Automatically deduplicated selection")
        return (alt.vconcat(part["tick"].properties(width=wide),
                            part["heat"].properties(width=wide), row, spacing=8)
                .resolve_scale(color="independent", x="independent", y="independent")
                .properties(autosize={"type": "pad"}))


@functools.lru_cache(maxsize=32)
def _cached_scrub_spec(key: tuple, panel_width: int) -> str:
    spec = _scrub_template(key, panel_width).to_dict(validate=False)
    spec.pop("datasets", None)
    spec.get("config", {}).pop("view", None)
    if not spec.get("config"):
        spec.pop("config", None)
    return json.dumps(spec)
