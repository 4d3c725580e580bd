"""The scalars CSV and JSON exports shared by the CLI and the app (ijr_core.exports)."""

from __future__ import annotations

import csv
import io
import json
import math

import numpy as np

from ijr_core.config import RunConfig
from ijr_core.exports import runs_json, scalars_csv
from ijr_core.run import Run


def _run(lr: float, **extra: float) -> Run:
    run = Run(RunConfig(lr=lr))
    for step, loss in ((0, 1.5), (10, 0.1 + 1 / 3)):
        run.append_scalars(step, train_loss=loss, sharpness=2.0 / lr, two_over_eta=2.0 / lr,
                           m_norm_mean=0.2, **extra)
    return run


def test_columns_values_and_phase():
    run = _run(0.5, gn_sharpness=math.inf)
    text = scalars_csv([(None, run)])
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0] == [*run.scalars, "phase"] and rows[0][0] == "step"
    assert [r[0] for r in rows[1:]] == ["0", "10"]  # steps as integers
    loss = rows[0].index("train_loss")
    assert float(rows[2][loss]) == run.scalars["train_loss"][1]  # repr: float64 round trip
    assert rows[2][loss] == repr(float(run.scalars["train_loss"][1]))
    assert [r[rows[0].index("gn_sharpness")] for r in rows[1:]] == ["", ""]  # ±inf, NaN: empty
    assert [r[-1] for r in rows[1:]] == list(run.phases())
    assert text.endswith("\n") and "\r" not in text


def test_sweep_rows_carry_the_rate_and_empty_cells_for_metrics_a_run_lacks():
    a, b = _run(0.5), _run(1.5, extra_metric=7.0)
    rows = list(csv.DictReader(io.StringIO(scalars_csv([(0.5, a), (1.5, b)], sweep=True))))
    assert [r["lr_sweep"] for r in rows] == ["0.5", "0.5", "1.5", "1.5"]
    assert [r["extra_metric"] for r in rows] == ["", "", "7.0", "7.0"]


def test_runs_json_nulls_non_finite_values():
    run = _run(0.5)
    run.append_scalars(20, train_loss=math.nan)
    doc = json.loads(runs_json([(None, run)]))
    assert doc["config"]["lr"] == 0.5 and doc["scalars"]["train_loss"][-1] is None
    assert doc["scalars"]["step"] == [0, 10, 20] and "lr_sweep" not in doc
    docs = json.loads(runs_json([(0.5, run), (1.5, _run(1.5))], sweep=True))
    assert [d["lr_sweep"] for d in docs] == [0.5, 1.5]
    np.testing.assert_equal(docs[1]["scalars"]["sharpness"], [2.0 / 1.5] * 2)
