"""Real-browser test of the Compare page: `streamlit run app/main.py` on a free localhost
port, driven by Playwright with Debian's /usr/bin/chromium (never a downloaded build;
fixtures in conftest.py).

Opens Compare (the demo sweep shows first), runs a two-η tiny sweep through the page,
sees its views (the (η × step) ⟨‖M‖⟩ heatmap among them), downloads the HTML report and
checks it; screenshots go to tests/artifacts/."""

from __future__ import annotations

import contextlib
import json
import time

from app_constants import ARTIFACTS
from playwright.sync_api import expect

TINY = (
    "preset=two-moons&n_train=80&n_test=40&probe_size=80&width=8&depth=1&steps=20"
    "&probe_every=4&device=cpu"
)


def _finished_sweeps(runs) -> list:
    out = []
    for path in runs.glob("*/sweep.json"):
        with contextlib.suppress(OSError, ValueError):
            if json.loads(path.read_text(encoding="utf-8")).get("status") == "finished":
                out.append(path.parent)
    return out


def _fill(page, role: str, name: str, value: str) -> None:
    box = page.get_by_role(role, name=name)
    expect(box).to_be_visible(timeout=30_000)
    box.fill(value)
    box.press("Enter")
    page.wait_for_timeout(500)


def test_two_eta_sweep_heatmap_and_report(server, chromium, tmp_path):
    url, runs = server
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page = chromium.new_page(viewport={"width": 1500, "height": 2200}, accept_downloads=True)
    page.goto(f"{url}/compare")
    expect(page.get_by_text("Learning-rate sweep", exact=True)).to_be_visible(timeout=60_000)
    page.get_by_text("Learning-rate sweep", exact=True).click()
    # Each Enter reruns the page; a field typed into during a rerun can be redrawn with its
    # old value, so fill the three fields until the page confirms the sweep it will run.
    for attempt in range(4):
        _fill(page, "textbox", "Overrides (field=value&…)", TINY)
        _fill(page, "textbox", "Learning rates η", "0.3, 0.7")
        _fill(page, "spinbutton", "Runs at once (0 = one per CPU core)", "1")
        try:
            expect(page.get_by_text("2 runs × 20 steps")).to_be_visible(timeout=15_000)
            break
        except AssertionError:
            if attempt == 3:
                raise
    page.get_by_role("button", name="Run sweep").click()

    # The demo sweep is shown before the run (and hidden while it runs): wait for the new
    # sweep to finish on disk, then for the page to open it.
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and not _finished_sweeps(runs):
        time.sleep(0.5)
    assert _finished_sweeps(runs), "the sweep did not finish"
    caption = page.get_by_text("Each row is one η")
    expect(caption).to_be_visible(timeout=60_000)
    expect(page.get_by_text("Open a saved sweep")).to_be_visible()
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
