"""Grids of runs in this process: the value grammar, axes validated before anything starts,
equality with single runs, resume by configuration, stop, seed means, the CLI."""

from __future__ import annotations

import json
import shutil
import threading

import numpy as np
import pytest
from waiting import wait_until

from ijr_core.cli import main
from ijr_core.config import ConfigError, RunConfig
from ijr_core.executors import SweepControl, ThreadExecutor
from ijr_core.grid import (
    GridProgress,
    complete_runs,
    config_key,
    expand,
    is_grid_folder,
    load_grid,
    parse_axes,
    run_grid,
    seed_mean_run,
)
from ijr_core.run import load_run
from ijr_core.trainer import train
from ijr_core.values import MAX_VALUES, parse_lrs, parse_values

BASE = RunConfig(dataset="moons", n_train=64, n_test=32, probe_size=64, width=16, steps=20,
                 probe_every=5, device="cpu", noise=0.2, label_noise=0.0)
TIMING = ("wall_time", "train_time")


def same_scalars(a, b) -> None:
    assert a.status == b.status and a.step == b.step
    assert set(a.scalars) == set(b.scalars)
    for k in a.scalars:
        if k not in TIMING:
            np.testing.assert_array_equal(a.scalars[k], b.scalars[k], err_msg=k)


# --------------------------------------------------------------------------- values


def test_value_grammar():
    assert parse_values("0.1, 0.25,,0.5; 1") == [0.1, 0.25, 0.5, 1.0]
    assert parse_values("0.1:1:3") == [0.1, 0.3162, 1.0]  # log-spaced, 4 digits
    np.testing.assert_allclose(parse_values("0.01:10:4"), [0.01, 0.1, 1.0, 10.0])
    assert parse_values("-1:1:3") == [-1.0, 0.0, 1.0]  # not both > 0: even spacing
    assert parse_values("0:4:5", int) == [0, 1, 2, 3, 4]
    assert parse_values("0:2:5", int) == [0, 1, 2]  # rounded, repeats dropped
    assert parse_values("7, 0:1:2", int) == [7, 0, 1]
    assert parse_values("sgd, sam", str) == ["sgd", "sam"]
    assert parse_values("0.5:0.5:1") == [0.5]
    assert parse_lrs("0.1:1:2") == [0.1, 1.0]


@pytest.mark.parametrize("text, kind, message", [
    ("0.1,abc", float, "'abc' is not a number"),
    ("1.5", int, "'1.5' is not a whole number"),
    ("inf", float, "not a finite number"),
    ("", float, "at least one value"),
    (" , ", float, "at least one value"),
    ("0.1:1:0", float, "1 ≤ n"),
    (f"0.1:1:{MAX_VALUES + 1}", float, "1 ≤ n"),
    (",".join(["1"] * (MAX_VALUES + 1)), float, f"at most {MAX_VALUES}"),
])
def test_value_grammar_errors_name_the_item(text, kind, message):
    with pytest.raises(ValueError, match=message):
        parse_values(text, kind, "x")
    with pytest.raises(ValueError, match="^x"):
        parse_values(text, kind, "x")


def test_lrs_must_be_positive():
    with pytest.raises(ValueError, match="positive"):
        parse_lrs("0.1, -2")


# --------------------------------------------------------------------------- axes


def test_axes_are_typed_like_their_fields():
    axes = parse_axes(["lr=0.1:1:2", "seed=0:2:3", "optimizer=sgd,sam", "batch_size=none,16",
                       "standardize=true,false"])
    assert axes == {"lr": [0.1, 1.0], "seed": [0, 1, 2], "optimizer": ["sgd", "sam"],
                    "batch_size": [None, 16], "standardize": [True, False]}
    assert parse_axes({"width": "8,16"}) == {"width": [8, 16]}


@pytest.mark.parametrize("axes, field, message", [
    (["lrr=0.1"], "lrr", "unknown field 'lrr'"),
    (["lr"], "lr", "FIELD=VALUES"),
    (["lr=0.1", "lr=0.2"], "lr", "given twice"),
    (["seed=x"], "seed", "expected int"),
    (["seed=0:1:x"], "seed", "not a whole number"),
    (["width=8,"], None, None),  # fine: blanks are skipped
])
def test_bad_axis_text_names_the_field(axes, field, message):
    if field is None:
        assert parse_axes(axes) == {"width": [8]}
        return
    with pytest.raises(ConfigError, match=message) as info:
        parse_axes(axes)
    assert info.value.field == field and str(info.value).startswith(f"{field}: ")


