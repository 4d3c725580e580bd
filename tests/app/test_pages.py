"""AppTest: every page runs without exception, widgets by key, a tiny training through the
Train page produces charts and a saved run, Inspect scrubs it, bad input shows st.error."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from app_constants import APP, TINY
from streamlit.testing.v1 import AppTest
from waiting import wait_until

from app import runs_store
from ijr_core.config import PRESETS, RunConfig


def _app(runs_dir=None, **query) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120)
    for k, v in query.items():
        at.query_params[k] = v
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _charts(at) -> list:
    return at.get("vega_lite_chart")


def _chart_specs(at) -> list[dict]:
    return [json.loads(c.proto.spec) for c in _charts(at)]


def _scrubber(at) -> dict:
    """The Inspect chart's step selection (the param ``at``, bound to a range input)."""
    for spec in _chart_specs(at):
        for param in spec.get("params", []):
            if param["name"] == "at":
                return param
    raise AssertionError("no scrub chart on the page")


def _shown_step(at) -> int:
    """The step Inspect's server-side views show ("**At step N** ...")."""
    (line,) = [m.value for m in at.markdown if m.value.startswith("**At step ")]
    return int(line.split()[2].strip("*"))


def _query(at) -> dict[str, str]:
    """The app's URL query parameters as str -> str."""
    return {k: v[-1] if isinstance(v, list) else v for k, v in at.query_params.items()}


def _errors(at) -> list[str]:
    return [e.value for e in at.error]


def test_train_page_renders_with_demo_charts(runs_dir):
    at = _app(runs_dir)
    assert at.title[0].value.startswith("IJR explorer")
    assert {b.key for b in at.button} >= {"btn_start", "btn_pause", "btn_stop"}
    assert at.selectbox(key="preset").value == "edge-of-stability"
    assert at.text_input(key="cfg_lr").value == "0.3"
    assert any("2/η = **6.667**" in c.value for c in at.sidebar.caption)
    assert len(_charts(at)) >= 5  # demo run: sharpness, ⟨‖M‖⟩, ‖J‖², loss, accuracy
    specs = _chart_specs(at)
    titles = [s.get("title") for s in specs]
    # fonts sized for a lecture room, not the theme's 12 px ticks and legends
    assert all(s["config"]["axis"]["labelFontSize"] >= 13 for s in specs)
    assert all(s["config"]["legend"]["labelFontSize"] >= 13 for s in specs)
    assert "Sharpness against the edge of stability 2/η (probe mode: train)" in titles
    # one caption per chart, saying what to look for (accuracy once shared loss's caption)
    captions = [c.value for c in at.caption]
    assert any(c.startswith("A loss spike") for c in captions)
    assert any(c.startswith("At step ") and "train " in c for c in captions)
    assert not _errors(at)
    assert not at.warning


def test_demo_chart_follows_the_preset_and_says_how_it_differs(runs_dir):
    at = _app(runs_dir)
    demo = runs_store.matching_demo(RunConfig.from_dict({}, base=PRESETS["edge-of-stability"]))
    assert demo is not None and demo[0].name in at.info[0].value
    at.selectbox(key="preset").set_value("two-moons").run()
    info = at.info[0].value
    assert "3-two-moons" in info and "same setting" in info
    # the sharpness caption is computed from the two-moons demo (2/η = 6.667), not digits
    run = runs_store.load_cached(runs_store.DEMO_DIR / "3-two-moons")
    peak = max(run.scalars["sharpness"] / run.scalars["two_over_eta"])
    assert any(f"peak of {peak:.2f}×" in c.value for c in at.caption)
    at.text_input(key="cfg_lr").set_value("0.1").run()
    assert "differs in lr = 0.3 (sidebar: 0.1)" in at.info[0].value


@pytest.mark.parametrize(
    "field,value,named",
    [
        ("lr", "-1", "lr"),
        ("lr", "fast", "lr"),
        ("steps", "0", "steps"),
        ("n_train", "0", "n_train"),
    ],
)
def test_invalid_sidebar_value_shows_an_error_naming_the_field(runs_dir, field, value, named):
    at = _app(runs_dir)
    at.text_input(key=f"cfg_{field}").set_value(value).run()
    assert not at.exception
    errors = _errors(at)
    assert errors and all(e.split(":")[0].endswith(named) for e in errors[-1:])
    assert any(named in e for e in errors)
    assert at.button(key="btn_start").disabled


