"""The registry of a run's charts: one place that names them, for the Train page, the
chart downloads (app/share.py) and the HTML report (app/report.py)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from app.charts.samples import heatmap_chart, scatter_chart
from app.charts.scalars import (
    accuracy_chart,
    jacobian_chart,
    loss_chart,
    m_norm_chart,
    sharpness_chart,
)
from ijr_core.protocol import RunLike


@dataclass(frozen=True)
class RunChart:
    """A chart of one run.

    label: its name in the download menu; title: its heading in the report;
    build(run, **options): the chart (``as_spec=True``: (cached spec, data));
    per_sample: needs per-sample checkpoints; raster: the report embeds it as PNG (tens of
    thousands of cells make a heavy SVG); report_options: the options the report passes."""

    label: str
    title: str
    build: Callable[..., Any]
    per_sample: bool = False
    raster: bool = False
    report_options: Mapping[str, Any] = field(default_factory=dict)


RUN_CHARTS: Mapping[str, RunChart] = MappingProxyType({
    "sharpness": RunChart("sharpness panel", "Sharpness panel", sharpness_chart),
    "m_norm": RunChart("⟨‖M‖⟩", "Mean impurity ⟨‖M‖⟩", m_norm_chart),
    "jacobian": RunChart("Jacobian norms", "Jacobian norms", jacobian_chart,
                         report_options={"log": True}),
    "loss": RunChart("loss", "Loss", loss_chart),
    "accuracy": RunChart("accuracy", "Accuracy", accuracy_chart),
    "heatmap": RunChart("per-sample ‖M‖ heatmap", "Per-sample ‖M‖", heatmap_chart,
                        per_sample=True, raster=True),
    "scatter": RunChart("λ* against ‖M‖", "λ* against ‖M‖ (final checkpoint)", scatter_chart,
                        per_sample=True),
})


def run_chart(name: str, run: RunLike, **options: Any) -> Any:
    """The registered chart ``name`` of ``run`` (``options`` go to its chart function)."""
    try:
        chart = RUN_CHARTS[name]
    except KeyError:
        raise KeyError(f"unknown chart {name!r}; known: {', '.join(RUN_CHARTS)}") from None
    return chart.build(run, **options)
