"""Real-browser test of the Compare page: `streamlit run app/main.py` on a free localhost
port, driven by Playwright with Debian's /usr/bin/chromium (never a downloaded build;
fixtures in conftest.py).

Opens Compare, runs a two-η tiny sweep through the page, sees the sweep views (the
(η × step) ⟨‖M‖⟩ heatmap among them), downloads the HTML report and checks it; screenshots
go to tests/artifacts/."""

from __future__ import annotations

import time

from app_constants import ARTIFACTS
from playwright.sync_api import expect

TINY = (
    "preset=two-moons&n_train=80&n_test=40&probe_size=80&width=8&depth=1&steps=20"
    "&probe_every=4&device=cpu"
)


def test_two_eta_sweep_heatmap_and_report(server, chromium, tmp_path):
    url, runs = server
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page = chromium.new_page(viewport={"width": 1500, "height": 2200}, accept_downloads=True)
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
    chromium.close()
