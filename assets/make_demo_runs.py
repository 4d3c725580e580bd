"""Rebuild the demo runs and the demo sweep shipped in assets/demo_runs (first launch).

    python assets/make_demo_runs.py               # all demos, ~3-5 minutes on a laptop CPU
    python assets/make_demo_runs.py 3-two-moons   # one of them
    python assets/make_demo_runs.py 4-lr-sweep    # the learning-rate sweep only
    python assets/make_demo_runs.py 5-optimizers  # the optimizer comparison only

The digits demos probe every 40 steps instead of 25 (21 evenly spaced checkpoints), which
keeps each folder under 3 MB: the parameter snapshots dominate. Same seeds and one torch
thread make the runs reproducible.

The demo sweep (4 learning rates of the "lr-sweep" preset, probed every 20 steps as the
preset says, so the (η × step) heatmap keeps its resolution) keeps only 3 checkpoints per
run (checkpoint_limit=3): the scalars behind the Compare page's sweep plots are all kept,
and the folder stays under 2 MB.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from ijr_core.config import PRESETS  # noqa: E402
from ijr_core.sweep import sweep_lr  # noqa: E402
from ijr_core.threads import set_budget  # noqa: E402
from ijr_core.trainer import train  # noqa: E402

OUT = Path(__file__).resolve().parent / "demo_runs"

DEMOS = {
    # The default preset: sharpening to 2/η = 6.67, a plateau there, the inverted U of
    # ⟨‖M‖⟩ and phases I → II → III.
    "1-digits-eos-lr0.3": PRESETS["edge-of-stability"].replace(
        name="demo-digits-lr0.3", probe_every=40, device="cpu"
    ),
    # Same with η = 0.1: 2/η = 20 is not reached, ⟨‖M‖⟩ stays high (no ARP decay yet).
    "2-digits-lr0.1": PRESETS["edge-of-stability"].replace(
        name="demo-digits-lr0.1", lr=0.1, probe_every=40, device="cpu"
    ),
    # 2-D data: decision boundaries and the impurity of the plane at any step.
    "3-two-moons": PRESETS["two-moons"].replace(name="demo-two-moons", device="cpu"),
}

# Learning-rate sweeps: (base config, learning rates). Compare page, "Learning-rate sweep".
SWEEPS = {
    # Every η reaches the edge of stability and settles near its 2/η (η ≤ 0.5; above, the
    # overshoot grows); larger η → earlier ARP, and at matched training loss a smaller
    # ⟨‖J‖²⟩ (implicit Jacobian regularization).
    "4-lr-sweep": (
        PRESETS["lr-sweep"].replace(name="demo-lr-sweep", device="cpu", checkpoint_limit=3),
        [0.2, 0.3, 0.4, 0.5],
    ),
}


# Optimizer comparisons: (base config, methods, mini-batch size). Compare page, "Optimizers":
# the defaults of that section (the ejr-vs-sam preset, gd / sgd / sam / ejr, batch 64).
GROUPS = {
    "5-optimizers": (
        PRESETS["ejr-vs-sam"].replace(device="cpu", checkpoint_limit=3),
        ["gd", "sgd", "sam", "ejr"],
        64,
    ),
}


def _group(name: str, out: Path) -> None:
    from app.jobs import optimizer_configs
    from app.runs_store import write_group

    base, methods, batch = GROUPS[name]
    configs = optimizer_configs(base, methods, batch)
    for member, config in configs.items():
        train(config, out_dir=out / member)
    write_group(out, list(configs), "optimizer comparison (demo)", base.to_dict(),
                status="finished")


def _size_mb(folder: Path) -> float:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) / 1e6


def main(names: list[str]) -> None:
    torch.set_num_threads(1)
    set_budget(1)  # one thread for every run (no measured thread choice): reproducible
    known = [*DEMOS, *SWEEPS, *GROUPS]
    unknown = [n for n in names if n not in known]
    if unknown:
        raise SystemExit(f"unknown demo(s) {unknown}; known: {known}")
    for name in names or known:
        out = OUT / name
        shutil.rmtree(out, ignore_errors=True)
        if name in GROUPS:
            _group(name, out)
            print(f"{name}: {', '.join(GROUPS[name][1])}, {_size_mb(out):.2f} MB")
        elif name in SWEEPS:
            config, lrs = SWEEPS[name]
            sweep = sweep_lr(config, lrs, out_dir=out, workers=2)
            print(f"{name}: {sweep.status}, η = {sweep.lrs.tolist()}, {_size_mb(out):.2f} MB")
        else:
            run = train(DEMOS[name], out_dir=out)
            print(f"{name}: {run.status} at step {run.step}, {_size_mb(out):.2f} MB")


if __name__ == "__main__":
    main(sys.argv[1:])
