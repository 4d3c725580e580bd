"""The charts package (app/charts/) and the tables package (app/tables/): specs unchanged
by the split, the import boundary (no streamlit in charts or tables, no altair in tables),
the run-chart registry and the re-exports that keep ``from app import charts,
compare_charts`` working."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

from app import charts, compare_charts, report, share
from app.synthetic import synthetic_run
from tests.app import chart_cases

ROOT = Path(__file__).resolve().parents[2]


def test_every_chart_and_table_matches_the_snapshot():
    """Spec and data of every chart (and every table) on fixed synthetic runs hash to the
    fingerprints recorded before app/charts.py and app/compare_charts.py were split."""
    expected = json.loads(chart_cases.SNAPSHOT.read_text())
    got = {name: chart_cases.fingerprint(build()) for name, build in chart_cases.cases().items()}
    assert set(got) == set(expected)
    changed = sorted(name for name in got if got[name] != expected[name])
    assert not changed, f"charts whose spec or data changed: {changed}"


def _imports(path: Path) -> set[str]:
    """Top-level package names of every import statement in a file (function bodies too)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module.split(".")[0])
    return names


CHART_FILES = sorted((ROOT / "app" / "charts").glob("*.py")) + [ROOT / "app/compare_charts.py"]


PURE_FILES = sorted((ROOT / "app" / "tables").glob("*.py"))


@pytest.mark.parametrize("path", CHART_FILES + PURE_FILES, ids=lambda p: p.name)
def test_charts_and_tables_never_import_streamlit(path):
    assert "streamlit" not in _imports(path)


@pytest.mark.parametrize("path", PURE_FILES, ids=lambda p: p.name)
def test_tables_never_import_altair(path):
    assert not {"altair", "streamlit", "vl_convert"} & _imports(path)


def test_importing_charts_and_tables_pulls_no_ui_library():
    """At run time too: app.tables loads neither altair nor streamlit, app.charts (every
    module of the package) no streamlit."""
    code = (
        "import sys, importlib, pkgutil\n"
        "import app.tables\n"
        "for m in pkgutil.iter_modules(app.tables.__path__):\n"
        "    importlib.import_module('app.tables.' + m.name)\n"
        "bad = [m for m in ('streamlit', 'altair') if m in sys.modules]\n"
        "assert not bad, ('app.tables pulled', bad)\n"
        "import app.charts, app.compare_charts\n"
        "for m in pkgutil.iter_modules(app.charts.__path__):\n"
        "    importlib.import_module('app.charts.' + m.name)\n"
        "assert 'streamlit' not in sys.modules, 'app.charts pulled streamlit'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=str(ROOT))


def test_every_public_name_is_reexported_by_both_entry_points():
    assert len(charts.__all__) == len(set(charts.__all__))
    for name in charts.__all__:
        assert getattr(compare_charts, name) is getattr(charts, name)
    assert compare_charts.overlay_chart is charts.compare.overlay_chart
    assert charts.final_metrics.__module__ == "app.tables.runs"


@pytest.fixture(scope="module")
def run():
    return synthetic_run(n_samples=40, n_checkpoints=8, steps=120, n_classes=3, seed=5)


def test_registry_charts_are_the_chart_functions(run):
    """run_chart(name) is the registered function: the same spec and data."""
    for name, entry in charts.RUN_CHARTS.items():
        assert charts.run_chart(name, run).to_dict() == entry.build(run).to_dict()
    sharp = charts.run_chart("sharpness", run, as_spec=True)
    direct = charts.sharpness_chart(run, as_spec=True)
    assert sharp[0] == direct[0] and sharp[1].equals(direct[1])
    with pytest.raises(KeyError, match="known: sharpness"):
        charts.run_chart("nope", run)


def test_downloads_and_report_list_the_registry(run):
    """The download menu offers exactly the registered charts, by label; the report has a
    section per registered chart (per-sample ones only when the run has checkpoints)."""
    labels = [c.label for c in charts.RUN_CHARTS.values()]
    assert list(share.CHART_EXPORTS) == labels and len(set(labels)) == len(labels)
    page = report.run_report_html(run)
    for entry in charts.RUN_CHARTS.values():
        assert f"<h2>{entry.title}</h2>" in page.replace("&lt;", "<").replace("&gt;", ">")
    assert sum(c.raster for c in charts.RUN_CHARTS.values()) == page.count("data:image/png")
