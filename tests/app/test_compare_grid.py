"""AppTest of the Compare page's Grid section: a tiny lr × seed grid launched from the page
completes and opens like a sweep (seed means with bands), bad axes name the field, and a
grid without an lr axis opens as overlays."""

from __future__ import annotations

import json
from pathlib import Path

from streamlit.testing.v1 import AppTest

from ijr_core.grid import load_grid, run_grid

PAGE = str(Path(__file__).resolve().parents[2] / "app" / "app_pages" / "compare.py")
TINY = "n_train=80&n_test=40&probe_size=80&width=8&depth=1&steps=12&probe_every=4&device=cpu"


def _app() -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=120)
    at.run()
    at.radio(key="cmp_section").set_value("Grid").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _errors(at) -> list[str]:
    return [e.value for e in at.error]


def test_a_tiny_grid_runs_from_the_page_and_opens_like_a_sweep(runs_dir):
    at = _app()
    assert not _errors(at)
    at.selectbox(key="grid_preset").set_value("two-moons")
    at.text_input(key="grid_overrides").set_value(TINY)
    at.text_area(key="grid_axes").set_value("lr=0.3, 0.7\nseed=0:1:2").run()
    assert any("4 runs × 12 steps" in c.value for c in at.caption)
    at.button(key="grid_start").click().run()
    assert not at.exception, [e.value for e in at.exception]
    job = at.session_state["grid_job"]
    assert job.join(timeout=120) and job.error is None, job.error
    assert job.progress()["runs_done"] == 4 and "4/4 done" in job.progress()["line"]
    at.run()
    assert not at.exception and not _errors(at), _errors(at)
    (folder,) = [p for p in runs_dir.iterdir() if (p / "grid.json").exists()]
    assert json.loads((folder / "grid.json").read_text())["status"] == "finished"
    assert at.selectbox(key="grid_open").value == str(folder)
    assert len(at.get("vega_lite_chart")) == 3 + 4  # heatmap, ‖J‖² vs η, max ‖H‖, overlays
    table = at.dataframe[0].value
    assert list(table["lr"]) == [0.3, 0.7] and table["final_jac_std"].notna().all()
    grid = load_grid(folder)
    for lr, mean in zip(table["lr"], table["final_jac"], strict=True):
        finals = [r.last("jac_spectral_sq_mean") for v, r in zip(grid.values, grid.runs,
                                                                 strict=True) if v["lr"] == lr]
        assert abs(mean - sum(finals) / len(finals)) <= 1e-9 * abs(mean)


def test_bad_axes_name_the_field_and_disable_start(runs_dir):
    at = _app()
    at.text_area(key="grid_axes").set_value("lr=0.1\nwidthh=8").run()
    assert any("widthh" in e for e in _errors(at)) and at.button(key="grid_start").disabled
    at.text_area(key="grid_axes").set_value("optimizer=sgd,adam").run()
    assert any("optimizer" in e and "adam" in e for e in _errors(at))
    at.text_area(key="grid_axes").set_value("seed=0:2:x").run()
    assert any(e.startswith("Axes — seed:") for e in _errors(at))
    assert not at.exception


def test_a_grid_without_lr_opens_as_overlays(runs_dir, tiny_config):
    run_grid(tiny_config, {"width": [4, 8], "seed": [0, 1]}, out_dir=runs_dir / "g-width")
    at = _app()
    assert at.selectbox(key="grid_open").value == str(runs_dir / "g-width")
    assert not _errors(at) and len(at.get("vega_lite_chart")) == 4
    at.selectbox(key="grid_fix_width").set_value(1).run()
    assert not at.exception and not _errors(at)


def test_a_grid_job_on_ray_runs_its_driver_in_a_child_process(runs_dir, tiny_config):
    import pytest

    pytest.importorskip("ray")
    from app.jobs import GridJob

    job = GridJob(tiny_config, {"seed": [0, 1]}, runs_dir / "g-ray", ray_address="")
    job.run_sync()  # a local Ray of the child, started and ended with it
    assert job.error is None, job.error
    p = job.progress()
    assert p["runs_done"] == 2 and p["fraction"] == 1.0 and "2/2 done" in p["line"]
    grid = load_grid(runs_dir / "g-ray")
    assert grid.status == "finished" and grid.meta["executor"] == "ray"
    import ray

    assert not ray.is_initialized()  # this process never became a Ray driver


def test_html_report_of_a_grid_folder(tmp_path, tiny_config):
    from app.compare_charts import grid_runs
    from app.report import report_html

    grid = run_grid(tiny_config, {"lr": [0.3, 0.6], "seed": [0, 1]}, out_dir=tmp_path / "g")
    assert list(grid_runs(grid)) == ["η=0.3-s0", "η=0.3-s1", "η=0.6-s0", "η=0.6-s1"]
    html = report_html(tmp_path / "g")
    assert "grid lr × seed" in html and html.count("<svg") >= 3
