"""AppTest of the Compare page: every section renders, a tiny 2-η sweep and a tiny optimizer
comparison complete through the page and reopen from disk, a running sweep stops and keeps
its started runs, bad zips are rejected with an
error element, delete asks for confirmation."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from app import compare_charts, runs_store
from app.synthetic import synthetic_run

PAGE = str(Path(__file__).resolve().parents[2] / "app" / "app_pages" / "compare.py")
# The conftest's tiny moons config as overrides of the two-moons preset (~1 s per run).
TINY_OVERRIDES = (
    "n_train=80&n_test=40&probe_size=80&width=8&depth=1&steps=12&probe_every=4&device=cpu"
)


def _app(section: str | None = None) -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=120)
    at.run()
    if section is not None:
        at.radio(key="cmp_section").set_value(section).run()
    assert not at.exception, [e.value for e in at.exception]
    assert not _errors(at), _errors(at)
    return at


def _charts(at) -> int:
    return len(at.get("vega_lite_chart"))


def _errors(at) -> list[str]:
    return [e.value for e in at.error]


def test_runs_section_shows_this_sessions_run_first(runs_dir, tiny_config):
    from app.session import TrainingJob

    job = TrainingJob(tiny_config)
    job.run_sync()
    at = AppTest.from_file(PAGE, default_timeout=120)
    at.session_state["job"] = job
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    picked = at.multiselect(key="cmp_runs").value
    assert picked[0].startswith("● current") and picked[1].startswith("demo")
    assert _charts(at) == 4


def test_runs_section_overlays_demo_runs(runs_dir):
    at = _app()
    assert len(at.multiselect(key="cmp_runs").value) == 2  # two demo runs by default
    assert _charts(at) == 4
    at.radio(key="cmp_x").set_value("time")
    at.slider(key="cmp_smooth").set_value(0.5)
    at.checkbox(key="cmp_group").check().run()
    assert not at.exception and not _errors(at)
    assert _charts(at) == 4
    assert len(at.dataframe) == 2  # config differences + final metrics
    specs = [json.loads(c.proto.spec) for c in at.get("vega_lite_chart")]
    assert all(s["config"]["axis"]["labelFontSize"] >= 13 for s in specs)  # lecture room


def test_demo_sweep_loads_with_four_runs_and_is_small():
    from ijr_core.sweep import is_sweep_folder, load_sweep

    demos = runs_store.demo_sweeps()
    assert [p.name for p in demos] == ["4-lr-sweep"]
    assert is_sweep_folder(demos[0])
    assert demos[0] not in runs_store.demo_runs()  # demo_runs() lists run folders only
    assert all((p / "run.json").is_file() for p in runs_store.demo_runs())
    sweep = load_sweep(demos[0])
    assert sweep.status == "finished" and len(sweep.runs) == 4
    assert sweep.lrs.tolist() == [0.2, 0.3, 0.4, 0.5]
    for run in sweep.runs:  # every η settles near its own 2/η (issue 14: not 1.7× / 2.6×)
        ratio = run.scalars["sharpness"] / run.scalars["two_over_eta"]
        assert 0.85 <= np.median(ratio[np.argmax(ratio >= 0.9):]) <= 1.2
    assert sweep.m_norm_matrix().shape == (4, len(sweep.steps)) and len(sweep.steps) >= 30
    size = sum(f.stat().st_size for f in demos[0].rglob("*") if f.is_file())
    assert size <= 2e6
    # every η has an ARP to outline on the heatmap, earlier for larger η
    heatmap = compare_charts.sweep_heatmap_chart(sweep, "m_norm_mean").to_dict()
    rows = [r for data in heatmap["datasets"].values() for r in data if r["kind"] == "arp"]
    assert [r["eta"] for r in rows] == ["0.2", "0.3", "0.4", "0.5"]
    assert [r["step"] for r in rows] == sorted((r["step"] for r in rows), reverse=True)


def test_sweep_section_opens_the_demo_sweep_on_first_visit(runs_dir):
    at = _app("Learning-rate sweep")
    demo = str(runs_store.demo_sweeps()[0])
    assert at.selectbox(key="sweep_open").value == demo
    assert "demo (read-only)" in at.selectbox(key="sweep_open").format_func(demo)
    assert _charts(at) == 3 + 4  # heatmap, final ‖J‖², max ‖H‖ + four overlays
    heatmap = json.loads(at.get("vega_lite_chart")[0].proto.spec)  # the (η × step) heatmap
    assert heatmap["title"].startswith("⟨‖M‖⟩ over learning rate")
    assert "datum.kind === 'arp'" in json.dumps(heatmap["layer"])  # the ARP outline layer
    assert any("precomputed demo" in c.value for c in at.caption)
    # η = 0.2 never reaches the matched loss 0.1: the caption names what its cells show
    table = at.dataframe[0].value
    assert table["jac_at_loss"].isna().any()
    assert any(c.value.startswith("“None” at matched loss") for c in at.caption)


def test_optimizer_section_opens_the_demo_comparison_on_first_visit(runs_dir):
    at = _app("Optimizers")
    (demo,) = runs_store.demo_groups()
    assert at.selectbox(key="opt_open").value == str(demo)
    assert "demo (read-only)" in at.selectbox(key="opt_open").format_func(str(demo))
    table = at.dataframe[0].value
    assert sorted(table["optimizer"]) == ["ejr", "gd", "sam", "sgd"]
    assert _charts(at) == 4 and any("precomputed demo" in c.value for c in at.caption)


def test_demo_items_are_read_only_on_the_manage_section(runs_dir):
    at = _app("Manage & share")
    demos = [*runs_store.demo_runs(), *runs_store.demo_sweeps()]
    options = at.selectbox(key="manage_item").options
    for demo in demos:
        label = at.selectbox(key="manage_item").format_func(str(demo))
        assert label in options and "read-only" in label
        at.selectbox(key="manage_item").set_value(str(demo)).run()
        assert not at.exception and not _errors(at), _errors(at)
        keys = {b.key for b in at.button}
        assert not keys & {"manage_rename", "manage_delete", "manage_confirm_yes"}, keys
        assert not at.text_input  # no "New name" field
        assert any("read-only" in c.value for c in at.caption)
    assert all(d.exists() for d in demos)


def _start_sweep(overrides: str, lrs: str):
    """Start a two-moons sweep (one process) from the page; returns (AppTest, SweepJob)."""
    at = _app("Learning-rate sweep")
    at.selectbox(key="sweep_preset").set_value("two-moons")
    at.text_input(key="sweep_overrides").set_value(overrides)
    at.text_input(key="sweep_lrs").set_value(lrs)
    at.number_input(key="sweep_workers").set_value(1)
    at.button(key="sweep_start").click().run()
    assert not at.exception, [e.value for e in at.exception]
    return at, at.session_state["sweep_job"]


def test_tiny_sweep_completes_and_reopens(runs_dir):
    at, job = _start_sweep(TINY_OVERRIDES, "0.3, 0.7")
    assert job.join(timeout=120), "sweep did not finish"
    assert job.error is None, job.error
    at.run()
    assert not at.exception and not _errors(at), _errors(at)
    folders = [p for p in runs_dir.iterdir() if (p / "sweep.json").exists()]
    assert len(folders) == 1
    doc = json.loads((folders[0] / "sweep.json").read_text())
    assert doc["status"] == "finished" and doc["lrs"] == [0.3, 0.7]
    assert at.selectbox(key="sweep_open").value == str(folders[0])
    assert _charts(at) == 3 + 4  # heatmap, final ‖J‖², max ‖H‖ + four overlays
    # every chart has a caption saying what to look for (the overlays once had none)
    captions = [c.value for c in at.caption]
    assert (
        sum(
            c.startswith(
                ("Dashed: each run's own 2/η", "Impurity ⟨‖M‖⟩ of each run",
                 "Implicit Jacobian reg", "Test accuracy:")
            )
            for c in captions
        )
        >= 4
    ), captions
    # Reopening from disk in a fresh session shows the same views, with no training.
    again = _app("Learning-rate sweep")
    assert again.selectbox(key="sweep_open").value == str(folders[0])
    assert _charts(again) == 7 and not _errors(again)


def test_stop_a_running_sweep_keeps_its_started_runs(runs_dir):
    """The sweep's Stop button ends the run in progress (kept, status "stopped"), starts no
    more runs, and the sweep is saved with status "stopped" and reopens with what it has."""
    import time

    from ijr_core.sweep import load_sweep

    long = TINY_OVERRIDES.replace("steps=12", "steps=1000000")  # never ends by itself
    at, job = _start_sweep(long, "0.3, 0.5, 0.7")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and job.progress()["fraction"] == 0:
        time.sleep(0.1)  # until the first run has saved a probe
    assert job.alive and job.progress()["fraction"] > 0
    at.button(key="sweep_stop").click().run()
    assert job.join(timeout=60), "the sweep did not stop"
    assert job.error is None, job.error
    at.run()
    assert not at.exception and not _errors(at), _errors(at)
    folders = [p for p in runs_dir.iterdir() if (p / "sweep.json").exists()]
    assert len(folders) == 1
    sweep = load_sweep(folders[0])
    assert sweep.status == "stopped"
    assert list(sweep.lrs) == [0.3] and sweep.statuses == ["stopped"]
    assert sweep.meta["not_started"] == [0.5, 0.7]
    # the finished part stays viewable
    assert at.selectbox(key="sweep_open").value == str(folders[0])
    assert any("stopped" in w.value for w in at.warning)
    assert _charts(at) == 7


def test_bad_learning_rates_and_overrides_show_errors(runs_dir):
    at = _app("Learning-rate sweep")
    at.text_input(key="sweep_lrs").set_value("0.1, -2").run()
    assert any("positive" in e for e in _errors(at))
    at.text_input(key="sweep_overrides").set_value("widthh=3").run()
    assert any("widthh" in e for e in _errors(at))
    assert at.button(key="sweep_start").disabled
    assert not at.exception


def test_tiny_optimizer_comparison(runs_dir):
    at = _app("Optimizers")
    at.selectbox(key="opt_preset").set_value("two-moons")
    at.text_input(key="opt_overrides").set_value(TINY_OVERRIDES)
    at.multiselect(key="opt_methods").set_value(["gd", "sam"])
    at.text_input(key="opt_batch").set_value("40")
    at.button(key="opt_start").click().run()
    job = at.session_state["opt_job"]
    assert job.join(timeout=120) and job.error is None, job.error
    at.run()
    assert not at.exception and not _errors(at), _errors(at)
    table = at.dataframe[0].value
    assert list(table["optimizer"]) == ["gd", "sam"]
    assert list(table["batch"]) == ["full", "40"]
    assert (table["test acc"] >= 0).all() and (table["wall time (s)"] > 0).all()
    assert _charts(at) == 4
    assert any(c.value.startswith("Training loss per step") for c in at.caption)


def test_optimizer_comparison_over_seeds(runs_dir):
    at = _app("Optimizers")
    at.selectbox(key="opt_preset").set_value("two-moons")
    at.text_input(key="opt_overrides").set_value(TINY_OVERRIDES.replace("steps=12", "steps=4"))
    at.multiselect(key="opt_methods").set_value(["gd", "sgd"])
    at.text_input(key="opt_seeds").set_value("0, 1")
    at.button(key="opt_start").click().run()
    job = at.session_state["opt_job"]
    assert list(job.configs) == ["gd-s0", "gd-s1", "sgd-s0", "sgd-s1"]
    assert [c.seed for c in job.configs.values()] == [0, 1, 0, 1]
    assert job.join(timeout=120) and job.error is None, job.error
    at.run()
    assert not at.exception and not _errors(at), _errors(at)
    summary = at.dataframe[0].value
    assert list(summary["optimizer"]) == ["gd", "sgd"] and list(summary["seeds"]) == [2, 2]
    assert (summary["± test acc"] >= 0).all()
    at.text_input(key="opt_seeds").set_value("1, 1").run()
    assert any("distinct" in e for e in _errors(at))


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"this is not a zip", "not a zip"),
        (None, "unsafe path"),
    ],
)
def test_bad_zip_upload_shows_error(runs_dir, content, message):
    if content is None:
        import io
        import zipfile

        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as zf:
            zf.writestr("../run.json", "{}")
        content = buf.getvalue()
    at = _app("Manage & share")
    at.file_uploader(key="run_zip_upload").set_value(("bad.zip", content, "application/zip"))
    at.run()
    assert not at.exception
    assert any(message in e for e in _errors(at)), _errors(at)
    assert not runs_dir.exists() or not [p for p in runs_dir.iterdir() if p.name[0] != "."]


def test_upload_rename_and_confirmed_delete(runs_dir):
    run = synthetic_run(n_samples=20, n_checkpoints=5)
    src = run.save(runs_dir.parent / "src-run")
    data = runs_store.export_zip(src)
    at = _app("Manage & share")
    at.file_uploader(key="run_zip_upload").set_value(("my-run.zip", data, "application/zip"))
    at.run()
    assert not at.exception and not _errors(at), _errors(at)
    assert (runs_dir / "my-run" / "run.json").exists()
    item = str(runs_dir / "my-run")
    at.selectbox(key="manage_item").set_value(item).run()
    at.text_input(key=f"manage_new_name:{item}").set_value("renamed")
    at.button(key="manage_rename").click().run()
    assert (runs_dir / "renamed" / "run.json").exists() and not (runs_dir / "my-run").exists()
    assert at.selectbox(key="manage_item").value == str(runs_dir / "renamed")
    at.button(key="manage_delete").click().run()
    assert (runs_dir / "renamed").exists()  # only asked so far
    assert any("cannot be undone" in w.value for w in at.warning)
    at.button(key="manage_confirm_no").click().run()
    assert (runs_dir / "renamed").exists()
    at.button(key="manage_delete").click().run()
    at.button(key="manage_confirm_yes").click().run()
    assert not at.exception
    assert not (runs_dir / "renamed").exists()


def test_inputs_survive_switching_sections(runs_dir):
    at = _app("Learning-rate sweep")
    at.text_input(key="sweep_lrs").set_value("0.2, 0.4").run()
    at.radio(key="cmp_section").set_value("Runs").run()
    at.radio(key="cmp_section").set_value("Learning-rate sweep").run()
    assert at.text_input(key="sweep_lrs").value == "0.2, 0.4"
    assert not at.exception and not at.warning


def test_damaged_run_offers_its_zip_but_no_report(runs_dir):
    """Regression: the report button of a damaged run failed silently in the browser (the
    deferred callable raised); now only the zip is offered, and a report that cannot be
    built still downloads a page saying why."""
    from app import share

    bad = runs_dir / "damaged"
    synthetic_run(n_samples=10, n_checkpoints=3).save(bad)
    (bad / "samples.npz").unlink()
    at = AppTest.from_file(PAGE, default_timeout=120)
    at.run()
    at.radio(key="cmp_section").set_value("Manage & share").run()
    at.selectbox(key="manage_item").set_value(str(bad)).run()
    assert not at.exception
    assert any("samples.npz" in e for e in _errors(at)), _errors(at)
    keys = {b.proto.id for b in at.get("download_button")}
    assert any("manage_dl_zip" in k for k in keys), keys
    assert not any("manage_dl_report" in k for k in keys), keys
    page = share._report(None, bad).decode("utf-8")
    assert "could not be built" in page and "samples.npz" in page


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("opt_batch", "abc", "mini-batch size: 'abc' is not a whole number"),
        ("opt_batch", "-3", "not a whole number"),
        ("opt_seeds", "0, x", "seeds: 'x' is not a whole number"),
    ],
)
def test_optimizer_fields_explain_bad_numbers(runs_dir, key, value, message):
    """Regression: these showed Python's "invalid literal for int() with base 10"."""
    at = _app("Optimizers")
    at.text_input(key=key).set_value(value).run()
    assert not at.exception
    errors = _errors(at)
    assert any(message in e for e in errors) and not any("int()" in e for e in errors), errors
    assert at.button(key="opt_start").disabled
