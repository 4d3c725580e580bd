"""Command line: train / sweep / show / export / presets, exit codes, one-line errors."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from ijr_core.cli import Progress, main, parse_lrs
from ijr_core.run import load_run
from ijr_core.sweep import load_sweep

ROOT = Path(__file__).resolve().parents[1]
SMALL = ["--threads", "1", "--dataset", "moons", "--n-train", "64", "--n_test", "32",
         "--probe-size", "64", "--width", "16", "--steps", "12", "--probe-every", "4",
         "--device", "cpu"]


@pytest.fixture(autouse=True)
def _keep_torch_threads():
    # main() sets torch's thread count for the process; later tests expect it unchanged.
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def run_cli(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "run"
    assert main(["train", "--preset", "two-moons", *SMALL, "--lr", "0.7", "--quiet",
                 "--out", str(out)]) == 0
    return out


def test_train_with_preset_and_overrides(trained):
    run = load_run(trained)
    assert run.status == "finished" and run.step == 12
    cfg = run.config
    assert (cfg.name, cfg.dataset, cfg.n_train, cfg.lr, cfg.steps) == ("two-moons", "moons", 64,
                                                                        0.7, 12)
    np.testing.assert_array_equal(run.scalars["step"], [0, 4, 8, 12])


def test_train_config_file_then_overrides(tmp_path, capsys):
    cfg_file = tmp_path / "c.json"
    cfg_file.write_text(json.dumps({"lr": 0.3, "steps": 4, "label_noise": 0.0}))
    code, out, err = run_cli(capsys, "train", *SMALL, "--config", cfg_file, "--steps", "8",
                             "--out", tmp_path / "r")
    assert code == 0 and "finished: step 8/8" in out
    assert "steps/s" in err  # progress line
    cfg = load_run(tmp_path / "r").config
    assert cfg.lr == 0.3 and cfg.steps == 8 and cfg.label_noise == 0.0


BAD_INPUTS = {
    "unknown preset": (["train", "--preset", "nope"], "unknown preset 'nope'"),
    "invalid value": (["train", "--lr", "-1"], "lr"),
    "not a number": (["train", "--lr", "fast"], "lr"),
    "unknown option": (["train", "--colour", "red"], "unrecognized arguments: --colour"),
    "missing config": (["train", "--config", "/nonexistent.json"], "cannot read config file"),
    "no command": ([], "give a command"),
    "bad threads": (["--threads", "0", "presets"], "--threads must be in 1.."),
    "too many threads": (["--threads", "99999", "presets"], "--threads must be in 1.."),
    "bad lrs": (["sweep", "--lrs", "0.1,abc"], "'abc' is not a number"),
    "negative lr in lrs": (["sweep", "--lrs", "0.1,-2"], "finite and > 0"),
    "missing run": (["show", "/nonexistent/run"], "does not exist"),
    "export without format": (["export", "/tmp"], "one of the arguments --csv --json"),
    "cnn on moons": (["train", "--dataset", "moons", "--model", "cnn"], "cnn needs an image"),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_exits_2_with_one_clear_line(case, capsys, tmp_path):
    argv, message = BAD_INPUTS[case]
    code, out, err = run_cli(capsys, *argv)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], err
    assert "Traceback" not in err


def test_out_folder_is_not_overwritten_without_force(trained, capsys, tmp_path):
    code, _, err = run_cli(capsys, "train", *SMALL, "--out", trained)
    assert code == 2 and "is not empty; pass --force" in err
    (tmp_path / "file").write_text("x")
    code, _, err = run_cli(capsys, "sweep", *SMALL, "--lrs", "0.1", "--out", tmp_path / "file")
    assert code == 2 and "is a file" in err
    code, out, _ = run_cli(capsys, "train", *SMALL, "--steps", "2", "--quiet", "--force",
                           "--out", tmp_path)
    assert code == 0 and load_run(tmp_path).step == 2
    # --force never mixes a run and a sweep in one folder (show would read the wrong one)
    code, _, err = run_cli(capsys, "sweep", *SMALL, "--lrs", "0.1", "--force", "--out", tmp_path)
    assert code == 2 and "holds a run; --force overwrites only a sweep folder" in err


def test_bad_json_config_and_damaged_run_folder(tmp_path, capsys, trained):
    bad = tmp_path / "bad.json"
    bad.write_text("{oops")
    code, _, err = run_cli(capsys, "train", "--config", bad)
    assert code == 2 and "is not valid JSON" in err and len(err.strip().splitlines()) == 1
    bad.write_bytes(b"\xff\xfe{}")
    code, _, err = run_cli(capsys, "train", "--config", bad)
    assert code == 2 and f"config file {bad} is not UTF-8 text" in err
    damaged = tmp_path / "damaged"
    damaged.mkdir()
    for p in trained.iterdir():
        (damaged / p.name).write_bytes(p.read_bytes())
    (damaged / "samples.npz").write_text("nope")
    code, _, err = run_cli(capsys, "show", damaged)
    assert code == 2 and "samples.npz" in err and len(err.strip().splitlines()) == 1


def test_show_run(trained, capsys):
    code, out, _ = run_cli(capsys, "show", trained)
    assert code == 0
    assert "status     finished at step 12" in out and "phases" in out
    assert "sharpness" in out and "m_norm_mean" in out


def test_export_csv_and_json(trained, capsys, tmp_path):
    code, out, _ = run_cli(capsys, "export", trained, "--csv")
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(out)))
    run = load_run(trained)
    assert [int(r["step"]) for r in rows] == [0, 4, 8, 12]
    np.testing.assert_allclose([float(r["sharpness"]) for r in rows], run.scalars["sharpness"])
    assert {r["phase"] for r in rows} <= {"I", "II", "III"}
    code, out, _ = run_cli(capsys, "export", trained, "--json", tmp_path / "r.json")
    assert code == 0 and "wrote" in out
    doc = json.loads((tmp_path / "r.json").read_text())
    assert doc["status"] == "finished" and doc["config"]["lr"] == 0.7
    assert doc["scalars"]["step"] == [0, 4, 8, 12]


def test_sweep_show_and_export(tmp_path, capsys):
    code, out, err = run_cli(capsys, "sweep", *SMALL, "--lrs", "0.5, 1.5", "--workers", "1",
                             "--out", tmp_path / "sw")
    assert code == 0 and "sweep of 2 learning rates" in out and "η=1.5" in err
    sweep = load_sweep(tmp_path / "sw")
    assert sweep.lrs.tolist() == [0.5, 1.5] and sweep.statuses == ["finished"] * 2
    code, out, _ = run_cli(capsys, "show", tmp_path / "sw")
    table, card = out.strip().split("\n\n")
    assert code == 0 and len(table.splitlines()) == 3 and "max ‖H‖" in table
    assert "IJR: larger η, smaller ⟨‖J‖²⟩ at matched loss" in card
    code, out, _ = run_cli(capsys, "export", tmp_path / "sw", "--csv")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert len(rows) == 8 and {r["lr_sweep"] for r in rows} == {"0.5", "1.5"}


def test_stopped_sweep_shows_and_exports_even_without_runs(tmp_path, capsys):
    from ijr_core.config import RunConfig
    from ijr_core.sweep import SweepControl, sweep_lr

    control = SweepControl()
    control.stop()
    cfg = RunConfig(dataset="moons", n_train=64, n_test=32, probe_size=64, width=16, steps=4)
    sweep_lr(cfg, [0.5, 1.0], out_dir=tmp_path, workers=1, control=control)
    code, out, _ = run_cli(capsys, "show", tmp_path)
    assert code == 0 and "sweep stopped; not run: 0.5, 1.0" in out
    code, out, _ = run_cli(capsys, "export", tmp_path, "--csv")
    assert code == 0 and out.startswith("lr_sweep,")
    code, out, _ = run_cli(capsys, "export", tmp_path, "--json")
    assert code == 0 and json.loads(out) == []


def test_sweep_progress_bar_and_per_run_lines(tmp_path, capsys):
    code, _, err = run_cli(capsys, "sweep", *SMALL, "--lrs", "0.5,1.5", "--workers", "1",
                           "--out", tmp_path / "sw")
    assert code == 0
    assert "η=0.5: finished at step 12" in err and "η=1.5: finished at step 12" in err
    assert "sweep [" in err and "24/24" in err and "steps/s" in err


def test_unwritable_out_folder_is_one_line(tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    code, _, err = run_cli(capsys, "train", *SMALL, "--out", tmp_path / "file" / "run")
    assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert "cannot create --out" in err


def test_presets_listed(capsys):
    code, out, _ = run_cli(capsys, "--threads", "1", "presets")
    assert code == 0 and "edge-of-stability" in out and "ejr-vs-sam" in out


def test_parse_lrs_and_progress_line():
    assert parse_lrs("0.1, 0.2,,0.5") == [0.1, 0.2, 0.5]
    stream = io.StringIO()
    p = Progress(100, "x ", stream=stream)
    p.value = 50
    assert "50/100" in p.line() and "steps/s" in p.line()
    p.close(100)
    assert "100/100" in stream.getvalue()


def test_progress_writes_a_line_now_and_then_when_not_a_terminal():
    stream = io.StringIO()  # not a tty: no \r redraws, a plain line every log_every seconds
    p = Progress(10, "x ", stream=stream, interval=0.01, log_every=0.05)
    p.start(lambda: 5)
    time.sleep(0.3)
    p.print("a line of its own")
    p.close(10)
    lines = stream.getvalue().splitlines()
    assert "\r" not in stream.getvalue() and "a line of its own" in lines
    assert 2 <= sum("5/10" in line for line in lines) <= 8 and lines[-1].startswith("x [#")


def test_python_dash_m_entry_point(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-m", "ijr_core", "train", "--preset", "nope"],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: unknown preset 'nope'; known presets:")
    assert "edge-of-stability" in lines[0]


def test_show_says_why_a_run_diverged():
    from ijr_core.cli import format_run
    from ijr_core.config import RunConfig
    from ijr_core.run import Run

    run = Run(RunConfig(lr=60.0))
    run.append_scalars(0, train_loss=2.3, sharpness=1.0, two_over_eta=2 / 60, m_norm_mean=0.1)
    run.append_scalars(5, train_loss=float("nan"))
    run.set_status("diverged", diverged_at=5, diverged_reason="the loss became nan")
    assert format_run(run).splitlines()[0] == "status     diverged at step 5: the loss became nan"


def test_progress_on_a_terminal_redraws_in_place_and_is_wiped_on_an_error():
    class Tty(io.StringIO):
        def isatty(self):
            return True

    from ijr_core.cli import _progress

    stream = Tty()
    p = Progress(10, "x ", stream=stream, interval=0.01).start(lambda: 3)
    time.sleep(0.1)
    p.close(clear=True)
    text = stream.getvalue()
    assert text.startswith("\r") and "3/10" in text and text.endswith("\r\033[K")
    with pytest.raises(KeyError), _progress(True, 10, "x ", lambda: 0) as quiet:
        assert quiet is None
        raise KeyError("setup failed")


def test_show_prints_phase_events_and_the_scorecard(trained, capsys):
    code, out, _ = run_cli(capsys, "show", trained)
    assert code == 0
    assert "numerical checks (hold by construction; verify the solver)" in out
    assert "  [passed] ‖G‖ = ⟨λ*‖J‖²⟩ (identity)" in out
    assert "  [passed] λ* ≤ ‖M‖ (bound)" in out
    assert "claims (can fail on a run)" in out and "edge of stability" in out


def test_show_reads_an_optimizer_comparison_with_its_scorecard(tmp_path, capsys):
    from ijr_core.group import write_group

    group = tmp_path / "cmp"
    for opt in ("gd", "ejr"):
        assert run_cli(capsys, "train", *SMALL, "--optimizer", opt, "--out", group / opt)[0] == 0
    write_group(group, ["gd", "ejr"], "optimizer comparison")
    code, out, err = run_cli(capsys, "show", group)
    assert code == 0, err
    assert out.startswith("optimizer comparison")
    lines = out.splitlines()
    assert any(line.split()[:3] == ["gd", "gd", "finished"] for line in lines)
    assert any(line.split()[:3] == ["ejr", "ejr", "finished"] for line in lines)
    assert "EJR vs GD" in out and "numerical checks" in out


def test_show_refuses_a_group_whose_run_names_leave_the_folder(tmp_path, capsys):
    from ijr_core.group import write_group

    write_group(tmp_path / "cmp", ["../outside"], "sneaky")
    code, out, err = run_cli(capsys, "show", tmp_path / "cmp")
    assert code != 0 and "bad run name" in err and "Traceback" not in err
