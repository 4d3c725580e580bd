"""Real-browser test: `streamlit run` on a free localhost port, driven by Playwright with
Debian's /usr/bin/chromium (never a downloaded browser build; fixtures in conftest.py).

Opens a tiny two-moons config through the URL query string, starts it, watches the
sharpness chart gain points (updated in place, not re-embedded), stops it, opens Inspect,
moves the step slider inside the scrub chart (the charts follow in the browser, then the
server's views), clicks a heatmap cell for a sample's history and saves screenshots to
tests/artifacts/."""

from __future__ import annotations

import re
import time

from app_constants import ARTIFACTS
from playwright.sync_api import TimeoutError as PlaywrightTimeout
from playwright.sync_api import expect

TINY_QUERY = (
    "preset=two-moons&n_train=120&n_test=60&probe_size=120&width=16&depth=2"
    "&steps=6000&probe_every=5&device=cpu"
)


def _probes(page) -> int:
    text = page.get_by_test_id("stProgress").first.inner_text()
    match = re.search(r"(\d+) probes", text)
    return int(match.group(1)) if match else 0


def _points(chart) -> int:
    """Point marks (circles on the curves) drawn in a Vega SVG view."""
    return chart.locator("g.mark-symbol path").count()


def _at_step(page, label: str):
    """The line of Inspect's server-side views for the strip's label "step N"."""
    return page.get_by_text(re.compile(rf"^At {label}\b")).first


def _scatter(chart) -> list[str]:
    """Positions of the scatter's points (Vega's SVG transforms) in the scrub chart."""
    return chart.locator("[class*='point_view'] path").evaluate_all(
        "ps => ps.map(p => p.getAttribute('transform'))"
    )


def test_train_live_then_scrub_in_inspect(server, chromium):
    url, runs = server
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page = chromium.new_page(viewport={"width": 1500, "height": 1800})
    # long enough not to finish while the test watches: the full rerun at the end of a run
    # redraws the charts, which the in-place check below would read as a flicker
    page.goto(f"{url}/?{TINY_QUERY}")  # Train is the default page, at /
    main = page.get_by_test_id("stMainBlockContainer")  # not the header's Stop button
    start = main.get_by_role("button", name="Start")
    expect(start).to_be_enabled(timeout=60_000)
    page.screenshot(path=ARTIFACTS / "train_before.png")
    start.click()

    charts = page.get_by_test_id("stVegaLiteChart")
    expect(page.get_by_test_id("stProgress")).to_be_visible(timeout=60_000)
    deadline = time.monotonic() + 120
    first = 0
    while time.monotonic() < deadline and (first := _probes(page)) < 2:
        time.sleep(0.3)
    assert first >= 2, "no probes arrived"
    # the live chart, not the demo kept on screen until the first probe
    demo_note = page.get_by_text("the precomputed demo closest", exact=False)
    expect(demo_note).to_have_count(0, timeout=60_000)
    live = charts.first
    expect(live).to_be_visible(timeout=60_000)
    # the chart frame can be visible a moment before Vega draws its first marks
    deadline = time.monotonic() + 60
    before = 0
    while time.monotonic() < deadline and (before := _points(live)) == 0:
        time.sleep(0.3)
    assert before > 0, "the sharpness chart drew no points"
    svg = live.locator("svg").first.element_handle()
    deadline = time.monotonic() + 120
    later = first
    while time.monotonic() < deadline and (later := _probes(page)) < first + 3:
        time.sleep(0.3)
    assert later >= first + 3, "the live view stopped updating"
    time.sleep(1.5)  # one more fragment refresh draws the new points
    after = _points(live)
    assert after > before, f"the sharpness chart did not gain points ({before}->{after})"
    # the view was updated in place (same SVG element): no re-embedding, no flicker
    assert svg.evaluate("e => e.isConnected")
    page.screenshot(path=ARTIFACTS / "train_live.png")

    try:
        main.get_by_role("button", name="Stop").click(timeout=10_000)
        expect(page.get_by_text("stopped", exact=False).first).to_be_visible(timeout=60_000)
    except PlaywrightTimeout:  # a fast machine may have finished the run already
        expect(page.get_by_text("finished", exact=False).first).to_be_visible()
    assert any(runs.glob("*/run.json")), "the run was not saved"
    page.screenshot(path=ARTIFACTS / "train_stopped.png")

    page.get_by_test_id("stSidebarNav").get_by_text("Inspect").click()
    scrub = page.locator(".vega-bindings input[type=range]").first  # inside the chart
    expect(scrub).to_be_visible(timeout=60_000)
    expect(page.get_by_text("per sample over training").first).to_be_visible(timeout=60_000)
    chart = page.get_by_test_id("stVegaLiteChart").filter(has=scrub)
    label = chart.locator("svg text", has_text=re.compile(r"^step \d+$"))
    expect(label).to_have_count(1, timeout=30_000)
    before = label.text_content()
    expect(_at_step(page, before)).to_be_visible(timeout=30_000)
    points = _scatter(chart)
    assert points, "the scatter drew no points"
    scrub.focus()
    for _ in range(3):
        page.keyboard.press("ArrowLeft")
    # the browser moves the charts: the strip's label, then the scatter's points
    expect(label).not_to_have_text(before, timeout=30_000)
    after = label.text_content()
    assert int(after.split()[1]) < int(before.split()[1])
    assert _scatter(chart) != points, "the scatter did not follow the step"
    # ... and the server's views follow the same step
    expect(_at_step(page, after)).to_be_visible(timeout=60_000)
    time.sleep(2)
    cells = chart.locator("[class*='heat_view'] path")
    cells.nth(cells.count() // 2).click(force=True)  # a cell: that sample's history
    expect(page.get_by_text("This sample's ‖M‖", exact=False)).to_be_visible(timeout=60_000)
    time.sleep(1)
    assert charts.count() >= 3
    page.screenshot(path=ARTIFACTS / "inspect.png")
    chromium.close()


def test_closing_the_tab_stops_its_training(server, chromium):
    """A worker whose browser session ended is an orphan: the reaper stops it (and the
    trainer saves it with status "stopped")."""
    import json

    url, runs = server
    page = chromium.new_page()
    page.goto(f"{url}/?{TINY_QUERY.replace('steps=6000', 'steps=1000000')}")
    main = page.get_by_test_id("stMainBlockContainer")
    start = main.get_by_role("button", name="Start")
    expect(start).to_be_enabled(timeout=60_000)
    start.click()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and _probes(page) < 2:
        time.sleep(0.3)
    assert _probes(page) >= 2
    chromium.close()  # the tab goes away without pressing Stop

    def status() -> str | None:
        docs = [json.loads(f.read_text()) for f in runs.glob("*/run.json")]
        return docs[0]["status"] if docs else None

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and status() != "stopped":
        time.sleep(0.5)
    assert status() == "stopped"
