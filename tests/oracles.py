"""Dense brute-force references on tiny models, by plain autograd on deep copies.

Nothing here swaps parameters (``functional_call``) or shares code with ijr_core's curvature
products: every row of a Jacobian is one ``autograd.grad`` of one output, every column of H
one double-backward of the loss gradient with a unit vector. Slow (P·N·K passes) and exact.

Modes follow ijr_core.model_view, written out again on purpose (an oracle must not reuse the
code it checks): ``"eval"`` = ``model.eval()``; ``"train"`` = eval except batch norm, which
normalises with the batch's statistics. ``frozen_jacobian`` holds those statistics fixed.
Parameters without ``requires_grad`` are constants: every flat vector (P,) here runs over the
trainable parameters in ``named_parameters`` order.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn


def prepared(model: nn.Module, mode: str) -> nn.Module:
    m = copy.deepcopy(model)
    m.eval()
    if mode == "train":
        for mod in m.modules():
            if isinstance(mod, nn.modules.batchnorm._BatchNorm):
                mod.train()
    return m


def trainable(model: nn.Module) -> list[torch.Tensor]:
    return [p for _, p in model.named_parameters() if p.requires_grad]


def split(model: nn.Module, vec: torch.Tensor) -> dict[str, torch.Tensor]:
    """A flat (P,) vector as name -> tensor shaped like each trainable parameter."""
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    chunks = vec.split([p.numel() for _, p in named])
    return {n: c.reshape(p.shape) for (n, p), c in zip(named, chunks, strict=True)}


def with_parameters(model: nn.Module, values) -> nn.Module:
    """A deep copy of ``model`` whose trainable parameters hold ``values``: a flat (P,)
    vector, or one tensor per trainable parameter (a list, or a dict by name)."""
    m = copy.deepcopy(model)
    params = trainable(m)
    if isinstance(values, torch.Tensor):
        values = list(split(m, values).values())
    elif isinstance(values, dict):
        values = [values[n] for n, p in m.named_parameters() if p.requires_grad]
    with torch.no_grad():
        for p, v in zip(params, values, strict=True):
            p.copy_(v)
    return m


def _flat_grad(out: torch.Tensor, params, **kw) -> torch.Tensor:
    g = torch.autograd.grad(out, params, allow_unused=True, **kw)
    return torch.cat([torch.zeros_like(p).reshape(-1) if t is None else t.to_dense().reshape(-1)
                      for t, p in zip(g, params, strict=True)])


def loss_of(z: torch.Tensor, y: torch.Tensor, loss: str) -> torch.Tensor:
    if loss == "ce":
        return F.cross_entropy(z, y)
    return 0.5 * (z - F.one_hot(y, z.shape[1]).to(z.dtype)).pow(2).sum(-1).mean()


def dense_gradient(model, X, y, loss="ce", mode="eval") -> torch.Tensor:
    """(P,) gradient of the mean loss on (X, y)."""
    m = prepared(model, mode)
    return _flat_grad(loss_of(m(X), y, loss), trainable(m))


def dense_hessian(model, X, y, loss="ce", mode="eval") -> torch.Tensor:
    """(P, P) Hessian of the mean loss on (X, y)."""
    m = prepared(model, mode)
    params = trainable(m)
    g = _flat_grad(loss_of(m(X), y, loss), params, create_graph=True)
    rows = []
    for i in range(g.numel()):
        if g[i].requires_grad:
            rows.append(_flat_grad(g[i], params, retain_graph=True))
        else:
            rows.append(torch.zeros_like(g))
    return torch.stack(rows)


def _jacobian_rows(m: nn.Module, X: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    params = trainable(m)
    z = m(X)
    N, K = z.shape
    J = torch.stack([torch.stack([_flat_grad(z[n, k], params, retain_graph=True)
                                  for k in range(K)]) for n in range(N)])
    return J, z.detach()


def dense_jacobian(model, X, mode="eval") -> tuple[torch.Tensor, torch.Tensor]:
    """(N, K, P) J_nᵀ = ∂z_n/∂θ of the whole batch's forward pass (samples coupled through
    batch statistics in train mode) and the logits (N, K)."""
    return _jacobian_rows(prepared(model, mode), X)


@torch.no_grad()
def _batch_stats(m: nn.Module, X: torch.Tensor) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    stats, handles = {}, []
    for name, mod in m.named_modules():
        if isinstance(mod, nn.modules.batchnorm._BatchNorm):
            def hook(module, inputs, name=name):
                a = inputs[0]
                dims = [0, *range(2, a.ndim)]
                stats[name] = (a.mean(dims), a.var(dims, unbiased=False))
            handles.append(mod.register_forward_pre_hook(hook))
    m(X)
    for h in handles:
        h.remove()
    return stats


def frozen_jacobian(model, X) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample Jacobians in train mode with the batch statistics held fixed: each sample
    alone through the network whose batch norm uses the batch's mean and variance."""
    m = prepared(model, "train")
    stats = _batch_stats(copy.deepcopy(m), X)
    for name, mod in m.named_modules():
        if name in stats:
            mod.eval()
            mod.running_mean, mod.running_var = stats[name]
    rows = [_jacobian_rows(m, X[n : n + 1]) for n in range(X.shape[0])]
    return torch.cat([r[0] for r in rows]), torch.cat([r[1] for r in rows])


def softmax_hessians(z: torch.Tensor, loss: str = "ce") -> torch.Tensor:
    """(N, K, K) M_n: diag p − p pᵀ for cross-entropy, I for the squared loss."""
    if loss == "mse":
        return torch.eye(z.shape[1], dtype=z.dtype).expand(z.shape[0], -1, -1)
    p = torch.softmax(z, -1)
    return torch.diag_embed(p) - p[:, :, None] * p[:, None, :]


def dense_ggn(J: torch.Tensor, z: torch.Tensor, loss: str = "ce") -> torch.Tensor:
    """(P, P) G = (1/N) Σ_n J_n M_n J_nᵀ from (N, K, P) Jacobians."""
    return torch.einsum("nkp,nkl,nlq->pq", J, softmax_hessians(z, loss), J) / J.shape[0]


def model_ggn(model, X, loss="ce", mode="eval") -> torch.Tensor:
    """(P, P) G of ``model`` on X: :func:`dense_ggn` of its :func:`dense_jacobian`."""
    return dense_ggn(*dense_jacobian(model, X, mode), loss)


def jacobian_penalty(model, X, noise, mode="eval") -> tuple[torch.Tensor, torch.Tensor]:
    """‖Σ_n J_nᵀ ε_n‖² / N for noise ε (N, K), and its (P,) gradient: Σ_n J_nᵀ ε_n is the
    gradient of Σ_n ε_n·z_n (kept in the graph), the penalty's gradient one more backward."""
    m = prepared(model, mode)
    params = trainable(m)
    v = _flat_grad((noise * m(X)).sum(), params, create_graph=True)
    value = v.pow(2).sum() / X.shape[0]
    return value.detach(), _flat_grad(value, params)


def top_eigenvalue(A: torch.Tensor) -> float:
    return float(torch.linalg.eigvalsh(0.5 * (A + A.T))[-1])


def per_sample_spectral_sq(J: torch.Tensor) -> torch.Tensor:
    """(N,) λ_max(J_nᵀ J_n)."""
    return torch.linalg.eigvalsh(J @ J.transpose(1, 2))[:, -1]