@pytest.mark.parametrize(
    ("dataset", "hint"), [("csv", "Your own data (CSV)"), ("mnist", "nothing is downloaded")]
)
def test_a_file_dataset_without_a_file_says_what_to_do(runs_dir, dataset, hint):
    """Regression: picking csv/mnist showed only "data_path: None is not allowed"."""
    at = _app(runs_dir)
    at.selectbox(key="cfg_dataset").set_value(dataset).run()
    assert not at.exception
    errors = _errors(at)
    assert errors and all(hint in e for e in errors), errors
    assert at.button(key="btn_start").disabled


def test_preset_picker_loads_the_preset(runs_dir):
    at = _app(runs_dir)
    at.selectbox(key="preset").set_value("two-moons").run()
    assert not at.exception
    moons = PRESETS["two-moons"]
    assert at.selectbox(key="cfg_dataset").value == "moons"
    assert at.text_input(key="cfg_lr").value == repr(moons.lr)
    assert _query(at)["preset"] == "two-moons"


def test_query_string_restores_the_config_and_mirrors_changes(runs_dir):
    at = _app(runs_dir, preset="two-moons", lr="0.7", steps="50")
    assert at.selectbox(key="cfg_dataset").value == "moons"
    assert at.text_input(key="cfg_lr").value == "0.7"
    assert at.text_input(key="cfg_steps").value == "50"
    at.text_input(key="cfg_width").set_value("16").run()
    query = _query(at)
    restored = RunConfig.from_query(query)
    assert restored == PRESETS["two-moons"].replace(lr=0.7, steps=50, width=16)


def test_bad_query_string_is_reported_not_raised(runs_dir):
    at = _app(runs_dir, lr="banana")
    assert any("not valid" in w.value for w in at.warning)
    assert at.text_input(key="cfg_lr").value == "0.5"


def test_a_link_with_bad_parts_keeps_the_good_ones_and_names_every_bad_one(runs_dir):
    at = _app(runs_dir, preset="two-moons", lr="0.3", steps="abc", width="-3", utm_source="x")
    warning = " ".join(w.value for w in at.warning)
    assert "3 parts of the link" in warning
    assert "steps" in warning and "width" in warning and "utm_source" in warning
    assert at.selectbox(key="cfg_dataset").value == "moons"  # the preset was kept
    assert at.text_input(key="cfg_lr").value == "0.3"
    assert at.text_input(key="cfg_steps").value == str(PRESETS["two-moons"].steps)


def _train_tiny(at) -> AppTest:
    for name, value in TINY.items():
        if name in ("dataset", "device"):
            at.selectbox(key=f"cfg_{name}").set_value(value)
        else:
            at.text_input(key=f"cfg_{name}").set_value(value)
    at.run()
    assert not _errors(at), _errors(at)
    at.button(key="btn_start").click().run()
    assert not at.exception
    job = at.session_state["job"]
    assert job.join(timeout=120), "tiny training did not finish"
    at.run()
    assert not at.exception
    return at


def test_training_through_the_page_then_inspect_it(runs_dir):
    at = _train_tiny(_app(runs_dir))
    job = at.session_state["job"]
    assert job.status == "finished"
    assert (job.out_dir / "run.json").is_file() and job.out_dir.parent == runs_dir
    specs = _chart_specs(at)
    assert len(specs) >= 5
    sharp = [c for c in _charts(at) if "Sharpness" in c.proto.spec]
    assert sharp and len(sharp[0].proto.data.data) > 0  # data travels beside the spec
    assert any("finished" in m.value for m in at.markdown)
    assert any("steps/s" in (p.proto.text or "") for p in at.get("progress"))

    at.switch_page("app_pages/inspect.py").run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.selectbox(key="inspect_run").value == "current"
    # the session's run is saved: its folder is offered as a zip, as a saved run's is
    downloads = [e for e in at.get("download_button") if e.proto.label == "Folder as zip"]
    assert len(downloads) == 1
    scrub = _scrubber(at)  # checkpoints 0, 4, 8, 12; the last shown first
    assert scrub["bind"]["max"] == 3 and scrub["value"] == [{"checkpoint": 3}]
    assert _shown_step(at) == 12
    texts = [json.dumps(s) for s in _chart_specs(at)]
    assert any("per sample over training" in t for t in texts)
    assert any("Input plane" in t for t in texts)  # 2-D data: decision map
    at.session_state["_inspect_step"] = 4  # a step remembered (Theory shares it)
    at.run()
    assert not at.exception
    assert _shown_step(at) == 4
    assert _scrubber(at)["value"] == [{"checkpoint": 1}]  # the chart starts there too
    at.selectbox(key="inspect_metric").set_value("lambda_star").run()
    at.selectbox(key="inspect_order").set_value("first correct").run()
    assert not at.exception
    # a saved run appears in the picker too
    assert any(o.startswith("saved") for o in at.selectbox(key="inspect_run").options)