@pytest.mark.parametrize("axes, field, message", [
    ({"lrr": [0.1]}, "lrr", "unknown field"),
    ({"lr": [0.1, -1.0]}, "lr", r"must be in \(0"),
    ({"optimizer": ["sgd", "adam"]}, "optimizer", "known optimizer names"),
    ({"seed": [0, 1.5]}, "seed", "expected int"),
    ({"lr": []}, "lr", "non-empty list"),
    ({"lr": "0.1"}, "lr", "non-empty list"),
    ({"batch_size": [16]}, "batch_size", "full-batch GD"),  # with the base's optimizer gd
    ({"lr": list(np.linspace(0.1, 1, 40)), "seed": list(range(40))}, "lr", "at most 1000"),
])
def test_bad_axes_fail_before_anything_starts(tmp_path, axes, field, message):
    out = tmp_path / "grid"
    with pytest.raises(ConfigError, match=message) as info:
        run_grid(BASE, axes, out_dir=out)
    assert info.value.field == field
    assert not out.exists()  # nothing written, nothing trained


def test_a_combination_that_is_invalid_names_the_field_and_the_run():
    # batch_size=16 is not allowed with the base's gd, but it is with sgd
    assert len(expand(BASE, {"optimizer": ["sgd", "sam"], "batch_size": [16, 32]})) == 4
    axes = {"optimizer": ["sgd", "gd"], "batch_size": [16]}  # sgd + 16 fine, gd + 16 not
    with pytest.raises(ConfigError, match=r"batch_size: .*in the run optimizer=gd"):
        expand(BASE, axes)
    with pytest.raises(ConfigError, match="same configuration"):
        run_grid(BASE, {"lr": [0.5, 0.5]})


def test_config_key_ignores_name_and_device_only():
    assert config_key(BASE) == config_key(BASE.replace(name="x", device="auto"))
    assert config_key(BASE) != config_key(BASE.replace(seed=1))
    assert config_key(BASE) == config_key(BASE.to_dict())


# --------------------------------------------------------------------------- running


def test_grid_equals_single_runs_and_writes_a_loadable_folder(tmp_path):
    seen = []
    grid = run_grid(BASE, {"lr": [0.5, 2.0], "seed": [0, 1]}, out_dir=tmp_path,
                    executor=ThreadExecutor(2), callback=lambda i, v, r: seen.append(i))
    assert sorted(seen) == [0, 1, 2, 3] and grid.status == "finished"
    assert grid.values == [{"lr": 0.5, "seed": 0}, {"lr": 0.5, "seed": 1},
                           {"lr": 2.0, "seed": 0}, {"lr": 2.0, "seed": 1}]
    for values, run in zip(grid.values, grid.runs, strict=True):
        same_scalars(run, train(BASE.replace(**values)))  # one torch thread each
    assert is_grid_folder(tmp_path)
    doc = json.loads((tmp_path / "grid.json").read_text())
    assert doc["status"] == "finished" and doc["axes"] == {"lr": [0.5, 2.0], "seed": [0, 1]}
    assert doc["keys"] == [config_key(BASE.replace(**v)) for v in grid.values]
    loaded = load_grid(tmp_path)
    assert loaded.folders == grid.folders and loaded.values == grid.values
    for a, b in zip(loaded.runs, grid.runs, strict=True):
        same_scalars(a, b)


def test_resume_keeps_runs_complete_on_disk_by_configuration(tmp_path):
    axes = {"lr": [0.5, 2.0], "seed": [0, 1]}
    first = run_grid(BASE, axes, out_dir=tmp_path, executor=ThreadExecutor(1))
    names = first.folders
    # as a killed driver leaves it: one run never written, one still "running", and a
    # complete run whose folder was renamed (it is found by its configuration)
    shutil.rmtree(tmp_path / names[0])
    doc = json.loads((tmp_path / names[1] / "run.json").read_text())
    doc["status"] = "running"
    (tmp_path / names[1] / "run.json").write_text(json.dumps(doc))
    (tmp_path / names[3]).rename(tmp_path / "renamed")
    before = (tmp_path / names[2] / "run.json").read_bytes()
    trained = []
    again = run_grid(BASE, axes, out_dir=tmp_path, executor=ThreadExecutor(1),
                     callback=lambda i, v, r: trained.append(i))
    assert sorted(trained) == [0, 1] and again.meta["resumed"] == 2
    assert again.folders[3] == "renamed" and again.status == "finished"
    assert (tmp_path / names[2] / "run.json").read_bytes() == before  # not touched
    for a, b in zip(again.runs, first.runs, strict=True):
        same_scalars(a, b)
    # a bigger grid in the same folder reuses the four runs
    trained.clear()
    bigger = run_grid(BASE, {"lr": [0.5, 2.0], "seed": [0, 1, 2]}, out_dir=tmp_path,
                      executor=ThreadExecutor(1), callback=lambda i, v, r: trained.append(i))
    assert sorted(trained) == [2, 5] and bigger.meta["resumed"] == 4
    assert len(complete_runs(tmp_path)) == 6


