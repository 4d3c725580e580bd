"""Standalone HTML report of a run or a sweep/group folder.

    python -m app.report RUN_DIR --out report.html

The report needs no network and no JavaScript: every chart is rendered offline by
vl-convert and embedded as inline SVG (or as a base64 PNG for the per-sample heatmap,
whose tens of thousands of cells would make a heavy SVG). It holds the config, the phase
table (I beginning / II ARP / III later, SCIENCE.md's operational definition), final
metrics and the charts of :data:`app.charts.RUN_CHARTS` (runs) or of
:mod:`app.charts.compare` (sweeps and groups).
"""

from __future__ import annotations

import argparse
import base64
import html
import sys
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import pandas as pd

from app import charts, exports, scorecard, tables
from ijr_core import claims
from ijr_core.protocol import RunLike

WIDTH = 760
_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em auto;
max-width:900px;color:#222;padding:0 1em}
h1{font-size:1.5em}h2{font-size:1.2em;margin-top:2em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;font-size:.85em;margin:.5em 0}
td,th{border:1px solid #ddd;padding:2px 8px;text-align:left}
th{background:#f4f4f4}.chart{margin:1em 0}.note{color:#666;font-size:.85em}
.err{color:#b00}
"""


def _table(frame: pd.DataFrame, index: bool = True) -> str:
    # the index as a plain first column: to_html gives a named index a second, empty
    # header row
    if index:
        frame = frame.reset_index()
    return frame.to_html(
        index=False, border=0, float_format=lambda v: f"{v:.4g}", na_rep="–", escape=True
    )


def _embed(chart: Any, png: bool = False) -> str:
    """A chart as inline SVG (or base64 PNG), width fixed for the page."""
    try:
        chart = chart.properties(width=WIDTH)
    except (AttributeError, ValueError):
        pass
    if png:
        data = base64.b64encode(exports.chart_png(chart, scale=1.5)).decode("ascii")
        return (
            f'<div class="chart"><img alt="chart" style="max-width:100%" '
            f'src="data:image/png;base64,{data}"></div>'
        )
    svg = exports.chart_svg(chart)
    return f'<div class="chart">{svg}</div>'


def _section(title: str, build: Callable[[], Any], png: bool = False) -> str:
    """A titled chart; a chart that cannot be built becomes a one-line note."""
    try:
        body = _embed(build(), png=png)
    except Exception as exc:  # noqa: BLE001 - one bad chart must not lose the report
        body = f'<p class="err">not available: {html.escape(f"{type(exc).__name__}: {exc}")}</p>'
    return f"<h2>{html.escape(title)}</h2>\n{body}"


def config_table(run: RunLike) -> pd.DataFrame:
    """(field, value) rows of the run's config."""
    cfg = tables.config_dict(run)
    return pd.DataFrame({"field": list(cfg), "value": [str(v) for v in cfg.values()]})


def phase_table(run: RunLike) -> pd.DataFrame:
    """(phase, from step, to step) rows of the run's phase spans."""
    try:
        spans = run.phase_spans()
    except (KeyError, ValueError):
        spans = []
    return pd.DataFrame(
        [(charts.PHASE_NAMES.get(p, p), a, b) for p, a, b in spans],
        columns=["phase", "from step", "to step"],
    )


def _claims_part(card: Sequence[claims.Claim]) -> list[str]:
    """The scorecard section: heading, table, caption."""
    return [
        "<h2>Claims: what held</h2>",
        _table(scorecard.claims_frame(card), index=False),
        f'<p class="note">{html.escape(scorecard.CAPTION)}</p>',
    ]


def _page(title: str, parts: Sequence[str]) -> str:
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>\n"
        f"<h1>{html.escape(title)}</h1>\n" + "\n".join(parts) + "\n</body></html>\n"
    )


_NOTE = (
    '<p class="note">Phases follow the project\'s operational definition (docs/science.md): '
    "I until ‖H‖ has stayed at or above eos_fraction · 2/η for phase_sustain probes (an "
    "initial catapult does not count); II (the ARP) from then on while the running median of "
    "⟨‖M‖⟩ stays at or above arp_fraction · its peak since then; III while it is below; "
    "unstable while ‖H‖ stays at or above unstable_factor · 2/η. Every boundary needs "
    "phase_sustain probes in a row.</p>"
)


def run_report_html(run: RunLike, title: str | None = None) -> str:
    """The report of one run: summary, config, phases, final metrics and every chart."""
    title = title or f"IJR explorer report · {tables.config_value(run, 'name') or 'run'}"
    meta = run.meta or {}
    summary = pd.DataFrame(
        {
            "": ["status", "step reached", "device", "created", "diverged at"],
            "value": [
                run.status,
                run.step,
                meta.get("device"),
                meta.get("created"),
                "no" if meta.get("diverged_at") is None else meta["diverged_at"],
            ],
        }
    )
    final = tables.final_metrics({"run": run})
    parts = [
        "<h2>Summary</h2>",
        _table(summary, index=False),
        _table(final),
        "<h2>Phases</h2>",
        _table(phase_table(run), index=False),
        _NOTE,
        *_claims_part(claims.run_claims(run)),
    ]
    has_samples = bool(len(run.sample_steps))
    for chart in charts.RUN_CHARTS.values():  # every registered run chart, in order
        if has_samples or not chart.per_sample:
            build = partial(chart.build, run, **chart.report_options)
            parts.append(_section(chart.title, build, png=chart.raster))
    parts += ["<h2>Config</h2>", _table(config_table(run), index=False)]
    return _page(title, parts)


def runs_report_html(
    runs: dict[str, RunLike],
    title: str,
    sweep: tables.SweepLike | None = None,
    optimizers: bool = False,
) -> str:
    """The report of several runs (a sweep when ``sweep`` is given): the sweep charts,
    overlays of the key metrics, config differences, final metrics and phase tables."""
    card = (claims.sweep_claims(sweep.lrs, sweep.runs) if sweep is not None
            else claims.group_claims(runs))
    parts = _claims_part(card)
    if sweep is not None:
        final = tables.sweep_final_frame(sweep, matched_loss=0.1)  # both scatter charts
        parts += [
            _section(
                "⟨‖M‖⟩ over η and training (ARP outlined)",
                lambda: charts.sweep_heatmap_chart(sweep),
            ),
            _section(
                "⟨‖J‖²⟩ against η (final, and at training loss ≤ 0.1)",
                lambda: charts.final_jac_chart(sweep, matched_loss=0.1, final=final),
            ),
            _section(
                "Max ‖H‖ against 2/η", lambda: charts.max_sharpness_chart(sweep, final=final)
            ),
        ]
    for metric in ("sharpness", "m_norm_mean", "jac_spectral_sq_mean", "test_acc"):
        title_m = charts.OVERLAY_METRICS[metric][1]
        parts.append(_section(title_m, lambda m=metric: charts.overlay_chart(runs, m)))
    if optimizers:
        parts += ["<h2>Optimizers</h2>", _table(tables.optimizer_table(runs))]
    parts += ["<h2>Final metrics</h2>", _table(tables.final_metrics(runs))]
    diff = tables.config_diff(runs)
    parts += [
        "<h2>Config differences</h2>",
        _table(diff) if diff.shape[1] else "<p>The configs are identical.</p>",
    ]
    first = next(iter(runs.values()), None)
    if first is not None:
        name = html.escape(next(iter(runs)))
        parts += [f"<h2>Config of {name}</h2>", _table(config_table(first), index=False)]
    parts.append("<h2>Phases</h2>")
    for label, run in runs.items():
        parts += [f"<h3>{html.escape(label)}</h3>", _table(phase_table(run), index=False)]
    parts.append(_NOTE)
    return _page(title, parts)


def report_html(folder: str | Path) -> str:
    """Report of a run, sweep, grid or group folder (detected from its json files)."""
    from app import runs_store
    from ijr_core.run import RunFormatError, load_run
    from ijr_core.sweep import load_sweep

    folder = Path(folder)
    kind = runs_store.kind_of(folder)
    if kind == "run":
        return run_report_html(load_run(folder), f"IJR explorer report · {folder.name}")
    if kind == "sweep":
        sweep = load_sweep(folder)
        return runs_report_html(
            tables.sweep_runs(sweep),
            f"IJR explorer · learning-rate sweep · {folder.name}",
            sweep,
        )
    if kind == "grid":
        from ijr_core.grid import load_grid

        grid = load_grid(folder)
        title = f"IJR explorer · grid {' × '.join(grid.axes)} · {folder.name}"
        sweep = grid.sweep() if "lr" in grid.axes else None  # seed means, first values
        fixed = None if sweep is None else sweep.meta["grid"]
        return runs_report_html(tables.grid_runs(grid, fixed), title, sweep)
    if kind == "group":
        group = runs_store.load_group(folder)
        title = f"IJR explorer · {group['title']} · {folder.name}"
        return runs_report_html(group["runs"], title, optimizers=True)
    raise RunFormatError(f"{folder} holds no run.json, sweep.json, grid.json or group.json")


def main(argv: Sequence[str] | None = None) -> int:
    """CLI: write the HTML report of RUN_DIR; exit status 2 with a message when it fails."""
    parser = argparse.ArgumentParser(
        prog="python -m app.report",
        description="Standalone HTML report (charts, config, phase table) of a run or sweep.",
    )
    parser.add_argument("folder", help="run, sweep or group folder")
    parser.add_argument("--out", default="report.html", help="output HTML file")
    args = parser.parse_args(argv)
    try:
        text = report_html(args.folder)
    except (ValueError, TypeError, KeyError, RecursionError, MemoryError) as exc:
        print(f"error: {type(exc).__name__ if not str(exc) else exc}", file=sys.stderr)
        return 2
    out = Path(args.out)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text, encoding="utf-8")
    except OSError as exc:  # e.g. an unwritable --out: one line, no traceback
        print(f"error: cannot write {out}: {exc.strerror or type(exc).__name__}", file=sys.stderr)
        return 2
    print(f"wrote {out} ({out.stat().st_size / 1024:.0f} KiB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