def test_inspect_page_shows_demo_runs_and_sample_history(runs_dir):
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    at.switch_page("app_pages/inspect.py").run()
    assert not at.exception
    options = at.selectbox(key="inspect_run").options
    assert any(o.startswith("demo") for o in options)
    at.session_state["inspect_sample"] = 5
    at.run()
    assert not at.exception
    assert any("Sample 5" in str(s.get("title")) for s in _chart_specs(at))
    at.button(key="btn_play").click().run()
    assert not at.exception
    assert at.session_state["playing"] is True


def _inspect_scrubbed_to(c: int):
    """Inspect on its first run, checkpoint ``c`` scrubbed: (AppTest, run folder, steps)."""
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    at.switch_page("app_pages/inspect.py").run()
    chosen = at.selectbox(key="inspect_run").value
    steps = [int(s) for s in runs_store.load_cached(Path(chosen)).sample_steps]
    at.session_state["_inspect_step"] = steps[c]  # what a scrub in the browser reports
    at.run()
    return at, chosen, steps


def test_play_from_a_scrubbed_step_starts_a_chart_there(runs_dir):
    """Play reruns the whole page, which resets the range input of the chart in place to
    its start (the browser's view keeps the step scrubbed since): Play draws a new chart
    (a new key) whose slider starts at the step shown."""
    at, _, steps = _inspect_scrubbed_to(3)
    serial = at.session_state["inspect_anchor"][0]
    at.button(key="btn_play").click().run()
    assert not at.exception
    assert at.session_state["playing"] is True
    assert at.session_state["inspect_anchor"][0] > serial  # a new chart ...
    assert _scrubber(at)["value"] == [{"checkpoint": 3}]  # ... starting at the step shown
    assert _shown_step(at) == steps[3]


def test_theory_page_shows_live_numbers_of_the_inspected_run(runs_dir):
    at, chosen, steps = _inspect_scrubbed_to(3)
    assert _shown_step(at) == steps[3]
    at.switch_page("app_pages/theory.py").run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.selectbox(key="inspect_run").value == chosen  # the choice survives the switch
    assert len(at.get("latex")) >= 6
    infos = " ".join(i.value for i in at.info)
    assert f"At step {steps[3]}" in infos
    assert "‖G‖ =" in infos and "⟨λ\\*‖J‖²⟩ =" in infos
    assert "holds for 100.0 %" in infos  # λ* ≤ ‖M‖ on every sample of a real run
    # the theory's picture is checked on this run: a verdict per claim, not a promise
    assert infos.count("Over the whole run:") == 4
    assert "at the edge" in infos or "below the edge" in infos or "far above" in infos
    text = " ".join(m.value for m in at.markdown)
    assert "project's own" in text  # ARP thresholds and EJR are the project's definitions
    # the step can be chosen on the Theory page too (a lecturer shows the edge of
    # stability without leaving it), and Inspect follows
    assert at.select_slider(key="theory_step").value == steps[3]
    at.select_slider(key="theory_step").set_value(steps[1]).run()
    assert not at.exception
    assert f"At step {steps[1]}" in " ".join(i.value for i in at.info)
    at.switch_page("app_pages/inspect.py").run()
    assert _shown_step(at) == steps[1]
    assert _scrubber(at)["value"] == [{"checkpoint": 1}]


def test_inspect_reports_a_damaged_saved_run(runs_dir):
    bad = runs_dir / "20990101-000000-broken"
    bad.mkdir(parents=True)
    (bad / "run.json").write_text('{"schema_version": 1}')
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    at.switch_page("app_pages/inspect.py").run()
    at.selectbox(key="inspect_run").set_value(str(bad)).run()
    assert not at.exception
    assert any("Cannot open this run" in e for e in _errors(at))


