r"""The softmax Hessian :math:`M=\mathrm{diag}(p)-pp^\top` (the Hessian of cross-entropy in the
logits) and its norm, the impurity of a prediction."""

from __future__ import annotations

import torch

from ijr_core.params import NonFiniteError


def softmax_hessian(p: torch.Tensor) -> torch.Tensor:
    r""":math:`M = \mathrm{diag}(p) - pp^\top`, batched: (..., K) -> (..., K, K)."""
    p = torch.as_tensor(p)
    if p.ndim < 1 or p.shape[-1] < 2:
        raise ValueError(f"p must have a last dimension K >= 2, got shape {tuple(p.shape)}")
    return torch.diag_embed(p) - p.unsqueeze(-1) * p.unsqueeze(-2)


def m_norm(p: torch.Tensor) -> torch.Tensor:
    r""":math:`\|M\|=\lambda^{(1)}(\mathrm{diag}(p)-pp^\top)`, exact, batched: (..., K) -> (...).

    Satisfies :math:`p_{(2)}\le\|M\|\le p_{(1)}`, :math:`\|M\|\le 1-\sum_k p_k^2` and, for
    :math:`K=2`, :math:`\|M\|=2p_1p_2`. Computed by a batched symmetric eigensolver on the
    :math:`K\times K` matrices (float64 internally, so tiny impurities keep their digits).
    """
    p = torch.as_tensor(p)
    M = softmax_hessian(p.double())
    if not torch.isfinite(M).all():
        raise NonFiniteError("p contains non-finite values")
    return torch.linalg.eigvalsh(M)[..., -1].clamp_min(0).to(p.dtype if p.is_floating_point()
                                                              else torch.float64)


def _apply_m(p: torch.Tensor | None, w: torch.Tensor) -> torch.Tensor:
    r"""Per-sample :math:`M w`: :math:`p\odot w - p\,(p\cdot w)` for CE, :math:`w` for MSE."""
    if p is None:
        return w
    return p * w - p * (p * w).sum(-1, keepdim=True)
