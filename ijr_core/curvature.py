r"""The curvature math of the paper (SCIENCE.md), exact, on any ``nn.Module``.

Notation: parameters :math:`\theta\in\mathbb R^P` (those with ``requires_grad``, in
``model.named_parameters()`` order), logits :math:`z=f(x;\theta)\in\mathbb R^K`,
:math:`p=\mathrm{softmax}(z)`, per-sample loss :math:`\ell`, :math:`\langle\cdot\rangle` the mean
over the data.

* :math:`J(x)=\nabla_\theta z\in\mathbb R^{P\times K}` (logit-weight Jacobian),
* :math:`M(x)=\nabla_z^2\ell`, equal to :math:`\mathrm{diag}(p)-pp^\top` for cross-entropy and
  :math:`I` for the squared loss :math:`\tfrac12\|z-e_y\|^2`,
* :math:`H=\langle\nabla_\theta^2\ell\rangle`, :math:`G=\langle JMJ^\top\rangle`,
* :math:`\lambda^*(x)=(J^\top u)^\top M(J^\top u)/\|J\|^2` for the unit top eigenvector
  :math:`u` of :math:`G`, so that :math:`\|G\|=\langle\lambda^*\|J\|^2\rangle` exactly.

Everything runs on the device and in the dtype of the model's parameters.

One concept per module, gathered here with the spectra (``sharpness``, ``gn_sharpness``,
``lambda_star``): :mod:`~ijr_core.params` (parameters, losses, logits),
:mod:`~ijr_core.softmax` (M and ‖M‖), :mod:`~ijr_core.grams` (per-sample Grams, by
:mod:`~ijr_core.mlp_jacobian`, :mod:`~ijr_core.op_gram` or ``vmap(jacrev)``),
:mod:`~ijr_core.graph` (H and G products on one forward pass), :mod:`~ijr_core.lanczos`.
"""

from __future__ import annotations

import torch
from torch import nn

from ijr_core.grams import (
    JacobianNorms,
    _gram_generic,
    jacobian_norms,
    logit_jacobian_gram,
    norms_from_gram,
)
from ijr_core.graph import (
    CurvatureGraph,
    _LogitLinearization,
    ggn_operator,
    hessian_operator,
    jtu_from_products,
)
from ijr_core.lanczos import top_eigenpairs
from ijr_core.params import (
    LOSSES,
    Matvec,
    NonFiniteError,
    _model_device_dtype,
    _prepare_inputs,
    loss_fn,
    num_parameters,
    params_to_vector,
    trainable_parameters,
    vector_to_params,
)
from ijr_core.softmax import m_norm, softmax_hessian

__all__ = [
    "LOSSES", "CurvatureGraph", "JacobianNorms", "Matvec", "NonFiniteError", "ggn_operator",
    "gn_sharpness", "hessian_operator", "jacobian_norms", "jtu_from_products", "lambda_star",
    "logit_jacobian_gram", "loss_fn", "m_norm", "norms_from_gram", "num_parameters",
    "params_to_vector", "sharpness", "softmax_hessian", "top_eigenpairs",
    "trainable_parameters", "vector_to_params", "_LogitLinearization", "_gram_generic",
    "_model_device_dtype", "_prepare_inputs",
]


def sharpness(model: nn.Module, X, y, k: int = 1, loss: str = "ce", tol: float = 1e-3,
              v0=None, return_vectors: bool = False):
    r"""Top-``k`` eigenvalues of the loss Hessian :math:`H`, descending (k,): ``k=1`` is
    :math:`\|H\|`, the sharpness. With ``return_vectors`` also the (P, k) eigenvectors."""
    op = hessian_operator(model, X, y, loss=loss)
    return _top(op, model, k, tol, v0, return_vectors)


def gn_sharpness(model: nn.Module, X, y, k: int = 1, loss: str = "ce", tol: float = 1e-3,
                 v0=None, return_vectors: bool = False):
    r"""Top-``k`` eigenvalues of the Gauss–Newton matrix :math:`G`, descending (k,)."""
    op = ggn_operator(model, X, y, loss=loss)
    return _top(op, model, k, tol, v0, return_vectors)


def _top(op, model, k, tol, v0, return_vectors):
    device, dtype = _model_device_dtype(model)
    values, vectors = top_eigenpairs(op, num_parameters(model), k=k, tol=tol, v0=v0,
                                     device=device, dtype=dtype)
    return (values, vectors) if return_vectors else values


def lambda_star(model: nn.Module, X, u: torch.Tensor, loss: str = "ce",
                gram: torch.Tensor | None = None,
                graph: CurvatureGraph | None = None,
                spectral_sq: torch.Tensor | None = None,
                jtu: torch.Tensor | None = None) -> torch.Tensor:
    r"""Per-sample :math:`\lambda^*(x)=(J^\top u)^\top M (J^\top u)/\|J\|^2` for a unit (P,)
    vector ``u`` (the top eigenvector of :math:`G`); (N,). Zero where :math:`\|J\|=0`.

    :math:`0\le\lambda^*\le\|M\|` since :math:`\|J^\top u\|\le\|J\|`, and
    :math:`\langle\lambda^*\|J\|^2\rangle=u^\top Gu`. Pass ``gram`` to reuse a Jacobian Gram
    and ``graph`` (a :class:`CurvatureGraph` on the same X and loss) to reuse its forward pass,
    or ``spectral_sq`` (the (N,) :math:`\|J\|^2`) to skip the Gram altogether, and ``jtu``
    (the (N, K) :math:`J_n^\top u` of the unit u, e.g. from :func:`jtu_from_products`) to skip
    the forward-mode pass.
    """
    u = torch.as_tensor(u)
    P = num_parameters(model)
    if u.shape != (P,):
        raise ValueError(f"u must be a flat vector of shape ({P},), got {tuple(u.shape)}")
    if graph is None:
        graph = CurvatureGraph(model, X, loss=loss)
    elif graph.loss != loss:
        raise ValueError(f"graph was built for loss {graph.loss!r}, not {loss!r}")
    if jtu is None:
        jtu = graph.jtu(u / torch.linalg.vector_norm(u))
    elif jtu.shape != graph.z.shape:
        raise ValueError(f"jtu must have shape {tuple(graph.z.shape)}, got {tuple(jtu.shape)}")
    quad = graph.m_form(jtu)
    if spectral_sq is not None:
        spec = torch.as_tensor(spectral_sq).to(quad)
        if spec.shape != quad.shape:
            raise ValueError(f"spectral_sq must have shape {tuple(quad.shape)}, "
                             f"got {tuple(spec.shape)}")
    else:
        if gram is None:
            gram = graph.gram()
        spec = norms_from_gram(gram.to(quad.dtype)).spectral_sq
    return torch.where(spec > 0, quad / spec.clamp_min(torch.finfo(quad.dtype).tiny),
                       torch.zeros_like(quad))
