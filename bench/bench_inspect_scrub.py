"""What a user waits for when scrubbing Inspect, in Debian's Chromium: per step of the
checkpoint slider, the milliseconds until the charts show the new step (ours: the step is a
Vega-Lite selection, so the browser filters and redraws without the server) and until the
server's views show it (the round trip every step waited for when the step was a Streamlit
slider: rerun, send, redraw).

Starts the app on a free port (runs folder: a temporary directory), opens Inspect on the
default demo run (1000 samples × 21 checkpoints), then steps the slider down ``--steps``
times, each step once the previous one's rerun is over. A step is what an arrow key does
to the range input: its value lowered by one and an ``input`` event. "Charts" is the time
until Vega changes the chart's SVG, plus the next frame; "server" until the page's
"At step N" line names the new step and Streamlit's running indicator is gone.

    .venv/bin/python bench/bench_inspect_scrub.py [--steps 8]

Before this design the slider round trip was 0.45–1.32 s per step (the old version of this
bench, 0.3 s of fixed wait included) on the 2-core VM.
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from playwright.sync_api import expect, sync_playwright

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"

# One step of the chart's range input, timed in the page: lower it by one, fire the input
# event Vega listens to, wait for Vega's first change to the chart's SVG (it renders a
# dataflow run in one go) and then for the next frame, so the change is on screen.
STEP_JS = """async () => {
  const input = document.querySelector('.vega-bindings input[type=range]');
  const root = input.closest('.vega-embed');
  const svg = root.querySelector('svg.marks');
  const t0 = performance.now();
  const changed = new Promise(resolve => {
    const seen = new MutationObserver(() => { seen.disconnect(); resolve(); });
    seen.observe(svg, {subtree: true, childList: true, attributes: true, characterData: true});
  });
  input.stepDown();
  input.dispatchEvent(new Event('input', {bubbles: true}));
  const late = new Promise(r => setTimeout(() => r('late'), 10000));
  if (await Promise.race([changed, late]) === 'late') return -1;
  await new Promise(r => requestAnimationFrame(() => setTimeout(r, 0)));
  return performance.now() - t0;
}"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def at_step(page) -> str:
    return page.get_by_text(re.compile(r"^At step \d+")).first.inner_text()


def wait_idle(page, timeout: float = 30.0) -> None:
    end = time.monotonic() + timeout
    while page.get_by_test_id("stStatusWidget").count() and time.monotonic() < end:
        time.sleep(0.02)


def measure(port: int, steps: int) -> tuple[list[float], list[float]]:
    """(chart ms, server ms) per step."""
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM)
        page = browser.new_page(viewport={"width": 1400, "height": 1400})
        page.goto(f"http://localhost:{port}/inspect")
        expect(page.locator(".vega-bindings input[type=range]")).to_be_visible(timeout=90_000)
        expect(page.get_by_text(re.compile(r"^At step \d+")).first).to_be_visible(timeout=60_000)
        time.sleep(4)  # first draw, thumbnails
        wait_idle(page)
        charts, server = [], []
        for _ in range(steps):
            before = at_step(page)
            t0 = time.perf_counter()
            ms = page.evaluate(STEP_JS)
            if ms < 0:
                raise RuntimeError("the chart did not change within 10 s of a step")
            charts.append(ms)
            expect(page.get_by_text(re.compile(r"^At step \d+")).first).not_to_have_text(
                before, timeout=30_000)
            wait_idle(page)
            server.append((time.perf_counter() - t0) * 1000)
            time.sleep(0.3)
        browser.close()
    return charts, server


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=8)
    args = parser.parse_args()
    port = free_port()
    with tempfile.TemporaryDirectory() as runs:
        env = dict(os.environ, IJR_RUNS_DIR=runs)
        proc = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "app/main.py", "--server.port", str(port),
             "--server.headless", "true", "--browser.gatherUsageStats", "false"],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            for _ in range(300):
                try:
                    urllib.request.urlopen(f"http://localhost:{port}/_stcore/health", timeout=1)
                    break
                except OSError:
                    time.sleep(0.2)
            charts, server = measure(port, args.steps)
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    def row(times: list[float]) -> str:
        return " ".join(f"{t:.0f}" for t in times)

    print("ms per step, charts redrawn in the browser (ours):", row(charts))
    print("ms per step, server round trip (baseline):      ", row(server))
    ours, base = statistics.median(charts), statistics.median(server)
    print(f"median: ours {ours:.0f} ms, baseline {base:.0f} ms, baseline / ours = "
          f"{base / ours:.1f}")


if __name__ == "__main__":
    main()
