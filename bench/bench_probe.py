"""Cost of one full probe in units of one training step (target ≤ 20), and the overhead of
training with a probe every 25 steps.

Setting: the edge-of-stability preset (digits, 1000 samples, MLP 64-128-128-10 tanh,
full-batch GD, η = 0.5; probe subset = all 1000 training samples, 500 test samples).
Probes are timed as the trainer takes them: every 25 GD steps, warm-started from the
previous probe. Each probe's parts are timed too (same warm starts), so the note can say
where the time goes. Medians over the probes of the first `--steps` steps.

    python bench/bench_probe.py [--steps 300] [--threads 1]
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ijr_core import curvature as cv  # noqa: E402
from ijr_core.config import PRESETS  # noqa: E402
from ijr_core.data import load_dataset  # noqa: E402
from ijr_core.models import build_model  # noqa: E402
from ijr_core.optimizers import build_optimizer  # noqa: E402
from ijr_core.probe import WARM_RITZ, ProbeState, probe  # noqa: E402
from ijr_core.trainer import train  # noqa: E402


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def parts(model, X, y, state: ProbeState, tol: float) -> dict[str, float]:
    """Time each part of a probe separately, in the probe's order and with its warm starts."""
    P = cv.num_parameters(model)
    out = {}
    out["graph: forward + gradient"], graph = timed(
        lambda: (lambda g: (g, g.gradient()))(cv.CurvatureGraph(model, X, y))[0])
    out["‖M‖ per sample"], _ = timed(lambda: cv.m_norm(graph.p.double()))
    count = [0]

    def counting(op):
        def mv(v):
            count[0] += 1
            return op(v)
        return mv

    log: list = []
    out["‖G‖ Lanczos"], (_, gv, _) = timed(lambda: cv.top_eigenpairs(
        counting(lambda v: graph.gvp(v, log=log)), P, tol=tol, v0=state.g_ritz,
        n_ritz=WARM_RITZ))
    g_products, count[0] = count[0], 0
    out["‖H‖ Lanczos"], _ = timed(lambda: cv.top_eigenpairs(
        counting(graph.hvp), P, tol=tol, v0=gv[:, :1]))
    h_products = count[0]
    out["Jacobian Gram"], gram = timed(graph.gram)
    out["‖J‖ norms + λ*"], _ = timed(lambda: cv.lambda_star(
        model, X, gv[:, 0], graph=graph, spectral_sq=cv.norms_from_gram(gram).spectral_sq,
        jtu=cv.jtu_from_products(log, gv[:, 0])))
    out["_products"] = (h_products, g_products)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--eig-tol", type=float, default=None, help="default: the preset's")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    cfg = PRESETS["edge-of-stability"].replace(device="cpu", steps=args.steps)
    if args.eig_tol is not None:
        cfg = cfg.replace(eig_tol=args.eig_tol)
    ds = load_dataset(cfg)
    model = build_model(cfg, ds)
    method = build_optimizer(cfg, model)
    loss = cv.loss_fn(cfg.loss)
    X, y = ds.X_train, ds.y_train
    state = ProbeState()
    step_times, probe_times, breakdown = [], [], []
    kw = {"eig_tol": cfg.eig_tol, "lr": cfg.lr}
    probe(model, X, y, ds.X_test, ds.y_test, state=state, **kw)  # cold start, untimed
    for step in range(1, args.steps + 1):
        dt, _ = timed(lambda: method.step(model, X, y, loss))
        step_times.append(dt)
        if step % cfg.probe_every == 0:
            before = copy.deepcopy(state)
            dt, _ = timed(lambda s=step: probe(model, X, y, ds.X_test, ds.y_test, state=state,
                                               step=s, **kw))
            probe_times.append(dt)
            breakdown.append(parts(model, X, y, before, cfg.eig_tol))

    step_t = statistics.median(step_times)
    probe_t = statistics.median(probe_times)
    print(f"threads {args.threads}, eig_tol {cfg.eig_tol:g}; {len(probe_times)} probes over "
          f"{args.steps} GD steps")
    print(f"one GD step (1000 samples)      {1e3 * step_t:8.2f} ms")
    print(f"one probe (warm start)          {1e3 * probe_t:8.2f} ms")
    print(f"probe / step                    {probe_t / step_t:8.1f}   (target <= 20)")
    print("parts of a probe (median ms, in steps):")
    for key in breakdown[0]:
        if key.startswith("_"):
            continue
        med = statistics.median(b[key] for b in breakdown)
        print(f"  {key:28s} {1e3 * med:8.2f} ms  {med / step_t:6.1f}")
    hp = statistics.median(b["_products"][0] for b in breakdown)
    gp = statistics.median(b["_products"][1] for b in breakdown)
    print(f"  Lanczos products (median): H {hp:.0f}, G {gp:.0f}")

    run = train(cfg)  # the real loop, probe every 25 steps
    wall, tr = run.meta["wall_time"], run.meta["train_time"]
    print(f"train(): {args.steps} steps, probe every {cfg.probe_every}: wall {wall:.2f} s, "
          f"of which optimizer steps {tr:.2f} s -> total / steps-only = {wall / tr:.1f}x")


if __name__ == "__main__":
    main()
