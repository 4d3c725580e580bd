"""A lecture in a real browser (issue 14): Start on the default preset, watch ‖H‖ reach
2/η, change η live (paused, then running on), scrub Inspect, open Compare. Screenshots go
to tests/artifacts/lecture_*.png.

The default preset is used as shipped, only longer (steps=3000), so that the live change
of η happens while the run is still training on any machine."""

from __future__ import annotations

import json
import re
import time

from app_constants import ARTIFACTS
from playwright.sync_api import expect


def _status(page) -> str:
    return page.get_by_text("Status:", exact=False).first.inner_text()


def test_lecture_scenario(server, chromium):
    url, runs = server
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page = chromium.new_page(viewport={"width": 1500, "height": 1900})
    page.goto(f"{url}/?preset=edge-of-stability&steps=3000")
    main = page.get_by_test_id("stMainBlockContainer")
    start = main.get_by_role("button", name="Start")
    expect(start).to_be_enabled(timeout=60_000)
    # before Start: the precomputed demo of this very setting, with its chart
    expect(main.get_by_text("1-digits-eos-lr0.3", exact=False).first).to_be_visible()
    expect(main.get_by_text("the same setting as the sidebar", exact=False)).to_be_visible()
    charts = page.get_by_test_id("stVegaLiteChart")
    expect(charts.first).to_be_visible(timeout=60_000)
    page.screenshot(path=ARTIFACTS / "lecture_1_before.png")

    start.click()
    expect(page.get_by_test_id("stProgress")).to_be_visible(timeout=60_000)
    # something stays on screen until the first probe: never an empty page
    assert charts.count() >= 1
    page.screenshot(path=ARTIFACTS / "lecture_2_started.png")
    expect(main.get_by_text("Starting:", exact=False)).to_have_count(0, timeout=120_000)
    expect(main.get_by_text("Precomputed demo run", exact=False)).to_have_count(0)

    # ‖H‖ reaches 2/η: the caption (computed from the live run) names the step
    expect(main.get_by_text("Edge of stability from step", exact=False).first).to_be_visible(
        timeout=300_000)
    page.screenshot(path=ARTIFACTS / "lecture_3_edge.png")

    # pause, change η while paused: confirmed, recorded at that step
    main.get_by_role("button", name="Pause").click()
    expect(main.get_by_role("button", name="Resume")).to_be_visible(timeout=30_000)
    live = main.get_by_role("textbox", name="η live")
    live.fill("0.6")
    live.press("Enter")
    expect(main.get_by_text("η = 0.6 sent (paused at step", exact=False)).to_be_visible(
        timeout=30_000)
    expect(main.get_by_text("η → 0.6 at step", exact=False)).to_be_visible(timeout=60_000)
    step = int(re.search(r"η → 0.6 at step (\d+)", _status(page)).group(1))
    page.screenshot(path=ARTIFACTS / "lecture_4_eta_paused.png")
    main.get_by_role("button", name="Resume").click()
    time.sleep(4)
    page.screenshot(path=ARTIFACTS / "lecture_5_eta_resumed.png")
    main.get_by_role("button", name="Stop").click()
    expect(page.get_by_text("stopped", exact=False).first).to_be_visible(timeout=60_000)
    (saved,) = runs.glob("*/run.json")
    assert "edge-of-stability" in saved.parent.name
    meta = json.loads(saved.read_text())["meta"]
    assert meta["lr_changes"] == [[step, 0.6]]  # recorded at the step shown

    # Inspect: scrub the step slider
    page.get_by_test_id("stSidebarNav").get_by_text("Inspect").click()
    scrub = page.locator(".vega-bindings input[type=range]").first  # inside the chart
    expect(scrub).to_be_visible(timeout=60_000)
    label = page.get_by_test_id("stVegaLiteChart").filter(has=scrub).locator(
        "svg text", has_text=re.compile(r"^step \d+$"))
    expect(label).to_have_count(1, timeout=30_000)
    value = label.text_content()
    scrub.focus()
    for _ in range(3):
        page.keyboard.press("ArrowLeft")
    expect(label).not_to_have_text(value, timeout=30_000)  # drawn by the browser
    shown = re.compile(rf"^At {label.text_content()}\b")
    expect(page.get_by_text(shown).first).to_be_visible(timeout=60_000)  # the server follows
    time.sleep(2)
    page.screenshot(path=ARTIFACTS / "lecture_6_inspect.png")

    # Compare: the demo sweep opens on its own
    page.get_by_test_id("stSidebarNav").get_by_role("link", name="Compare").click()
    page.get_by_text("Learning-rate sweep").first.click()
    expect(page.get_by_text("over learning rate and training", exact=False).first).to_be_visible(
        timeout=60_000)
    time.sleep(2)
    page.screenshot(path=ARTIFACTS / "lecture_7_compare.png", full_page=True)
    chromium.close()
