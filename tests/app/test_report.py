"""HTML report of a run and of a sweep: standalone (no scripts, no network), every chart
embedded, config and phase tables present; the CLI writes it and fails cleanly."""

from __future__ import annotations

import html
import re

import numpy as np
import pytest

from app import report
from app.synthetic import synthetic_run
from ijr_core.sweep import Sweep


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    run = synthetic_run(n_samples=20, n_checkpoints=8, steps=80)
    return run, run.save(tmp_path_factory.mktemp("r") / "run-a")


def _standalone(text: str) -> None:
    assert text.startswith("<!doctype html>")
    assert "<script" not in text.lower()
    assert not re.search(r"(src|href)=\"https?://", text)


def test_run_report_via_cli(run_dir, tmp_path):
    run, folder = run_dir
    out = tmp_path / "out" / "report.html"
    assert report.main([str(folder), "--out", str(out)]) == 0
    text = out.read_text(encoding="utf-8")
    _standalone(text)
    assert text.count("<svg") == 6  # sharpness, ‖M‖, ‖J‖², loss, accuracy, λ* scatter
    assert text.count("data:image/png;base64,") == 1  # the per-sample heatmap
    assert 'class="err"' not in text
    for phase, start, end in run.phase_spans():
        name = report.charts.PHASE_NAMES[phase]
        assert re.search(rf"<td>{name}</td>\s*<td>{start}</td>\s*<td>{end}</td>", text)
    assert "<td>eos_fraction</td>" in text and "<td>label_noise</td>" in text
    # a run that did not diverge says so, not "None"
    assert re.search(r"<td>diverged at</td>\s*<td>no</td>", text)
    _has_scorecard(text, report.claims.run_claims(run))


def _has_scorecard(text: str, card) -> None:
    """The report holds the claims table: one row per check / claim with its verdict."""
    assert "<h2>Claims: what held</h2>" in text
    for c in card:
        verdict = report.scorecard.VERDICT_MARKS[c.verdict]
        assert re.search(rf"<td>{re.escape(html.escape(c.name))}</td>\s*<td>.*?</td>\s*"
                         rf"<td>{re.escape(verdict)}</td>", text), c


def test_sweep_report(tmp_path):
    lrs = np.array([0.5, 0.1])
    runs = [synthetic_run(n_samples=10, n_checkpoints=6, lr=lr) for lr in lrs]
    folder = Sweep(config=runs[0].config, lrs=lrs, runs=runs).save(tmp_path / "sweep")
    text = report.report_html(folder)
    _standalone(text)
    assert "learning-rate sweep" in text
    assert text.count("<svg") == 3 + 4  # heatmap, final ‖J‖², max ‖H‖ + 4 overlays
    assert "<h3>η=0.5</h3>" in text and "<h3>η=0.1</h3>" in text
    assert "<th>lr</th>" in text  # the config difference table
    _has_scorecard(text, report.claims.sweep_claims(lrs, runs))
    assert "IJR: larger η" in text


def test_cli_reports_bad_folder(tmp_path, capsys):
    assert report.main([str(tmp_path), "--out", str(tmp_path / "x.html")]) == 2
    assert "error:" in capsys.readouterr().err
    (tmp_path / "run.json").write_text("{broken")
    assert report.main([str(tmp_path), "--out", str(tmp_path / "x.html")]) == 2
    assert not (tmp_path / "x.html").exists()


def test_group_report_has_the_optimizer_table(tmp_path):
    from app.runs_store import write_group

    group = tmp_path / "cmp"
    for method in ("gd", "sam"):
        run = synthetic_run(n_samples=8, n_checkpoints=5)
        run.config = run.config.replace(optimizer=method, batch_size=None if method == "gd" else 4)
        run.save(group / method)
    write_group(group, ["gd", "sam"], "optimizer comparison")
    text = report.report_html(group)
    _standalone(text)
    assert "<h2>Optimizers</h2>" in text and text.count("<svg") == 4
    assert re.search(r"<td>sam</td>\s*<td>sam</td>\s*<td>4</td>", text)
    assert "EJR vs others" in text  # no EJR run: not measurable, said so
    # one header row per table (a named index used to add a second, empty one)
    heads = re.findall(r"<thead>(.*?)</thead>", text, flags=re.S)
    assert heads and all(h.count("<tr") == 1 for h in heads)


def test_step_axis_labels_never_run_into_each_other_at_report_width():
    """About ten step ticks whatever the run's length: at the report's width Vega's default
    put 31 labels on a 600-step run and the last two ran together ("580600")."""

    from app import charts, exports
    from app.report import WIDTH
    from app.synthetic import synthetic_run

    for steps in (600, 800, 1500, 3000, 10_000):
        chart = charts.run_chart("sharpness", synthetic_run(steps=steps)).properties(width=WIDTH)
        svg = exports.chart_svg(chart)
        axis = svg[svg.index('aria-label="X-axis'):]
        labels = axis[axis.index("role-axis-label"):].split("</g>")[0]
        xs = [float(x) for x in re.findall(r"<text[^>]*translate\(([\d.]+),", labels)]
        spacing = float(np.min(np.diff(xs)))
        assert 5 <= len(xs) <= 16 and spacing >= 45, (steps, len(xs), spacing)