def test_pause_resume_stop_and_live_lr_through_the_page(runs_dir):
    at = _app(runs_dir)
    for name, value in {**TINY, "steps": "1000000"}.items():
        if name in ("dataset", "device"):
            at.selectbox(key=f"cfg_{name}").set_value(value)
        else:
            at.text_input(key=f"cfg_{name}").set_value(value)
    at.run()
    at.button(key="btn_start").click().run()
    job = at.session_state["job"]
    try:
        assert job.alive and at.button(key="btn_start").disabled
        at.text_input(key="live_lr").set_value("0").run()  # refused, with a message
        assert any("Not applied" in e.value and "lr" in e.value for e in at.error)
        at.text_input(key="live_lr").set_value("0.35").run()  # the first change recorded
        assert not any("Not applied" in e.value for e in at.error)
        assert any("η = 0.35 sent" in e.value and "5.714" in e.value for e in at.success)
        wait_until(lambda: job.snapshot() is not None
                   and job.snapshot().meta.get("lr_changes"), timeout=60)
        at.button(key="btn_pause").click().run()
        assert not at.exception
        assert "btn_resume" in {b.key for b in at.button}
        at.text_input(key="live_lr").set_value("0.4").run()  # a paused run takes it too
        assert any("η = 0.4 sent (paused at" in e.value for e in at.success)
        wait_until(lambda: job.snapshot() is not None and [
            c[1] for c in job.snapshot().meta.get("lr_changes", [])] == [0.35, 0.4], timeout=60)
        at.button(key="btn_resume").click().run()
        at.switch_page("app_pages/inspect.py").run()
        assert not at.exception
        assert "btn_refresh" in {b.key for b in at.button}  # the run is still training
        at.switch_page("app_pages/train.py").run()
        at.button(key="btn_stop").click().run()
        assert not at.exception
    finally:
        job.stop()
        job.join(60)
    assert job.status == "stopped"
    assert job.snapshot().meta["lr_changes"][0][1] == 0.35
    run = job.snapshot()
    step, _ = run.meta["lr_changes"][1]
    assert run.scalars["two_over_eta"][run.scalars["step"] == step][-1] == 5.0  # drawn there


def test_sidebar_config_survives_a_page_switch(runs_dir):
    at = _app(runs_dir)
    at.selectbox(key="preset").set_value("two-moons").run()
    at.text_input(key="cfg_lr").set_value("0.7").run()
    at.text_input(key="cfg_name").set_value("my run").run()
    at.switch_page("app_pages/inspect.py").run()
    at.switch_page("app_pages/train.py").run()
    assert not at.exception
    assert at.text_input(key="cfg_lr").value == "0.7"
    assert at.text_input(key="cfg_name").value == "my run"
    assert at.selectbox(key="cfg_dataset").value == "moons"
    assert at.selectbox(key="preset").value == "two-moons"
    assert not _errors(at)


def test_inspect_options_survive_a_page_switch(runs_dir):
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    at.switch_page("app_pages/inspect.py").run()
    at.selectbox(key="inspect_metric").set_value("p_max").run()
    at.toggle(key="inspect_noisy").set_value(False).run()
    at.switch_page("app_pages/train.py").run()
    at.switch_page("app_pages/inspect.py").run()
    assert not at.exception
    assert at.selectbox(key="inspect_metric").value == "p_max"
    assert at.toggle(key="inspect_noisy").value is False
    assert not at.warning  # no "default value also set via Session State" warnings


def test_a_link_made_for_an_uploaded_csv_asks_for_the_file_and_keeps_the_rest(runs_dir):
    at = _app(runs_dir, dataset="csv", lr="0.2", label_noise="0.0")
    assert any("uploaded CSV" in w.value for w in at.warning)
    assert at.text_input(key="cfg_lr").value == "0.2"


def test_sidebar_labels_in_words_and_hides_fields_the_setting_ignores(runs_dir):
    at = _app(runs_dir)
    keys = {w.key for w in at.sidebar.text_input}
    assert "cfg_lr" in keys and not {"cfg_batch_size", "cfg_rho", "cfg_beta"} & keys  # gd
    assert at.text_input(key="cfg_lr").label == "learning rate η (lr)"
    assert any("Not used by this setting (hidden): batch_size" in c.value
               for c in at.sidebar.caption)
    at.selectbox(key="cfg_optimizer").set_value("sam").run()
    keys = {w.key for w in at.sidebar.text_input}
    assert {"cfg_batch_size", "cfg_rho"} <= keys and "cfg_beta" not in keys
    at.text_input(key="cfg_batch_size").set_value("5000").run()  # > n_train: named
    assert any("batch_size" in e for e in _errors(at))
    at.text_input(key="cfg_batch_size").set_value("32").run()
    at.selectbox(key="cfg_optimizer").set_value("gd").run()  # hidden again, value kept
    assert at.session_state["cfg_rho"] == "0.05" and not _errors(at)
