"""What a user waits for when scrubbing Inspect: seconds from one arrow-key step of the step
slider until the page is idle again (rerun done, browser drawn), in Debian's Chromium.

Starts the app on a free port (runs folder: a temporary directory), opens Inspect on the
default demo run (1000 samples), presses ← six times and prints each step's time. The server
part alone is `bench_charts.py`; this one includes drawing in the browser, which dominated
(the heatmap redrawn on each step cost about 1 s here before its cursor became a separate
strip; 0.45–0.75 s per step after, 1.4–1.7 s before, on the 2-core VM).

    .venv/bin/python bench/bench_inspect_scrub.py
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from playwright.sync_api import expect, sync_playwright

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    port = free_port()
    with tempfile.TemporaryDirectory() as runs:
        env = dict(os.environ, IJR_RUNS_DIR=runs)
        proc = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "app/main.py", "--server.port", str(port),
             "--server.headless", "true"],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            for _ in range(300):
                try:
                    urllib.request.urlopen(f"http://localhost:{port}/_stcore/health", timeout=1)
                    break
                except OSError:
                    time.sleep(0.2)
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM)
                page = browser.new_page(viewport={"width": 1400, "height": 900})
                page.goto(f"http://localhost:{port}/inspect")
                slider = page.get_by_role("slider").first
                expect(slider).to_be_visible(timeout=60_000)
                expect(page.get_by_text("per sample over training").first).to_be_visible(
                    timeout=60_000)
                time.sleep(4)
                thumb = page.get_by_test_id("stSliderThumbValue").first
                slider.focus()
                times = []
                for _ in range(6):
                    before = thumb.inner_text()
                    t0 = time.perf_counter()
                    page.keyboard.press("ArrowLeft")
                    expect(thumb).not_to_have_text(before, timeout=30_000)
                    time.sleep(0.3)  # let the rerun start before polling for its end
                    while page.get_by_test_id("stStatusWidget").count():
                        time.sleep(0.05)
                    page.evaluate(
                        "() => new Promise(r => requestAnimationFrame(() => setTimeout(r, 0)))")
                    times.append(time.perf_counter() - t0)
                browser.close()
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    print("seconds per slider step (incl. a 0.3 s wait):", " ".join(f"{t:.2f}" for t in times))


if __name__ == "__main__":
    main()
