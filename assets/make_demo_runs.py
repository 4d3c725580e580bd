"""Rebuild the demo runs shipped in assets/demo_runs (shown on first launch).

    python assets/make_demo_runs.py            # all demos, ~2-4 minutes on a laptop CPU
    python assets/make_demo_runs.py two-moons  # one of them

The digits demos probe every 40 steps instead of 25 (21 evenly spaced checkpoints), which
keeps each folder under 3 MB: the parameter snapshots dominate. Same seeds and one torch
thread make the runs reproducible.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from ijr_core.config import PRESETS  # noqa: E402
from ijr_core.trainer import train  # noqa: E402

OUT = Path(__file__).resolve().parent / "demo_runs"

DEMOS = {
    # SCIENCE.md's setting: sharpening to 2/η = 4, edge of stability, inverted U of ⟨‖M‖⟩.
    "1-digits-eos-lr0.5": PRESETS["edge-of-stability"].replace(
        name="demo-digits-lr0.5", probe_every=40, device="cpu"
    ),
    # Same with η = 0.1: 2/η = 20 is not reached, ⟨‖M‖⟩ stays high (no ARP decay yet).
    "2-digits-lr0.1": PRESETS["edge-of-stability"].replace(
        name="demo-digits-lr0.1", lr=0.1, probe_every=40, device="cpu"
    ),
    # 2-D data: decision boundaries and the impurity of the plane at any step.
    "3-two-moons": PRESETS["two-moons"].replace(name="demo-two-moons", device="cpu"),
}


def main(names: list[str]) -> None:
    torch.set_num_threads(1)
    for name in names or list(DEMOS):
        out = OUT / name
        shutil.rmtree(out, ignore_errors=True)
        run = train(DEMOS[name], out_dir=out)
        size = sum(f.stat().st_size for f in out.iterdir()) / 1e6
        print(f"{name}: {run.status} at step {run.step}, {size:.2f} MB")


if __name__ == "__main__":
    main(sys.argv[1:])
