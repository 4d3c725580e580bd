"""Issue 15 through the app: damaged or hostile run folders never break a page (for any
session), run-provided text is inert, a link cannot make the server read its files, jobs
are capped server-wide and Compare's sweeps stop when their tab goes away."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from app_constants import APP
from streamlit.testing.v1 import AppTest
from waiting import wait_until

from app import jobs, runs_store, session
from ijr_core.run import load_run
from ijr_core.sweep import load_sweep
from ijr_core.trainer import train

COMPARE = str(Path(__file__).resolve().parents[2] / "app" / "app_pages" / "compare.py")
IMAGE = "![x](http://evil.example/x.png)"


def _errors(at) -> list[str]:
    return [e.value for e in at.error]


def _saved_run(runs_dir: Path, name: str, tiny_config, **meta) -> Path:
    folder = runs_dir / name
    train(tiny_config, out_dir=folder)
    if meta:
        doc = json.loads((folder / "run.json").read_text())
        doc["meta"].update(meta)
        doc.update({k: v for k, v in meta.items() if k == "status"})
        (folder / "run.json").write_text(json.dumps(doc))
    return folder


def _hostile_runs_folder(runs_dir: Path, tiny_config) -> dict[str, Path]:
    runs_dir.mkdir(parents=True, exist_ok=True)
    good = _saved_run(runs_dir, "20990101-000003-good", tiny_config)
    deep = runs_dir / "20990101-000002-deep"
    deep.mkdir()
    (deep / "run.json").write_text("[" * 100_000 + "]" * 100_000)
    bad_k = _saved_run(runs_dir, "20990101-000001-bad-k", tiny_config, n_classes="three")
    grp = runs_dir / "20990101-000004-grp"
    grp.mkdir()
    (grp / "group.json").write_text('{"runs": ' + "[" * 100_000 + "]" * 100_000 + "}")
    return {"good": good, "deep": deep, "bad_k": bad_k, "grp": grp}


def test_damaged_folders_are_listed_as_damaged_and_never_break_inspect(runs_dir, tiny_config):
    folders = _hostile_runs_folder(runs_dir, tiny_config)
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    at.switch_page("app_pages/inspect.py").run()
    assert not at.exception, [e.value for e in at.exception]
    picker = at.selectbox(key="inspect_run")
    labels = picker.options
    assert any("good · gd" in o for o in labels), labels
    assert any("deep · damaged: run.json nests its JSON too deep" in o for o in labels), labels
    assert any("bad-k · damaged: run.json: meta 'n_classes'" in o for o in labels), labels
    for name in ("deep", "bad_k"):
        at.selectbox(key="inspect_run").set_value(str(folders[name])).run()
        assert not at.exception, [e.value for e in at.exception]
        assert any("Cannot open this run" in e for e in _errors(at)), name
    at.selectbox(key="inspect_run").set_value(str(folders["good"])).run()
    assert not at.exception and not _errors(at)


def test_damaged_folders_never_break_compare(runs_dir, tiny_config):
    _hostile_runs_folder(runs_dir, tiny_config)
    for section in ("Runs", "Optimizers", "Manage & share"):
        at = AppTest.from_file(COMPARE, default_timeout=120)
        at.run()
        at.radio(key="cmp_section").set_value(section).run()
        assert not at.exception, (section, [e.value for e in at.exception])
        assert not any("went wrong" in e for e in _errors(at)), _errors(at)


def test_run_provided_text_is_shown_as_plain_text(runs_dir, tiny_config):
    folder = _saved_run(runs_dir, "20990101-000000-img", tiny_config, status="failed",
                        error=f"boom {IMAGE} :red[alarm]")
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    at.switch_page("app_pages/inspect.py").run()
    at.selectbox(key="inspect_run").set_value(str(folder)).run()
    assert not at.exception
    shown = [m.value for m in at.markdown if "boom" in m.value]
    assert shown, [m.value for m in at.markdown]
    assert IMAGE not in shown[0] and ":red[alarm]" not in shown[0]
    assert "\\[x\\]\\(http" in shown[0]


def test_a_link_cannot_make_the_server_read_a_file(runs_dir, tmp_path):
    secret = tmp_path / "secret.csv"
    secret.write_text("".join(f"{i},{i % 2}\n" for i in range(100)))
    at = AppTest.from_file(APP, default_timeout=120)
    for k, v in {"dataset": "csv", "data_path": str(secret), "n_train": "60", "n_test": "20",
                 "probe_size": "60", "width": "8", "depth": "1", "steps": "4"}.items():
        at.query_params[k] = v
    at.run()
    assert not at.exception and not _errors(at), _errors(at)
    at.button(key="btn_start").click().run()
    job = at.session_state["job"]
    assert job.join(60)
    at.run()
    assert not at.exception
    assert job.status == "failed" and "not allowed" in job.error
    assert any("not allowed" in e for e in _errors(at))
    assert not list(runs_dir.rglob("params.npz"))  # nothing was trained on it


def test_an_uploaded_csv_is_allowed(runs_dir, tiny_config):
    path = runs_dir / "_uploads" / "s1" / "data.csv"
    path.parent.mkdir(parents=True)
    path.write_text("".join(f"{i * 0.1},{i % 3},{i % 2}\n" for i in range(100)))
    job = session.TrainingJob(tiny_config.replace(dataset="csv", data_path=str(path), n_train=60,
                                                  n_test=20, probe_size=60))
    job.run_sync()
    assert job.status == "finished", job.error


def test_jobs_are_capped_server_wide(runs_dir, tiny_config, monkeypatch):
    monkeypatch.setenv(session.MAX_JOBS_ENV, "2")
    long = tiny_config.replace(steps=1_000_000)
    running = [session.TrainingJob(long, owner="a").start(),
               jobs.SweepJob(long, [0.1], runs_dir / "sw", workers=1, ).start()]
    try:
        wait_until(lambda: all(j.alive for j in running))
        refused = session.TrainingJob(long, owner="b").start()
        refused_sweep = jobs.SweepJob(long, [0.2], runs_dir / "sw2", workers=1).start()
        assert refused.status == "failed" and "already running 2 jobs" in refused.error
        assert not refused.alive
        assert refused_sweep.finished and "already running" in refused_sweep.error
        assert not refused_sweep.thread.is_alive()
    finally:
        for j in running:
            j.stop()
        for j in running:
            assert j.join(60)
    assert session.active_jobs() == []
    after = session.TrainingJob(tiny_config, owner="c").start()  # room again
    assert after.join(60) and after.status == "finished"


def test_a_sweep_stops_when_its_tab_goes_away(runs_dir, tiny_config, monkeypatch):
    job = jobs.SweepJob(tiny_config.replace(steps=1_000_000), [0.1, 0.2], runs_dir / "sw",
                        workers=2, owner="gone-tab")
    job.start()
    try:
        wait_until(lambda: job in session.active_jobs())
        wait_until(lambda: any((f / "run.json").is_file() for f in job.folders))
        monkeypatch.setattr(session, "session_alive", lambda sid: sid != "gone-tab")
        assert job in session.reap_orphans()
        assert job.join(60)
    finally:
        job.stop()
    assert job not in session.active_jobs()
    sweep = load_sweep(runs_dir / "sw")
    assert sweep.meta["status"] == "stopped"
    assert all(r.status == "stopped" and r.step < 1_000_000 for r in sweep.runs)


def test_a_job_started_on_a_page_belongs_to_its_session(runs_dir, tiny_config, monkeypatch):
    monkeypatch.setattr(session, "current_session_id", lambda: "tab-7")
    job = jobs.SweepJob(tiny_config, [0.1], runs_dir / "sw", workers=1).start()
    assert job.owner == "tab-7"
    assert job.join(60)


def test_a_run_left_running_by_a_killed_process_is_listed_as_interrupted(runs_dir, tiny_config):
    folder = _saved_run(runs_dir, "20990101-000000-killed", tiny_config)
    dead = int(subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                              capture_output=True, text=True).stdout)
    doc = json.loads((folder / "run.json").read_text())
    doc.update(status="running", writer={**doc["writer"], "pid": dead})
    (folder / "run.json").write_text(json.dumps(doc))
    assert "interrupted @" in runs_store.run_label(folder)
    assert "interrupted @" in runs_store.run_label(folder)
    assert "interrupted" in load_run(folder).meta
    from app.views import status_line

    assert "interrupted" in status_line("running", load_run(folder))


@pytest.mark.parametrize("content, message", [
    (b"a,label\n" + b"1" * 200_000 + b",0\n2,1\n3,0\n4,1\n", "longer than"),
    (b"x,label\n1,a\nadmin,b\n3,a\n4,b\n", "not a number"),
    (b"x,label\n" + b"".join(b"%d,c%d\n" % (i, i) for i in range(300)), "300 different"),
])
def test_bad_uploads_say_why_without_quoting_the_file(runs_dir, content, message):
    from app import uploads

    with pytest.raises(ValueError, match=message) as info:
        uploads.check_csv(content, runs_dir / "_uploads" / "s")
    assert "admin" not in str(info.value)
    assert not list((runs_dir / "_uploads").rglob("*.csv"))
