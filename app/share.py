"""Download panel shared by the pages: a run or sweep folder as zip, the HTML report,
scalars CSV, per-sample CSV / NPZ and chart images (PNG / SVG rendered offline).

Every file is built only when its button is clicked (Streamlit's deferred downloads), so
a page pays nothing for what nobody downloads. Usable for a saved folder, a live Run that
is not saved yet, or both::

    share.download_panel("inspect_dl", run=run, folder=run_folder)
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import streamlit as st

from app import charts, exports, runs_store
from ijr_core.protocol import RunLike

# The downloadable charts: every chart of the run-chart registry, by its menu label.
CHART_EXPORTS: dict[str, Callable[[Any], Any]] = {
    chart.label: chart.build for chart in charts.RUN_CHARTS.values()
}

# The files of a run: (button label, builder(run), file name suffix, mime, key suffix, help).
RUN_FILES = (
    ("Scalars CSV", exports.scalars_csv, "scalars.csv", "text/csv", "scsv", None),
    ("Per-sample NPZ", exports.samples_npz, "samples.npz", "application/octet-stream", "npz", None),
    (
        "Per-sample CSV",
        exports.samples_csv,
        "samples.csv",
        "text/csv",
        "pcsv",
        "One row per (checkpoint, sample).",
    ),
)


def chart_image(run: RunLike, name: str, fmt: str, width: int = 720) -> bytes | str:
    """PNG bytes or SVG text of the chart ``name`` of CHART_EXPORTS for ``run``."""
    chart = CHART_EXPORTS[name](run).properties(width=width)
    return exports.chart_png(chart) if fmt == "png" else exports.chart_svg(chart)


def _report(run: RunLike, folder: Path | None) -> bytes:
    """The HTML report; a folder that cannot be read gives a short page saying why (an
    exception in a deferred download would only fail silently in the browser)."""
    import html

    from app import report

    try:
        text = report.report_html(folder) if folder is not None else report.run_report_html(run)
    except Exception as exc:  # noqa: BLE001 - reported inside the downloaded file
        what = html.escape(f"{type(exc).__name__}: {exc}")
        text = (
            "<!doctype html><meta charset='utf-8'><title>IJR explorer report</title>"
            f"<h1>The report could not be built</h1><p>{what}</p>"
        )
    return text.encode("utf-8")


def download_panel(
    key: str,
    run: RunLike | None = None,
    folder: Path | None = None,
    expanded: bool = False,
    report: bool = True,
) -> None:
    """An expander "Download" with the folder as zip and the HTML report (``folder``: a
    run, sweep or comparison folder), and for a ``run`` its scalars CSV, per-sample CSV /
    NPZ and chart images. ``key`` prefixes the widget keys (unique per page);
    ``report=False`` leaves out the report (a damaged folder: only its zip is offered)."""
    if run is None and folder is None:
        return
    folder = Path(folder) if folder is not None else None
    stem = exports.safe_filename(folder.name if folder is not None else "run")
    with st.expander("Download", expanded=expanded):
        c1, c2 = st.columns(2)
        if folder is not None:
            c1.download_button(
                "Folder as zip",
                lambda: runs_store.export_zip(folder),
                file_name=f"{stem}.zip",
                mime="application/zip",
                key=f"{key}_zip",
                on_click="ignore",
                help="The run format (JSON + NPZ, no pickle); upload it on Compare → Manage.",
            )
        if report:
            c2.download_button(
                "HTML report (all charts, config, phases)",
                lambda: _report(run, folder),
                file_name=f"{stem}-report.html",
                mime="text/html",
                key=f"{key}_report",
                on_click="ignore",
                help="Standalone: charts embedded as SVG, no network needed. "
                "Also: python -m app.report FOLDER --out report.html",
            )
        if run is None:
            return
        for col, (label, build, suffix, mime, name, tip) in zip(
            st.columns(3), RUN_FILES, strict=True
        ):
            col.download_button(
                label,
                partial(build, run),
                f"{stem}-{suffix}",
                mime,
                key=f"{key}_{name}",
                on_click="ignore",
                help=tip,
            )
        chart_downloads(run, stem, key)


def chart_downloads(run: RunLike, stem: str, key: str) -> None:
    """Pick a chart; its PNG and SVG are rendered offline (vl-convert) when clicked."""
    c1, c2, c3 = st.columns([2, 1, 1], vertical_alignment="bottom")
    name = c1.selectbox("Chart image", list(CHART_EXPORTS), key=f"{key}_chart")
    slug = exports.safe_filename(name, "chart")
    for col, (fmt, mime) in zip(
        (c2, c3), (("png", "image/png"), ("svg", "image/svg+xml")), strict=True
    ):
        col.download_button(
            fmt.upper(),
            partial(chart_image, run, name, fmt),
            f"{stem}-{slug}.{fmt}",
            mime,
            key=f"{key}_{fmt}",
            on_click="ignore",
        )
