"""A run from a user's own loop (RunWriter) in the app and the CLI: the scalars the loop
logged are offered as charts, probes are counted as probes, and every chart that compares
with 2/η names the probe mode."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from streamlit.testing.v1 import AppTest
from torch import nn

from app import charts, compare_charts
from ijr_core import RunWriter, load_run

ROOT = Path(__file__).resolve().parents[2]
PAGE = str(ROOT / "app" / "app_pages" / "compare.py")


def writer_run(folder: Path, probe_mode: str = "train") -> Path:
    torch.manual_seed(0)
    X, y = torch.randn(40, 4), torch.randint(0, 3, (40,))
    model = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.Tanh(), nn.Linear(8, 3))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with RunWriter(folder, model, X, y, lr=0.1, probe_mode=probe_mode) as w:
        for step in range(12):
            loss = F.cross_entropy(model(X), y)
            opt.zero_grad()
            loss.backward()
            w.log(step, batch_loss=loss.item())
            if step % 4 == 0:
                w.probe(step)
            opt.step()
    return folder


def test_cli_show_counts_probes_and_lists_logged_scalars(tmp_path):
    folder = writer_run(tmp_path / "mine")
    out = subprocess.run([sys.executable, "-m", "ijr_core", "show", str(folder)], cwd=ROOT,
                         capture_output=True, text=True, check=True).stdout
    assert "3 probes" in out and "12 probes" not in out
    assert "logged     batch_loss" in out and "probe mode train" in out
    assert any(line.startswith("batch_loss ") for line in out.splitlines())


def test_charts_offer_logged_scalars_and_name_the_probe_mode(tmp_path):
    run = load_run(writer_run(tmp_path / "mine", probe_mode="eval"))
    assert run.logged_scalars == ["batch_loss"] and list(run.probe_steps) == [0, 4, 8]
    frame = compare_charts.overlay_frame({"mine": run}, "batch_loss")
    assert frame["value"].notna().sum() == 12
    spec = charts.sharpness_chart(run).to_dict()
    assert "probe mode: eval" in str(spec["title"])
    overlay = compare_charts.overlay_chart({"mine": run}, "sharpness").to_dict()
    assert "probe mode: eval" in str(overlay["title"])


def test_compare_page_draws_the_logged_scalars(runs_dir):
    writer_run(runs_dir / "mine")
    at = AppTest.from_file(PAGE, default_timeout=120)
    at.run()
    label = next(o for o in at.multiselect(key="cmp_runs").options if "mine" in o)
    at.multiselect(key="cmp_runs").set_value([label]).run()
    assert not at.exception, [e.value for e in at.exception]
    assert "Scalars your loop logged" in [h.value for h in at.subheader]
    assert len(at.get("vega_lite_chart")) == 5  # the four overlays and batch_loss
