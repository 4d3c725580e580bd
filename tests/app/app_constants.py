"""Constants shared by the app tests (imported by name: tests/ has no packages)."""

from __future__ import annotations

from pathlib import Path

APP = str(Path(__file__).resolve().parents[2] / "app" / "main.py")

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