def test_a_diverged_run_is_a_result_and_a_setup_failure_is_counted(tmp_path):
    cfg = BASE.replace(dataset="digits", activation="relu", width=128, steps=40,
                       probe_every=10, n_train=200, probe_size=100)
    grid = run_grid(cfg, {"lr": [0.1, 60.0]}, out_dir=tmp_path / "d")
    assert [r.status for r in grid.runs] == ["finished", "diverged"]
    assert grid.status == "finished"
    trained = []
    run_grid(cfg, {"lr": [0.1, 60.0]}, out_dir=tmp_path / "d",
             callback=lambda i, v, r: trained.append(i))
    assert trained == []  # never trained again
    good = tmp_path / "ok.csv"
    rows = ["x,y,label"] + [f"{i % 7},{i % 5},{i % 2}" for i in range(40)]
    good.write_text("\n".join(rows) + "\n")
    csv = BASE.replace(dataset="csv", data_path=str(good), n_train=30, n_test=10,
                       probe_size=30, steps=5)
    grid = run_grid(csv, {"data_path": [str(good), str(tmp_path / "missing.csv")]},
                    out_dir=tmp_path / "f", executor=ThreadExecutor(2))
    assert grid.status == "failed" and grid.runs[0].status == "finished"
    assert grid.runs[1] is None and "missing.csv" in grid.meta["errors"][1]
    loaded = load_grid(tmp_path / "f")
    assert loaded.runs[1] is None and loaded.runs[0] is not None


def test_stop_keeps_finished_runs_loadable_and_the_same_call_resumes(tmp_path):
    control = SweepControl()
    grid = run_grid(BASE, {"seed": [0, 1, 2]}, out_dir=tmp_path, executor=ThreadExecutor(1),
                    control=control, callback=lambda i, v, r: control.stop())
    assert grid.status == "stopped" and grid.runs[0].status == "finished"
    assert grid.runs[1:] == [None, None]
    assert load_grid(tmp_path).status == "stopped"
    again = run_grid(BASE, {"seed": [0, 1, 2]}, out_dir=tmp_path)
    assert again.status == "finished" and again.meta["resumed"] == 1


def test_interrupting_a_threaded_grid_marks_it_stopped(tmp_path):
    import _thread

    cfg = BASE.replace(steps=1_000_000, probe_every=50)

    def fire():
        wait_until(lambda: (tmp_path / "grid.json").exists()
                   and len(list(tmp_path.glob("*/run.json"))) == 2)
        _thread.interrupt_main()

    threading.Thread(target=fire, daemon=True).start()
    with pytest.raises(KeyboardInterrupt):
        run_grid(cfg, {"seed": [0, 1, 2]}, out_dir=tmp_path, executor=ThreadExecutor(2))
    assert json.loads((tmp_path / "grid.json").read_text())["status"] == "stopped"
    for path in tmp_path.glob("*/run.json"):  # each run in progress kept what it recorded
        assert load_run(path.parent).status == "stopped"


def test_damaged_or_hostile_grid_folders_raise_a_clear_error(tmp_path):
    from ijr_core.run import RunFormatError

    with pytest.raises(RunFormatError, match=r"grid\.json is missing"):
        load_grid(tmp_path)
    grid = run_grid(BASE.replace(steps=5), {"lr": np.array([0.5, 1.0])}, out_dir=tmp_path)
    doc = json.loads((tmp_path / "grid.json").read_text())
    assert doc["axes"] == {"lr": [0.5, 1.0]} and grid.values[0] == {"lr": 0.5}
    cases = {
        "escape": {**doc, "runs": ["../elsewhere", doc["runs"][1]]},
        "values": {**doc, "values": [{"seed": 0}, {"lr": 1.0}]},
        "count": {**doc, "values": doc["values"][:1]},
        "status": {**doc, "status": "weird"},
        "kind": {**doc, "kind": "sweep"},
        "config": {**doc, "config": {"lr": -1}},
    }
    for bad in cases.values():
        (tmp_path / "grid.json").write_text(json.dumps(bad))
        with pytest.raises(RunFormatError):
            load_grid(tmp_path)
    (tmp_path / "grid.json").write_text("{" * 10)
    with pytest.raises(RunFormatError, match="not a JSON object"):
        load_grid(tmp_path)


# --------------------------------------------------------------------------- views


