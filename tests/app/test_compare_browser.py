"""Real-browser test of the Compare page: `streamlit run app/main.py` on a free localhost
port, driven by Playwright with Debian's /usr/bin/chromium (never a downloaded build).

Opens Compare, runs a two-η tiny sweep through the page, sees the sweep views (the
(η × step) ⟨‖M‖⟩ heatmap among them), downloads the HTML report and checks it; screenshots
go to tests/artifacts/."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from playwright.sync_api import expect, sync_playwright

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "tests" / "artifacts"
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"]
TINY = (
    "preset=two-moons&n_train=80&n_test=40&probe_size=80&width=8&depth=1&steps=20"
    "&probe_every=4&device=cpu"
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def server(tmp_path):
    port = _free_port()
    env = dict(os.environ, IJR_RUNS_DIR=str(tmp_path / "runs"), IJR_TORCH_THREADS="1")
    cmd = [
        sys.executable, "-m", "streamlit", "run", "app/main.py",
        "--server.headless", "true", "--server.port", str(port),
        "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false",
        "--server.fileWatcherType", "none",
    ]  # fmt: skip
    proc = subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    url = f"http://127.0.0.1:{port}"
    try:
        end = time.monotonic() + 90
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"streamlit exited early:\n{proc.stdout.read()}")
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                if time.monotonic() > end:
                    raise TimeoutError("streamlit did not become healthy") from None
                time.sleep(0.3)
        yield url, tmp_path / "runs"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


def test_two_eta_sweep_heatmap_and_report(server, tmp_path):
    url, runs = server
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    assert Path(CHROMIUM).exists(), "install Debian's chromium: apt-get install -y chromium"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 1500, "height": 2200}, accept_downloads=True)
        page.goto(f"{url}/compare")
        expect(page.get_by_text("Learning-rate sweep", exact=True)).to_be_visible(timeout=60_000)
        page.get_by_text("Learning-rate sweep", exact=True).click()
        overrides = page.get_by_role("textbox", name="Overrides (field=value&…)")
        expect(overrides).to_be_visible(timeout=30_000)
        overrides.fill(TINY)
        overrides.press("Enter")
        lrs = page.get_by_role("textbox", name="Learning rates η")
        lrs.fill("0.3, 0.7")
        lrs.press("Enter")
        processes = page.get_by_role("spinbutton", name="Worker processes (0 = one per CPU core)")
        processes.fill("1")
        processes.press("Enter")
        expect(page.get_by_text("2 runs × 20 steps")).to_be_visible(timeout=30_000)
        page.get_by_role("button", name="Run sweep").click()

        caption = page.get_by_text("Each row is one η")
        expect(caption).to_be_visible(timeout=180_000)
        charts = page.get_by_test_id("stVegaLiteChart")
        expect(charts.first).to_be_visible()
        time.sleep(2)  # let vega draw
        assert charts.count() >= 7  # heatmap, final ‖J‖², max ‖H‖, four overlays
        heatmap = charts.first.screenshot(path=ARTIFACTS / "compare_sweep_heatmap.png")
        assert len(heatmap) > 5_000
        sweeps = [p for p in runs.iterdir() if (p / "sweep.json").exists()]
        assert len(sweeps) == 1 and len(list(sweeps[0].glob("lr-*/run.json"))) == 2
        page.screenshot(path=ARTIFACTS / "compare_sweep.png", full_page=True)

        page.get_by_text("Download", exact=True).last.click()
        button = page.get_by_role("button", name="HTML report (all charts, config, phases)")
        expect(button).to_be_visible(timeout=30_000)
        with page.expect_download(timeout=120_000) as download:
            button.click()
        target = tmp_path / "report.html"
        download.value.save_as(target)
        text = target.read_text(encoding="utf-8")
        assert "learning-rate sweep" in text and text.count("<svg") >= 7
        assert "<script" not in text.lower()
        browser.close()
