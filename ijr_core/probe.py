r"""One probe: every metric of SCIENCE.md at one step, on a fixed probe subset.

For the probe subset :math:`D` (inputs X, labels y) and the current parameters θ:

* train loss / accuracy on D, test loss / accuracy on the test set (when given);
* the top-``n_eigs`` eigenvalues of :math:`H=\langle\nabla^2_\theta\ell\rangle` by Lanczos
  (``sharpness``, ``sharpness_2``, …) with their residuals :math:`\|Hv-\theta v\|`;
* :math:`\|G\|` and its unit eigenvector u (``gn_sharpness``, ``gn_sharpness_residual``);
* per sample: :math:`\|M(x)\|` (``m_norm``; 1 for the squared loss where M = I),
  :math:`\lambda^*(x)`, :math:`\|J(x)\|^2=\lambda_{\max}(J^\top J)` (``jac_spectral_sq``),
  :math:`\|J(x)\|_F^2` (``jac_frobenius_sq``), :math:`p_{(1)}` (``p_max``) and ``correct``;
* means: ``m_norm_mean``, ``jac_spectral_sq_mean``, ``jac_frobenius_sq_mean``,
  ``lambda_star_jac`` :math:`=\langle\lambda^*\|J\|^2\rangle` (equal to :math:`\|G\|` by the
  theorem), ``m_norm_jac`` :math:`=\langle\|M\|\,\|J\|^2\rangle` (its upper bound);
* ``grad_norm`` :math:`=\|\nabla_\theta\langle\ell\rangle_D\|` and ``two_over_eta`` = 2/η.

The per-sample Jacobian Gram :math:`J^\top J` is computed once per probe and reused for
both norms and for λ*. Lanczos warm-starts from the previous probe's eigenvectors (kept in
a :class:`ProbeState`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from ijr_core import curvature as cv
from ijr_core.lanczos import Eigenpairs, lanczos
from ijr_core.model_view import (
    check_inputs,
    check_labels,
    frozen_statistics_view,
    has_batch_coupling,
    probe_view,
)


@dataclass
class Snapshot:
    """All metrics at one step: ``scalars`` (name -> float), ``samples`` (name -> (S,)
    float32 array, S = probe subset size) and optionally a parameter snapshot."""

    step: int
    scalars: dict[str, float]
    samples: dict[str, np.ndarray]
    params: dict[str, np.ndarray] | None = None

    def __getitem__(self, name: str) -> float:
        return self.scalars[name]


@dataclass
class ProbeState:
    """What one probe hands to the next: eigenvectors for Lanczos warm starts."""

    h_vectors: torch.Tensor | None = None
    g_vector: torch.Tensor | None = None
    g_ritz: torch.Tensor | None = None  # G's top Ritz vectors (P, ≤ WARM_RITZ)
    hvp_count: int = 0
    extra: dict = field(default_factory=dict)


# Directions carried from one probe to the next (see _probe).
WARM_RITZ = 3
# Lanczos iterations at least, from a random start (the first probe of a run): measured, 1 of
# 480 random small probes stopped on the second eigenvalue of G (11 % off) before this guard.
COLD_START_ITERATIONS = 20


def param_snapshot(model: nn.Module) -> dict[str, np.ndarray]:
    """Copy of the model's state (name -> numpy array on the CPU): every parameter and
    persistent buffer (e.g. batch-norm running statistics) under its ``state_dict`` name, so
    ``model.load_state_dict({k: torch.from_numpy(v) for k, v in snapshot.items()})`` rebuilds
    the model at that step (bfloat16, which numpy lacks, is stored as float32: exact, and
    ``load_state_dict`` converts it back)."""
    return {n: (t.detach().float() if t.dtype == torch.bfloat16 else t.detach()).cpu().numpy()
            .copy() for n, t in model.state_dict().items()}


@torch.no_grad()
def evaluate(model: nn.Module, X: torch.Tensor, y: torch.Tensor, loss: str = "ce",
             chunk_size: int = 4096) -> tuple[float, float]:
    """(mean loss, accuracy) of ``model`` on (X, y), in chunks."""
    fn = cv.loss_fn(loss)
    total, correct, n = 0.0, 0, X.shape[0]
    for start in range(0, n, chunk_size):
        z = model(X[start : start + chunk_size])
        yc = y[start : start + chunk_size]
        total += float(fn(z, yc)) * yc.shape[0]
        correct += int((z.argmax(-1) == yc).sum())
    return total / n, correct / n


def probe(
    model: nn.Module,
    probe_X: torch.Tensor,
    probe_y: torch.Tensor,
    test_X: torch.Tensor | None = None,
    test_y: torch.Tensor | None = None,
    loss: str = "ce",
    n_eigs: int = 1,
    eig_tol: float = 1e-3,
    state: ProbeState | None = None,
    *,
    step: int = 0,
    lr: float | None = None,
    with_params: bool = True,
    mode: str = "train",
) -> Snapshot:
    """Measure every metric (module docstring) at the model's current parameters.

    ``state`` (updated in place) carries Lanczos warm starts from probe to probe. ``lr``
    adds ``lr`` and ``two_over_eta`` = 2/η to the scalars. ``mode`` is the probe mode
    (:mod:`ijr_core.model_view`): ``"train"`` measures the function gradient descent trains
    (batch normalisation on the probe batch's statistics, dropout off), ``"eval"`` the model
    in eval mode. Test loss and accuracy are always measured in eval mode, as at inference.
    Everything runs on a private copy: ``model`` (parameters, buffers, ``.grad``, mode, hooks)
    is only read.
    """
    state = state if state is not None else ProbeState()
    view = probe_view(model, mode)
    if test_X is not None and test_y is not None:
        test_view = view if mode == "eval" or not has_batch_coupling(view) else \
            probe_view(model, "eval")
        tX = check_inputs(test_X)
        test = (test_view, tX, check_labels(test_y, len(tX), name="test_y"))
    else:
        test = None
    X = check_inputs(probe_X)
    snap = _probe(view, X, check_labels(probe_y, len(X), name="probe_y"), test, loss, n_eigs,
                  eig_tol, state, step, lr)
    snap.params = param_snapshot(model) if with_params else None
    return snap


def _probe(model, X, y, test, loss, n_eigs, eig_tol, state, step, lr):
    device, dtype = cv._model_device_dtype(model)
    X = X.to(device=device, dtype=dtype) if X.is_floating_point() else X.to(device)
    y = torch.as_tensor(y).to(device).long()
    dim = cv.num_parameters(model)
    scalars: dict[str, float] = {}
    # One forward pass serves the per-sample outputs, the gradient, H, G and λ*.
    graph = cv.CurvatureGraph(model, X, y, loss=loss)
    z, p = graph.z.detach(), graph.p.double()
    correct = (z.argmax(-1) == y).to(torch.float32)
    m = cv.m_norm(p) if loss == "ce" else torch.ones_like(p[:, 0])
    p_max = p.max(-1).values
    scalars["train_loss"] = float(graph.value.detach())
    scalars["train_acc"] = float(correct.mean())
    if test is not None:
        test_model, tX, tY = test
        tX = tX.to(device=device, dtype=dtype) if tX.is_floating_point() else tX.to(device)
        tY = check_labels(tY, len(tX), z.shape[1], name="test_y").to(device).long()
        scalars["test_loss"], scalars["test_acc"] = evaluate(test_model, tX, tY, loss)
    scalars["grad_norm"] = float(torch.linalg.vector_norm(graph.gradient()))

    k = min(n_eigs, dim)
    # G first: its products are cheaper than H's, and its fresh top eigenvector is a far
    # better start for H than H's vector from the last probe (H then needs 4–6 products, not
    # 8–10). G starts from its previous top WARM_RITZ Ritz directions, not just the top one:
    # at the edge of stability the top eigenvalues swap places, and a start holding only the
    # old top direction converges to it (now second) with a small residual; measured by
    # bench/check_probe_accuracy.py.
    g_products: list = []  # (q, J^T q) of the last G solve: λ* reuses them for J^T u

    def solve_g(v0, min_iter=0) -> Eigenpairs:
        g_products.clear()
        return lanczos(lambda v: graph.gvp(v, log=g_products), dim, k=1, tol=eig_tol, v0=v0,
                       device=device, dtype=dtype, n_ritz=WARM_RITZ, min_iter=min_iter)

    def solve_h(v0) -> Eigenpairs:
        if k > 1 and state.h_vectors is not None and state.h_vectors.shape[1] > 1:
            v0 = torch.cat([v0, state.h_vectors[:, 1:k]], dim=1)
        return lanczos(graph.hvp, dim, k=k, tol=eig_tol, v0=v0, device=device, dtype=dtype)

    g = solve_g(state.g_ritz, COLD_START_ITERATIONS if state.g_ritz is None else 0)
    h = solve_h(g.vectors[:, :1])
    # Cross-check (one forward-mode pass): a Rayleigh quotient bounds the top eigenvalue from below,
    # so G's quotient at H's top vector above G's value means G stopped on a lower
    # eigenvalue (measured: 1 probe in ~200, 5 % off). Then G restarts from H's vector, and
    # H is checked the same way against G's new vector.
    v = h.vectors[:, 0]
    if graph.g_quadratic(v) / float(v @ v) > float(g.values[0]) * (1 + eig_tol):
        g = solve_g(torch.stack([v, g.vectors[:, 0]], dim=1))
        u = g.vectors[:, 0]
        if float(u @ graph.hvp(u)) > float(h.values[0]) * (1 + eig_tol):
            h = solve_h(torch.stack([u, v], dim=1))
    state.g_ritz = g.ritz.detach()
    state.h_vectors, state.g_vector = h.vectors.detach(), g.vectors[:, 0].detach()
    for i in range(k):
        suffix = "" if i == 0 else f"_{i + 1}"
        scalars[f"sharpness{suffix}"] = float(h.values[i])
        scalars[f"sharpness_residual{suffix}"] = float(h.residuals[i])
    scalars["gn_sharpness"] = float(g.values[0])
    scalars["gn_sharpness_residual"] = float(g.residuals[0])

    # Per-sample quantities need samples that do not interact: with batch normalisation in
    # train mode they come from the network with the batch statistics held fixed.
    if has_batch_coupling(model):
        per_sample = cv.CurvatureGraph(frozen_statistics_view(model, X), X, loss=loss)
        jtu = None
    else:
        per_sample, jtu = graph, cv.jtu_from_products(g_products, state.g_vector)
    norms = cv.norms_from_gram(per_sample.gram())
    lam = cv.lambda_star(per_sample.model, X, state.g_vector, loss=loss, graph=per_sample,
                         spectral_sq=norms.spectral_sq, jtu=jtu).double()
    spec, frob = norms.spectral_sq.double(), norms.frobenius_sq.double()
    scalars["m_norm_mean"] = float(m.mean())
    scalars["jac_spectral_sq_mean"] = float(spec.mean())
    scalars["jac_frobenius_sq_mean"] = float(frob.mean())
    scalars["lambda_star_jac"] = float((lam * spec).mean())
    scalars["m_norm_jac"] = float((m.to(spec.device) * spec).mean())
    scalars["lambda_star_mean"] = float(lam.mean())
    scalars["p_max_mean"] = float(p_max.mean())
    if lr is not None:
        scalars["lr"] = float(lr)
        scalars["two_over_eta"] = 2.0 / float(lr)

    def np32(t: torch.Tensor) -> np.ndarray:
        return t.detach().to("cpu", torch.float32).numpy()

    samples = {
        "m_norm": np32(m),
        "lambda_star": np32(lam),
        "jac_spectral_sq": np32(spec),
        "jac_frobenius_sq": np32(frob),
        "p_max": np32(p_max),
        "correct": np32(correct),
    }
    return Snapshot(step=int(step), scalars=scalars, samples=samples)
