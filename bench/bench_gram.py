"""logit_jacobian_gram (layer-wise fast path) against torch.func.vmap(jacrev), same data.

Prints median times, their ratio, the max relative error and the peak memory of each method
(measured in a child process per method, as the growth of the peak resident set size).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import cnn, digits, median_time, mlp  # noqa: E402

from ijr_core.curvature import logit_jacobian_gram  # noqa: E402

MODELS = {"mlp": mlp, "cnn": cnn}


def _vm_hwm_kb() -> int:
    """Peak resident set of this process (VmHWM; ru_maxrss would include the parent's after
    fork+exec on Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError("no VmHWM in /proc/self/status")


def _peak_mb(model_name: str, method: str) -> float:
    """Run one Gram in a fresh process; report the peak RSS growth in MB."""
    model, X = MODELS[model_name](), digits()[0]
    before = _vm_hwm_kb()
    logit_jacobian_gram(model, X, method=method, chunk_size=X.shape[0])
    return (_vm_hwm_kb() - before) / 1024


def main() -> None:
    torch.set_num_threads(2)
    X, _ = digits()
    for name, factory in MODELS.items():
        model = factory()
        ours = logit_jacobian_gram(model, X, method="fast")
        ref = logit_jacobian_gram(model, X, method="generic", chunk_size=X.shape[0])
        rel = float((ours - ref).norm() / ref.norm())
        t_ours = median_time(lambda m=model: logit_jacobian_gram(m, X, method="fast"), repeats=21)
        t_ref = median_time(lambda m=model: logit_jacobian_gram(m, X, method="generic",
                                                               chunk_size=X.shape[0]), repeats=3)
        mem = {}
        for method in ("fast", "generic"):
            out = subprocess.run([sys.executable, __file__, "--peak", name, method],
                                 capture_output=True, text=True, check=True)
            mem[method] = float(out.stdout.strip())
        print(f"{name}: N={X.shape[0]} vmap(jacrev) {t_ref * 1e3:8.1f} ms | fast path "
              f"{t_ours * 1e3:7.1f} ms | speed-up {t_ref / t_ours:6.1f}x | rel err {rel:.1e} | "
              f"peak RSS growth: jacrev {mem['generic']:.0f} MB, fast {mem['fast']:.0f} MB")


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--peak":
        torch.set_num_threads(2)
        print(_peak_mb(sys.argv[2], sys.argv[3]))
    else:
        main()