def test_seed_mean_run_is_the_mean_and_std_of_its_members():
    runs = [train(BASE.replace(seed=s, steps=10)) for s in (0, 1, 2)]
    mean = seed_mean_run(runs)
    stack = np.vstack([r.scalars["m_norm_mean"] for r in runs])
    np.testing.assert_allclose(mean.scalars["m_norm_mean"], stack.mean(axis=0))
    np.testing.assert_allclose(mean.scalars["m_norm_mean_std"], stack.std(axis=0))
    np.testing.assert_array_equal(mean.scalars["step"], runs[0].scalars["step"])
    assert mean.status == "finished" and mean.meta["seeds"] == [0, 1, 2]
    assert seed_mean_run(runs[:1]) is runs[0]


def test_grid_sweep_view_has_one_row_per_eta_averaged_over_seeds():
    axes = {"lr": [0.5, 2.0], "seed": [0, 1], "width": [8, 16]}
    grid = run_grid(BASE.replace(steps=10), axes)
    sweep = grid.sweep({"width": 16})
    assert sweep.lrs.tolist() == [0.5, 2.0] and sweep.config.width == 16
    members = [r for v, r in zip(grid.values, grid.runs, strict=True)
               if v["lr"] == 2.0 and v["width"] == 16]
    np.testing.assert_allclose(sweep.final_jac()[1],
                               np.mean([r.last("jac_spectral_sq_mean") for r in members]))
    assert sweep.m_norm_matrix().shape == (2, 3)
    assert grid.sweep().config.width == 8  # first values by default


def test_progress_counts_and_eta():
    p = GridProgress({0: 100, 1: 100}, total=3, skipped=1)
    assert p.snapshot()["eta"] is None and p.snapshot()["done"] == 1
    p.started(0)
    p.started(1, node="n1")
    p.step(0, 50)
    s = p.snapshot()
    assert s["running"] == 2 and s["step_fraction"] == 0.25 and s["eta"] > 0
    assert p.running() == {0: None, 1: "n1"}
    p.started(1, attempt=2, node="n2")  # retried elsewhere: from step 0 again
    p.started(1, attempt=2, node="n2")  # reported twice: counted once
    p.done(0, "diverged")
    p.failed(1)
    s = p.snapshot()
    assert (s["done"], s["running"], s["failed"], s["retries"], s["diverged"]) == (2, 0, 1, 1, 1)
    assert "2/3 done" in p.line() and "1 failed" in p.line() and "1 retried" in p.line()


# --------------------------------------------------------------------------- CLI


SMALL = ["--dataset", "moons", "--n-train", "64", "--n-test", "32", "--probe-size", "64",
         "--width", "16", "--steps", "10", "--probe-every", "5", "--device", "cpu"]


def test_cli_grid_runs_resumes_and_shows(tmp_path, capsys):
    out = tmp_path / "g"
    code = main(["grid", *SMALL, "--set", "lr=0.5,1", "--set", "seed=0:1:2", "--out", str(out)])
    captured = capsys.readouterr()
    assert code == 0 and "grid of 4 runs (0 resumed)" in captured.out
    assert "4/4 done" in captured.err
    assert load_grid(out).status == "finished"
    code = main(["grid", *SMALL, "--set", "lr=0.5,1", "--set", "seed=0:2:3", "--quiet",
                 "--out", str(out)])
    captured = capsys.readouterr()
    assert code == 0 and "grid of 6 runs (4 resumed)" in captured.out
    assert main(["show", str(out)]) == 0
    assert "finished" in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [
    (["--set", "lrr=1"], "unknown field 'lrr'"),
    (["--set", "lr=0.1,-1"], "lr: -1.0 is not allowed"),
    (["--set", "optimizer=sgd,adam"], "known optimizer names"),
    (["--set", "seed=0:1:x"], "seed: "),
    ([], "the following arguments are required: --set"),
    (["--set", "lr=1", "--workers", "0"], "--workers must be >= 1"),
])
def test_cli_bad_axes_exit_2_before_anything_starts(tmp_path, capsys, argv, message):
    out = tmp_path / "g"
    code = main(["grid", *SMALL, *argv, "--out", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and message in err[0], err
    assert not out.exists()


def test_cli_grid_refuses_a_folder_of_something_else(tmp_path, capsys):
    (tmp_path / "x").write_text("x")
    assert main(["grid", *SMALL, "--set", "lr=1", "--out", str(tmp_path)]) == 2
    assert "holds no grid" in capsys.readouterr().err
    run = tmp_path / "run"
    assert main(["train", *SMALL, "--quiet", "--out", str(run)]) == 0
    assert main(["grid", *SMALL, "--set", "lr=1", "--out", str(run)]) == 2
    assert "holds a run" in capsys.readouterr().err
