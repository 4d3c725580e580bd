"""One short, prepared check for a lent GPU machine (it runs on the CPU too): does
everything work on the device, and how fast is it? Prints one line per part; exit code 1 if a
correctness part fails. Meant to finish in about 3 minutes on a GPU.

1. Same run on the device and on the CPU (edge-of-stability preset, first 100 steps, before
   the edge of stability where float32 trajectories stay close): train loss and ‖H‖ agree.
2. Probe accuracy on the device: ‖H‖ and ‖G‖ of 3 probes against a float64 Lanczos solve on
   the CPU at the same parameters (tolerance 2 · eig_tol).
3. Probe cost on the device, in GD steps (the issue's target: ≤ 20).
4. An 8-η sweep (200 steps each) on the device: one run after another vs 2 and 4 at once in
   threads (the GPU part of issue 3 asks for ≥ 3× over the sequential loop).

    python bench/device_check.py [--device cuda] [--quick]

On a lent GPU machine run it from the repository root with that machine's Python (torch with
CUDA, numpy, scikit-learn); the CPU try-out (`--device cpu --quick`) takes about 15 s here.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ijr_core import curvature as cv  # noqa: E402
from ijr_core.config import PRESETS, resolve_device  # noqa: E402
from ijr_core.data import load_dataset  # noqa: E402
from ijr_core.models import build_model  # noqa: E402
from ijr_core.optimizers import build_optimizer  # noqa: E402
from ijr_core.probe import ProbeState, probe  # noqa: E402
from ijr_core.sweep import sweep_lr  # noqa: E402
from ijr_core.trainer import probe_subset, train  # noqa: E402

EOS = PRESETS["edge-of-stability"]


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def same_run(device: str) -> bool:
    cfg = EOS.replace(steps=100, probe_every=25)
    here, cpu = train(cfg.replace(device=device)), train(cfg.replace(device="cpu"))
    ok = True
    for name, rtol in (("train_loss", 1e-3), ("sharpness", 1e-2)):
        a, b = np.asarray(here.scalars[name]), np.asarray(cpu.scalars[name])
        err = float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-12)))
        ok &= err <= rtol
        print(f"1. {name:10s} device vs CPU, steps 0-100: max rel. diff {err:.1e} (≤ {rtol:g})")
    return ok


def probe_accuracy(device: str) -> bool:
    cfg = EOS.replace(steps=150, probe_every=50, device=device)
    ds = load_dataset(cfg)
    ids = probe_subset(len(ds.y_train), cfg.probe_size, cfg.data_seed)
    run = train(cfg)
    worst = 0.0
    for i, params in enumerate(run.params):
        model = build_model(cfg.replace(device="cpu"), ds).double().eval()
        with torch.no_grad():
            for name, p in model.named_parameters():
                p.copy_(torch.from_numpy(np.asarray(params[name])))
        idx = torch.as_tensor(ids)
        graph = cv.CurvatureGraph(model, ds.X_train[idx].double(), ds.y_train[idx])
        P = cv.num_parameters(model)
        for key, op in (("sharpness", graph.hvp), ("gn_sharpness", graph.gvp)):
            ref = float(cv.top_eigenpairs(op, P, tol=1e-9, max_iter=200,
                                          dtype=torch.float64)[0][0])
            worst = max(worst, abs(ref - float(run.scalars[key][i])) / abs(ref))
    ok = worst <= 2 * cfg.eig_tol
    print(f"2. probe ‖H‖, ‖G‖ on the device vs float64 CPU, {len(run.params)} probes: "
          f"max rel. error {worst:.1e} (≤ {2 * cfg.eig_tol:g})")
    return ok


def probe_cost(device: str, steps: int) -> None:
    cfg = EOS.replace(device=device)
    dev = resolve_device(device)
    ds = load_dataset(cfg)
    model = build_model(cfg, ds)
    method = build_optimizer(cfg, model)
    loss = cv.loss_fn(cfg.loss)
    X, y = ds.X_train.to(dev), ds.y_train.to(dev)
    tX, tY = ds.X_test.to(dev), ds.y_test.to(dev)
    state = ProbeState()
    probe(model, X, y, tX, tY, state=state, eig_tol=cfg.eig_tol, lr=cfg.lr)
    step_t, probe_t = [], []
    for step in range(1, steps + 1):
        sync(dev)
        t = time.perf_counter()
        method.step(model, X, y, loss)
        sync(dev)
        step_t.append(time.perf_counter() - t)
        if step % cfg.probe_every == 0:
            t = time.perf_counter()
            probe(model, X, y, tX, tY, state=state, eig_tol=cfg.eig_tol, lr=cfg.lr, step=step)
            sync(dev)
            probe_t.append(time.perf_counter() - t)
    s, p = statistics.median(step_t), statistics.median(probe_t)
    print(f"3. one GD step {1e3 * s:.2f} ms, one probe {1e3 * p:.1f} ms: probe = {p / s:.1f} "
          f"steps (target ≤ 20)")


def sweep_speed(device: str, steps: int) -> None:
    cfg = PRESETS["lr-sweep"].replace(device=device, steps=steps)
    lrs = [0.3, 0.4, 0.5, 0.7, 1.0, 1.2, 1.5, 2.0]
    times = {}
    for workers in (1, 2, 4):
        t = time.perf_counter()
        sweep = sweep_lr(cfg, lrs, workers=workers)
        times[workers] = time.perf_counter() - t
        assert all(r.status in ("finished", "diverged") for r in sweep.runs), \
            [r.status for r in sweep.runs]
    print(f"4. sweep 8 η × {steps} steps: one after another {times[1]:.1f} s; 2 at once "
          f"{times[2]:.1f} s ({times[1] / times[2]:.2f}×); 4 at once {times[4]:.1f} s "
          f"({times[1] / times[4]:.2f}×)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--quick", action="store_true", help="shorter timing parts (CPU try-out)")
    args = ap.parse_args()
    dev = resolve_device(args.device)
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else "CPU"
    print(f"device {dev} ({name}), torch {torch.__version__}")
    t0 = time.perf_counter()
    ok = same_run(args.device)
    ok &= probe_accuracy(args.device)
    probe_cost(args.device, 100 if args.quick else 300)
    sweep_speed(args.device, 60 if args.quick else 200)
    print(f"{'all correctness parts passed' if ok else 'A CORRECTNESS PART FAILED'} "
          f"({time.perf_counter() - t0:.0f} s)")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
