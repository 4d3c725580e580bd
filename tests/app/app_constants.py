"""Constants shared by the app tests (imported by name: tests/ has no packages)."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
APP = str(ROOT / "app" / "main.py")
ARTIFACTS = ROOT / "tests" / "artifacts"  # screenshots of the browser tests
CHROMIUM = "/usr/bin/chromium"  # Debian's, never a downloaded browser build
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

# Trains in about a second on one core: 2-D data, so the decision map is exercised too.
TINY = {
    "dataset": "moons",
    "n_train": "80",
    "n_test": "40",
    "probe_size": "80",
    "width": "8",
    "depth": "1",
    "steps": "12",
    "probe_every": "4",
    "device": "cpu",
    "lr": "0.7",
}
