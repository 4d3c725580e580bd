"""What a probe costs on your model: probe time in training steps, per model family, for the
generic per-sample Jacobian path (vmap(jacrev), the baseline) and the layer-wise path.

Families of about the same size on digits (N = 500 probe samples, K = 10): the MLP
64-128-128-10 (explicit MLP products, the reference), a custom module using one raw weight
twice, a residual CNN with batch norm (probed in train mode), and a transformer-style block
(LayerNorm, self-attention, GELU MLP) over 8 tokens of 8 pixels. A training step is one
forward + backward + SGD step on the same 500 samples. Medians over warm-started probes
between short stretches of training, as a RunWriter loop takes them.

Then the per-sample Gram alone, op_gram against vmap(jacrev), on each family's probe view.

    python bench/bench_probe_families.py [--threads 1] [--probes 4] [--repeats 7]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import digits, mlp  # noqa: E402
from ijr_core import graph  # noqa: E402
from ijr_core.grams import _gram_generic  # noqa: E402
from ijr_core.model_view import frozen_statistics_view, probe_view  # noqa: E402
from ijr_core.op_gram import op_gram  # noqa: E402
from ijr_core.probe import ProbeState, probe  # noqa: E402


class RawTwice(nn.Module):
    """x -> tanh(x A + a) -> tanh(h W + b) -> tanh(h W + c) -> linear; W used twice."""

    def __init__(self):
        super().__init__()
        self.A = nn.Parameter(torch.randn(64, 128) / 8)
        self.a = nn.Parameter(torch.zeros(128))
        self.W = nn.Parameter(torch.randn(128, 128) / 11.3)
        self.b = nn.Parameter(torch.zeros(128))
        self.c = nn.Parameter(torch.zeros(128))
        self.out = nn.Linear(128, 10)

    def forward(self, x):
        h = torch.tanh(x @ self.A + self.a)
        h = torch.tanh(h @ self.W + self.b)
        return self.out(torch.tanh(h @ self.W + self.c))


class ResBNCNN(nn.Module):
    def __init__(self, c: int = 24):
        super().__init__()
        self.stem = nn.Conv2d(1, c, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(c)
        self.conv = nn.Conv2d(c, c, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(c)
        self.head = nn.Linear(c, 10)

    def forward(self, x):
        x = x.view(-1, 1, 8, 8)
        h = F.relu(self.bn1(self.stem(x)))
        h = F.relu(h + self.bn2(self.conv(h)))
        return self.head(h.mean((2, 3)))


class Block(nn.Module):
    def __init__(self, d: int = 48):
        super().__init__()
        self.embed = nn.Linear(8, d)
        self.ln1 = nn.LayerNorm(d)
        self.qkv = nn.Linear(d, 3 * d)
        self.ln2 = nn.LayerNorm(d)
        self.mlp = nn.Sequential(nn.Linear(d, 2 * d), nn.GELU(), nn.Linear(2 * d, d))
        self.head = nn.Linear(d, 10)

    def forward(self, x):
        h = self.embed(x.view(-1, 8, 8))
        q, k, v = self.qkv(self.ln1(h)).chunk(3, dim=-1)
        att = torch.softmax(q @ k.transpose(1, 2) / q.shape[-1] ** 0.5, dim=-1)
        h = h + att @ v
        h = h + self.mlp(self.ln2(h))
        return self.head(h.mean(1))


FAMILIES = {"mlp (fast path)": mlp, "custom: raw weight twice": RawTwice,
            "residual CNN + BN": ResBNCNN, "transformer block": Block}


@contextmanager
def gram_method(method: str):
    """Force the per-sample Gram path inside probe() (the baseline is 'generic')."""
    original = graph.logit_jacobian_gram  # what CurvatureGraph.gram calls

    def forced(model, X, chunk_size=None, method_=None):
        return original(model, X, chunk_size=chunk_size, method=method)

    graph.logit_jacobian_gram = forced
    try:
        yield
    finally:
        graph.logit_jacobian_gram = original


def measure(factory, X, y, probes: int, method: str) -> tuple[float, float, int]:
    torch.manual_seed(0)
    model = factory()
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)

    def step():
        loss = F.cross_entropy(model(X), y)
        opt.zero_grad()
        loss.backward()
        opt.step()

    step_times, probe_times, state = [], [], ProbeState()
    with gram_method(method):
        for _ in range(probes + 1):
            for _ in range(5):
                t = time.perf_counter()
                step()
                step_times.append(time.perf_counter() - t)
            t = time.perf_counter()
            probe(model, X, y, state=state, with_params=False)
            probe_times.append(time.perf_counter() - t)
    n_params = sum(p.numel() for p in model.parameters())
    return statistics.median(step_times), statistics.median(probe_times[1:]), n_params


def gram_times(factory, X, repeats: int) -> tuple[float, float]:
    """Median seconds of the per-sample Gram alone on the probe's private view: op_gram and
    vmap(jacrev), interleaved so that load on the machine hits both alike."""
    torch.manual_seed(0)
    model = factory().train()
    view = frozen_statistics_view(probe_view(model, "train"), X)
    times: dict[str, list[float]] = {"op_gram": [], "vmap": []}
    for _ in range(repeats):
        for name, run in (("op_gram", lambda: op_gram(view, X)),
                          ("vmap", lambda: _gram_generic(view, X, X.shape[0]))):
            t = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - t)
    return statistics.median(times["op_gram"]), statistics.median(times["vmap"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--probes", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=7, help="runs of each per-sample Gram")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    X, y = digits(500)
    print(f"{'family':28s} {'P':>7s} {'step ms':>8s} {'generic':>14s} {'layer-wise':>14s} "
          f"{'speed-up':>8s}")
    for name, factory in FAMILIES.items():
        row = {}
        for method in ("generic", "auto"):
            row[method] = measure(factory, X, y, args.probes, method)
        step_ms = 1e3 * row["auto"][0]
        cost = {m: row[m][1] / row[m][0] for m in row}
        print(f"{name:28s} {row['auto'][2]:7d} {step_ms:8.2f} "
              f"{cost['generic']:8.1f} steps {cost['auto']:8.1f} steps "
              f"{row['generic'][1] / row['auto'][1]:7.1f}x", flush=True)
    print(f"\nper-sample Gram alone (median of {args.repeats}):\n"
          f"{'family':28s} {'op_gram ms':>10s} {'vmap ms':>9s} {'op/vmap':>8s}")
    for name, factory in FAMILIES.items():
        ours, vmap = gram_times(factory, X, args.repeats)
        print(f"{name:28s} {1e3 * ours:10.1f} {1e3 * vmap:9.1f} {ours / vmap:8.2f}", flush=True)


if __name__ == "__main__":
    main()
