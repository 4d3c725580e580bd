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
"""

from __future__ import annotations

import copy
import functools
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import scipy.linalg
import torch
import torch.nn.functional as F
from torch import nn

from ijr_core.mlp_jacobian import MLPJacobian, mlp_chain
from ijr_core.model_view import ModelError, check_inputs, frozen_statistics_view, private_copy
from ijr_core.op_gram import op_gram

LOSSES = ("ce", "mse")

Matvec = Callable[[torch.Tensor], torch.Tensor]


# --------------------------------------------------------------------------- losses, params


def loss_fn(name: str = "ce") -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    r"""Mean loss over the batch: ``"ce"`` cross-entropy, ``"mse"`` :math:`\tfrac12\|z-e_y\|^2`."""
    if name == "ce":
        return F.cross_entropy
    if name == "mse":
        return _mse_loss
    raise ValueError(f"unknown loss {name!r}; known losses: {', '.join(LOSSES)}")


def _mse_loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    target = F.one_hot(y, logits.shape[-1]).to(logits.dtype)
    return 0.5 * (logits - target).pow(2).sum(-1).mean()


def trainable_parameters(model: nn.Module) -> list[tuple[str, nn.Parameter]]:
    """``(name, parameter)`` pairs with ``requires_grad``, in ``named_parameters`` order."""
    params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    if not params:
        raise ValueError("the model has no trainable parameters (none with requires_grad=True)")
    return params


def num_parameters(model: nn.Module) -> int:
    """P, the number of trainable scalars."""
    return sum(p.numel() for _, p in trainable_parameters(model))


def params_to_vector(tensors) -> torch.Tensor:
    """Concatenate tensors (e.g. gradients) into one flat vector."""
    return torch.cat([t.reshape(-1) for t in tensors])


def vector_to_params(vec: torch.Tensor, model: nn.Module) -> list[torch.Tensor]:
    """Split a flat (P,) vector into views shaped like the trainable parameters."""
    params = [p for _, p in trainable_parameters(model)]
    total = sum(p.numel() for p in params)
    if vec.shape != (total,):
        raise ValueError(f"expected a flat vector of shape ({total},), got {tuple(vec.shape)}")
    out, start = [], 0
    for p in params:
        out.append(vec[start : start + p.numel()].view_as(p))
        start += p.numel()
    return out


def _model_device_dtype(model: nn.Module) -> tuple[torch.device, torch.dtype]:
    p = trainable_parameters(model)[0][1]
    return p.device, p.dtype


def _prepare_inputs(model: nn.Module, X, y=None):
    """Move X (and y) to the model's device/dtype and validate shapes."""
    device, dtype = _model_device_dtype(model)
    X = check_inputs(X)
    X = X.to(device=device, dtype=dtype) if X.is_floating_point() else X.to(device)
    if y is not None:
        y = torch.as_tensor(y).to(device)
        if y.ndim != 1 or y.shape[0] != X.shape[0]:
            raise ValueError(
                f"y must have shape ({X.shape[0]},) to match X of shape {tuple(X.shape)}, "
                f"got {tuple(y.shape)}"
            )
        if y.is_floating_point():
            raise ValueError("y must hold integer class labels, got a floating-point tensor")
        y = y.long()
    return X, y


class NonFiniteError(ValueError):
    """The model's outputs (or a curvature product) are NaN or infinite: a diverged run."""


def _check_logits(z: torch.Tensor, y: torch.Tensor | None = None) -> None:
    if not isinstance(z, torch.Tensor):
        raise ModelError(f"the model must return one tensor of logits (N, K), got "
                         f"{type(z).__name__}")
    if z.ndim != 2:
        raise ValueError(f"the model must return logits of shape (N, K), got {tuple(z.shape)}")
    if z.shape[1] < 2:
        raise ValueError(f"need K >= 2 classes, the model returns K = {z.shape[1]}")
    if not torch.isfinite(z).all():
        raise NonFiniteError("the model produced non-finite logits (NaN or inf) on these inputs")
    if y is not None and y.numel() and (y.min() < 0 or y.max() >= z.shape[1]):
        raise ValueError(
            f"labels must lie in [0, {z.shape[1] - 1}], got range [{int(y.min())}, {int(y.max())}]"
        )


def _logits(model: nn.Module, X: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
    z = model(X)
    _check_logits(z, y)
    return z


# --------------------------------------------------------------------------- M and its norm


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


# --------------------------------------------------------------------------- Jacobian Grams


@dataclass(frozen=True)
class JacobianNorms:
    r"""Per-sample squared Jacobian norms: ``spectral_sq`` :math:`=\lambda_{\max}(J^\top J)`,
    ``frobenius_sq`` :math:`=\mathrm{tr}(J^\top J)`, both (N,)."""

    spectral_sq: torch.Tensor
    frobenius_sq: torch.Tensor


def jacobian_norms(model: nn.Module, X, gram: torch.Tensor | None = None) -> JacobianNorms:
    """Spectral and Frobenius squared norms of each sample's logit Jacobian.

    Pass ``gram`` (from :func:`logit_jacobian_gram`) to reuse it instead of recomputing.
    """
    if gram is None:
        gram = logit_jacobian_gram(model, X)
    return norms_from_gram(gram)


def norms_from_gram(gram: torch.Tensor) -> JacobianNorms:
    """Spectral and Frobenius squared norms from (N, K, K) Grams."""
    spectral = torch.linalg.eigvalsh(gram)[..., -1].clamp_min(0)
    frobenius = torch.diagonal(gram, dim1=-2, dim2=-1).sum(-1)
    return JacobianNorms(spectral_sq=spectral, frobenius_sq=frobenius)


def logit_jacobian_gram(
    model: nn.Module, X, chunk_size: int | None = None, method: str = "auto"
) -> torch.Tensor:
    r"""Per-sample :math:`J^\top J\in\mathbb R^{K\times K}` over all trainable parameters, exact.

    Three routes, the first that applies: a plain MLP by explicit products
    (:class:`~ijr_core.mlp_jacobian.MLPJacobian`); any model whose parameters enter only
    linear / matmul / convolution / embedding / bias / scale / normalisation operations by
    the per-operation closed forms of :mod:`ijr_core.op_gram`, which never form per-sample
    gradients of weights (for :math:`W` with input :math:`a` and back-propagated output
    gradients :math:`g_k=\partial z_k/\partial(Wa)`,

    .. math:: (J^\top J)_{kl} \mathrel{+}= \textstyle\sum_{t,s}(g_{kt}\cdot g_{ls})
       (a_t\cdot a_s),

    summed over every use of the weight); anything else by ``torch.func.vmap(jacrev)``.
    ``method="generic"`` forces the last, ``"fast"`` refuses it. Computed in chunks of
    ``chunk_size`` samples (identical to one batch up to rounding).

    ``model`` is never changed: the work runs on a private copy (:mod:`ijr_core.model_view`).
    With batch normalisation in train mode the samples of X interact; each sample's Jacobian
    is then taken with the batch statistics of X held fixed (same outputs on X).
    """
    if method not in ("auto", "fast", "generic"):
        raise ValueError(f"method must be 'auto', 'fast' or 'generic', got {method!r}")
    X, _ = _prepare_inputs(model, X)
    model = frozen_statistics_view(private_copy(model), X)
    with torch.no_grad():
        K = _logits(model, X[:1]).shape[1]
    if chunk_size is None:  # the closed forms hold K copies of each layer's signals
        chunk_size = max(1, min(X.shape[0], int(2**26 // (K * 4096))))
    chain = None if method == "generic" else mlp_chain(model)
    parts = []
    for start in range(0, X.shape[0], chunk_size):
        Xc = X[start : start + chunk_size]
        gram = None
        if chain is not None and (Xc.ndim == 2 or type(model[0]) is nn.Flatten):
            mlp = MLPJacobian(Xc, *chain)
            _check_logits(mlp.z)
            gram = mlp.gram()
        elif method != "generic":
            gram = op_gram(model, Xc, K)
        if gram is None:
            if method == "fast":
                raise ValueError("the fast path does not apply to this model: a parameter "
                                 "enters an operation without a closed form (ijr_core.op_gram)")
            gram = _gram_generic(model, Xc, chunk_size)
        parts.append(gram)
    return torch.cat(parts)


def _gram_generic(model: nn.Module, X: torch.Tensor, chunk_size: int) -> torch.Tensor:
    """Reference path for any module: per-sample Jacobians by ``torch.func.vmap(jacrev)``, in
    chunks small enough for their (chunk, K, P) Jacobians.

    On a throwaway copy: ``functional_call`` does not restore the parameters of a module
    registered under two names (torch 2.13), so it must never run on a model that lives on."""
    model = copy.deepcopy(model)
    names = [n for n, _ in trainable_parameters(model)]
    params = {n: p.detach() for n, p in trainable_parameters(model)}
    buffers = {n: b for n, b in model.named_buffers()}
    frozen = {n: p for n, p in model.named_parameters() if not p.requires_grad}

    def logits_one(p, x):
        out = torch.func.functional_call(model, {**frozen, **buffers, **p}, (x.unsqueeze(0),))
        return out.squeeze(0)

    jacobians = torch.func.vmap(torch.func.jacrev(logits_one), in_dims=(None, 0))
    P = sum(p.numel() for p in params.values())
    size = max(1, min(chunk_size, int(2**26 // max(P * _n_logits(model, X), 1))))
    parts = []
    for start in range(0, X.shape[0], size):
        Xc = X[start : start + size]
        jac = jacobians(params, Xc)
        J = torch.cat([jac[n].reshape(Xc.shape[0], jac[n].shape[1], -1) for n in names], dim=-1)
        parts.append(J @ J.transpose(1, 2))
    return torch.cat(parts)


def _n_logits(model: nn.Module, X: torch.Tensor) -> int:
    with torch.no_grad():
        return int(model(X[:1]).shape[1])


# --------------------------------------------------------------------------- H and G operators


class CurvatureGraph:
    r"""One forward pass on (X, y), reused by every curvature product taken there.

    For a plain MLP (:func:`~ijr_core.mlp_jacobian.mlp_chain`) the forward pass is recorded
    without autograd and every product is explicit (:class:`~ijr_core.mlp_jacobian.MLPJacobian`:
    back-propagation for the gradient and :math:`\sum_n J_n w_n`, forward mode for
    :math:`J^\top v`, Pearlmutter's R-operator for :math:`Hv`). Any other model keeps the
    logits :math:`z` with their autograd graph and builds, lazily and once each, the
    differentiable loss gradient (for :math:`Hv`, one double-backward per product) and the
    linearisation of the logits (for :math:`Gv = \frac1N\sum_n J_n M_n J_n^\top v` and
    :math:`J^\top u`). A probe shares one graph between ‖H‖, ‖G‖, λ*, the gradient norm
    and the per-sample outputs instead of running a forward pass for each.
    """

    def __init__(self, model: nn.Module, X, y=None, loss: str = "ce"):
        model = private_copy(model)  # forward passes may update buffers: never the user's
        X, y = _prepare_inputs(model, X, y)
        fn = loss_fn(loss)
        self.model, self.loss, self.n, self.X, self.y = model, loss, X.shape[0], X, y
        self.params = [p for _, p in trainable_parameters(model)]
        chain = mlp_chain(model)
        self._mlp: MLPJacobian | None = None
        if chain is not None and (X.ndim == 2 or type(model[0]) is nn.Flatten):
            self._mlp = MLPJacobian(X, *chain)
            self.z = self._mlp.z
            _check_logits(self.z, y)
        else:
            with torch.enable_grad():
                self.z = _logits(model, X, y)
        with torch.enable_grad():
            # the loss needs labels; G, J and λ* do not
            self.value = fn(self.z, y) if y is not None else None
        self.p = torch.softmax(self.z.detach(), dim=-1)
        self._m = self.p if loss == "ce" else None
        self._grads: list[torch.Tensor] | None = None
        self._grad_vector: torch.Tensor | None = None
        self._lin: _LogitLinearization | None = None

    @property
    def grads(self) -> list[torch.Tensor]:
        """Loss gradient per parameter (differentiable for Hessian products, except on the
        explicit MLP path, which needs no autograd graph)."""
        if self._grads is None:
            if self.value is None:
                raise ValueError("the loss gradient and H need labels y")
            if self._mlp is not None:
                self._grads = vector_to_params(self.gradient(), self.model)
                return self._grads
            with torch.enable_grad():
                g = torch.autograd.grad(self.value, self.params, create_graph=True,
                                        allow_unused=True)
            self._grads = [torch.zeros_like(p) if t is None else t
                           for t, p in zip(g, self.params, strict=True)]
        return self._grads

    def gradient(self) -> torch.Tensor:
        r""":math:`\nabla_\theta\langle\ell\rangle`, a flat (P,) vector."""
        if self._mlp is None:
            return params_to_vector(self.grads).detach()
        if self._grad_vector is None:
            if self.y is None:
                raise ValueError("the loss gradient and H need labels y")
            target = F.one_hot(self.y, self.z.shape[1]).to(self.z.dtype)
            residual = (self.p if self.loss == "ce" else self.z) - target
            self._grad_vector = self._mlp.loss_gradient(residual / self.n)
        return self._grad_vector

    def hvp(self, v: torch.Tensor) -> torch.Tensor:
        """:math:`Hv` for a flat (P,) vector."""
        if self._mlp is not None:
            self.gradient()
            return self._mlp.hvp(v, lambda dz: self.m_times(dz) / self.n)
        used = [(g, t) for g, t in zip(self.grads, vector_to_params(v.to(self.z.dtype),
                                                                  self.model), strict=True)
                if g.requires_grad]
        if not used:  # a loss with no curvature in any parameter (e.g. an affine model, MSE)
            return torch.zeros_like(v)
        hv = torch.autograd.grad([g for g, _ in used], self.params,
                                 grad_outputs=[t for _, t in used], retain_graph=True,
                                 allow_unused=True)
        return params_to_vector([torch.zeros_like(p) if h is None else h
                                 for h, p in zip(hv, self.params, strict=True)]).detach()

    @property
    def linearization(self) -> _LogitLinearization | MLPJacobian:
        """Products with the logit Jacobian: ``jvp`` and ``vjp``."""
        if self._mlp is not None:
            return self._mlp
        if self._lin is None:
            self._lin = _LogitLinearization(self.model, self.z, self.params)
        return self._lin

    def gram(self) -> torch.Tensor:
        r"""Per-sample :math:`J^\top J` on the graph's inputs, (N, K, K)."""
        if self._mlp is not None:
            return self._mlp.gram()
        return logit_jacobian_gram(self.model, self.X)

    def m_times(self, w: torch.Tensor) -> torch.Tensor:
        """Per-sample :math:`M_n w_n` for (N, K) ``w``, in closed form."""
        return _apply_m(self._m, w)

    def gvp(self, v: torch.Tensor, log: list | None = None) -> torch.Tensor:
        """:math:`Gv` for a flat (P,) vector, with :math:`M` in closed form; appends
        ``(v, J^T v)`` to ``log`` when given (see :func:`jtu_from_products`)."""
        lin = self.linearization
        jv = lin.jvp(v)
        if log is not None:
            log.append((v, jv))
        return lin.vjp(self.m_times(jv) / self.n)

    def m_form(self, w: torch.Tensor) -> torch.Tensor:
        """Per-sample :math:`w_n^\top M_n w_n` for (N, K) ``w``, (N,)."""
        return (w * self.m_times(w)).sum(-1)

    def g_quadratic(self, v: torch.Tensor) -> float:
        r""":math:`v^\top Gv=\frac1N\sum_n (J_n^\top v)^\top M_n (J_n^\top v)`: one
        forward-mode pass, no back-propagation (about half of :meth:`gvp`)."""
        return float(self.m_form(self.linearization.jvp(v)).sum()) / self.n

    def jtu(self, u: torch.Tensor) -> torch.Tensor:
        r"""Per-sample :math:`J_n^\top u`, (N, K)."""
        return self.linearization.jvp(u)


def jtu_from_products(products: list[tuple[torch.Tensor, torch.Tensor]],
                      u: torch.Tensor) -> torch.Tensor | None:
    r"""Per-sample :math:`J_n^\top u` from the pairs :math:`(q_i, J^\top q_i)` that one Lanczos
    run on G logged (:meth:`CurvatureGraph.gvp`): its vectors :math:`q_i` are orthonormal and
    its Ritz vector u lies in their span, so :math:`u=\sum_i c_i q_i` with :math:`c_i=q_i\cdot
    u` and :math:`J^\top u=\sum_i c_i J^\top q_i` by linearity, with no pass through the
    network. None when the :math:`q_i` do not rebuild u to 1e-4 (another vector in the log)."""
    if not products:
        return None
    Q = torch.stack([q for q, _ in products])
    c = Q @ u.to(Q.dtype)
    if float(torch.linalg.vector_norm(Q.T @ c - u)) > 1e-4 * float(torch.linalg.vector_norm(u)):
        return None
    return torch.einsum("i,ink->nk", c, torch.stack([jv for _, jv in products]))


def hessian_operator(model: nn.Module, X, y, loss: str = "ce") -> Matvec:
    r"""Matvec :math:`v\mapsto Hv` for the mean loss on (X, y); flat vectors of length P.

    One forward pass and one differentiable backward pass are built here and reused by every
    product (each product is one double-backward).
    """
    return CurvatureGraph(model, X, y, loss=loss).hvp


class _LogitLinearization:
    r"""Reusable products with the logit Jacobian on fixed inputs: :math:`J^\top v` (N, K) and
    :math:`\sum_n J_n w_n` (P,), from the retained graph of the logits ``z`` (double-backward
    trick: the vjp with a dummy cotangent is linear in it, so differentiating it again in the
    dummy gives the jvp)."""

    def __init__(self, model: nn.Module, z: torch.Tensor, params: list[torch.Tensor]):
        self.model, self.z, self.params = model, z, params
        with torch.enable_grad():
            self._dummy = torch.zeros_like(z, requires_grad=True)
            vjp = torch.autograd.grad(z, params, grad_outputs=self._dummy, create_graph=True,
                                      allow_unused=True)
        self._vjp = [v if v is not None else torch.zeros_like(p)
                     for v, p in zip(vjp, params, strict=True)]

    def jvp(self, v: torch.Tensor) -> torch.Tensor:
        r"""Per-sample directional derivatives :math:`J_n^\top v`, shape (N, K)."""
        vs = vector_to_params(v.to(self.z.dtype), self.model)
        used = [(g, t) for g, t in zip(self._vjp, vs, strict=True) if g.requires_grad]
        (out,) = torch.autograd.grad([g for g, _ in used], self._dummy,
                                     grad_outputs=[t for _, t in used], retain_graph=True)
        return out.detach()

    def vjp(self, w: torch.Tensor) -> torch.Tensor:
        r""":math:`\sum_n J_n w_n`, a flat (P,) vector."""
        g = torch.autograd.grad(self.z, self.params, grad_outputs=w, retain_graph=True,
                                allow_unused=True)
        return params_to_vector([torch.zeros_like(p) if t is None else t
                                 for t, p in zip(g, self.params, strict=True)]).detach()


def ggn_operator(model: nn.Module, X, y, loss: str = "ce") -> Matvec:
    r"""Matvec :math:`v\mapsto Gv=\frac1N\sum_n J_n M_n J_n^\top v`, with :math:`M_n` in closed
    form (:math:`p\odot w-p(p\cdot w)` for CE, identity for MSE). ``y`` only validates shapes:
    :math:`G` does not depend on the labels."""
    return CurvatureGraph(model, X, y, loss=loss).gvp


# --------------------------------------------------------------------------- Lanczos


def top_eigenpairs(
    matvec: Matvec,
    dim: int,
    k: int = 1,
    tol: float = 1e-3,
    v0: torch.Tensor | None = None,
    return_residuals: bool = False,
    max_iter: int | None = None,
    device=None,
    dtype: torch.dtype | None = None,
    seed: int = 0,
    n_ritz: int = 0,
    min_iter: int = 0,
):
    r"""Top-``k`` (largest algebraic) eigenpairs of a symmetric operator by Lanczos.

    Full re-orthogonalisation. ``tol`` is the relative accuracy wanted of the eigenvalues: it
    stops when every wanted Ritz pair :math:`(\theta, v)` has an error estimate
    :math:`\min(r, r^2/\delta) \le \mathrm{tol}\,|\theta|` (Kato–Temple, :math:`\delta` the gap
    to the next Ritz value, trusted from k + 5 iterations on) and residual
    :math:`r = \|Av-\theta v\| = |\beta_m s_m| \le 3\,\mathrm{tol}\,|\theta|`. The residuals
    (returned on request) bound the error rigorously: some eigenvalue lies within :math:`r` of
    :math:`\theta` (not necessarily the top one: a warm start nearly orthogonal to the top
    eigenvector can converge to the next one first).
    ``v0`` (a (dim,) or (dim, j) tensor, e.g. the previous call's vectors) warm-starts the
    iteration. ``min_iter`` iterations are always taken (capped at ``dim``): a guard for cold
    starts, where a random vector can hold so little of the top eigenvector that a few
    iterations converge to the next one with a small residual. Runs on ``v0``'s device/dtype
    (or ``device``/``dtype``).

    Without ``dtype`` and ``v0`` it runs in the operator's own dtype (float64 or float32, from
    one product with a unit vector).

    Returns ``(values (k,) descending, vectors (dim, k))`` and, with ``return_residuals``,
    the residual norms (k,) as a third element; with ``n_ritz`` > 0 the top ``n_ritz`` Ritz
    vectors (dim, ≤ n_ritz), converged or not, come last: a warm start that still holds the
    directions just below the top, so that the next call sees them if they overtake it.
    """
    dim, k = int(dim), int(k)
    if dim < 1:
        raise ValueError(f"dim must be >= 1, got {dim}")
    if not 1 <= k <= dim:
        raise ValueError(f"k must lie in [1, dim={dim}], got k={k}")
    if not 0 < tol < 1:
        raise ValueError(f"tol must lie in (0, 1), got {tol}")
    if dtype is None and v0 is None:
        dtype = _operator_dtype(matvec, dim, device)
    q = _start_vector(dim, v0, device, dtype, seed)
    max_iter = min(dim, max_iter if max_iter is not None else max(300, 4 * k))
    # The basis grows by doubling: most calls stop after a few iterations, and zeroing a
    # (max_iter, dim) block up front cost more than the arithmetic of a short run.
    Q = torch.empty(min(max_iter, 2 * k + 14), dim, device=q.device, dtype=q.dtype)
    alphas: list[float] = []
    betas: list[float] = []
    Q[0] = q
    restarted_at = 0
    for j in range(max_iter):
        w = matvec(Q[j]).to(q.dtype)
        if w.shape != (dim,):
            raise ValueError(f"the operator must return ({dim},) vectors, got {tuple(w.shape)}")
        alphas.append(float(torch.dot(Q[j], w)))
        basis = Q[: j + 1]
        for _ in range(2):  # twice is enough (Kahan–Parlett)
            w = torch.addmv(w, basis.T, basis @ w, alpha=-1)
        beta = float(torch.linalg.vector_norm(w))
        # NaN or inf anywhere in the product reaches α or β (cheaper than scanning w).
        if not math.isfinite(alphas[-1] + beta):
            raise NonFiniteError(f"the operator must return finite ({dim},) vectors")
        m = j + 1
        alpha_scale = max(abs(a) for a in alphas)
        breakdown = beta <= 1e-10 * alpha_scale + 1e-30
        # Checked every second iteration: an odd-iteration check stopped early on an
        # underestimated gap (measured at the edge of stability).
        if m >= k and (m == max_iter or breakdown or m % 2 == 0 or m == k):
            theta, S = _tridiag_eigh(alphas, betas)
            top = slice(m - k, m)
            res = np.abs(beta * S[-1, top])
            scale = np.maximum(np.abs(theta[top]), 1e-12)
            settled = m - restarted_at >= 2 * k + 2 or restarted_at == 0
            # A random restart vector (orthogonal to the invariant subspace found) that breaks
            # down at once is an eigenvector: then the whole complement is one eigenspace, its
            # eigenvalue that vector's α (already in T), and the Ritz values are the spectrum.
            # Measured: a saturated network (η = 1e6) has H = G = 0, and each probe ran all
            # 300 iterations (5 s) before this stop.
            # T holds one copy of that eigenvalue per restart, so stop only once the k-th
            # Ritz value is at least that eigenvalue (more copies would not enter the top k).
            null_rest = (breakdown and restarted_at > 0 and m - restarted_at == 1
                         and theta[m - k] >= alphas[-1] - 1e-10 * alpha_scale)
            converged = (settled and not breakdown and m >= min(min_iter, dim)
                         and bool((_ritz_error(theta, res, k) <= tol * scale).all())
                         and bool((res <= _RESIDUAL_CAP * tol * scale).all()))
            if m == max_iter or null_rest or converged:
                break
        if breakdown:
            # Invariant subspace found (repeated eigenvalues, low rank): continue from a
            # random direction orthogonal to it so that missing eigenvalues are still found.
            w = _start_vector(dim, None, q.device, q.dtype, seed + m)
            for _ in range(2):
                w = w - basis.T @ (basis @ w)
            w, beta = w / torch.linalg.vector_norm(w), 0.0
            restarted_at = m
        else:
            w = w / beta
        betas.append(beta)
        if j + 1 == Q.shape[0]:
            Q = torch.cat([Q, torch.empty_like(Q[: min(Q.shape[0], max_iter - Q.shape[0])])])
        Q[j + 1] = w
    if m < k:  # unreachable: max_iter >= k
        raise RuntimeError("Lanczos stopped before k iterations")
    def to_torch(a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.array(a, dtype=np.float64, order="C")).to(q.device, q.dtype)

    def combine(coeffs: np.ndarray) -> torch.Tensor:  # Q^T c as (c^T Q)^T: faster, and
        # each column (one vector) comes out contiguous
        return (to_torch(coeffs).T @ Q[:m]).T

    vectors = combine(S[:, top][:, ::-1])
    vectors = vectors / torch.linalg.vector_norm(vectors, dim=0, keepdim=True)
    values = to_torch(theta[top][::-1])
    out = (values, vectors) + ((to_torch(res[::-1]),) if return_residuals else ())
    if n_ritz > 0:
        r = min(int(n_ritz), m)
        ritz = combine(S[:, m - r :][:, ::-1])
        out = out + (ritz / torch.linalg.vector_norm(ritz, dim=0, keepdim=True),)
    return out


def _operator_dtype(matvec: Matvec, dim: int, device) -> torch.dtype:
    """The floating dtype an operator works in, from one product with a float64 unit vector
    (float32 when it only takes float32 vectors)."""
    e = torch.zeros(dim, dtype=torch.float64, device=device)
    e[0] = 1.0
    try:
        out = torch.as_tensor(matvec(e))
    except (RuntimeError, TypeError):
        return torch.float32
    return out.dtype if out.dtype in (torch.float64, torch.float32) else torch.float32


@functools.lru_cache(maxsize=8)
def _seeded_normal(dim: int, seed: int) -> torch.Tensor:
    """A fixed standard normal (dim,) float64 CPU vector per seed (read only; drawing it cost
    half a millisecond per Lanczos call at 26k parameters, the same vector every time)."""
    gen = torch.Generator(device="cpu").manual_seed(seed)
    return torch.randn(dim, generator=gen, dtype=torch.float64)


def _start_vector(dim, v0, device, dtype, seed) -> torch.Tensor:
    if v0 is not None:
        v0 = torch.as_tensor(v0)
        if v0.shape[0] != dim or v0.ndim > 2:
            raise ValueError(f"v0 must have shape ({dim},) or ({dim}, j), got {tuple(v0.shape)}")
        if not torch.isfinite(v0).all():
            raise ValueError("v0 must be finite (it holds NaN or inf)")
        device, dtype = v0.device, v0.dtype if dtype is None else dtype
    dtype = dtype or torch.float32
    q = _seeded_normal(dim, seed).to(device=device, dtype=dtype)
    if v0 is not None:
        v = v0.to(dtype).reshape(dim, -1)
        v = v / torch.linalg.vector_norm(v, dim=0, keepdim=True).clamp_min(1e-30)
        # A little noise keeps every direction reachable (a warm start can be orthogonal to
        # a new top eigenvector after the spectrum reorders).
        q = v.sum(1) + 1e-2 * q / math.sqrt(dim)
    return q / torch.linalg.vector_norm(q)


# Ritz values of a short Lanczos run overestimate the spectral gap (a Ritz value bounds its
# eigenvalue from below), so the gap is trusted only after this many iterations beyond k, and
# the residual must be small as well. Measured along training runs
# (bench/check_probe_accuracy.py, 143 probes): with a residual cap of √tol·|θ|, errors of 2–5 %
# passed a 0.1 % tolerance where the top eigenvalues cluster or swap places; with 3·tol·|θ|
# the largest error was 5e-5.
_TRUST_GAP_AFTER = 5
_RESIDUAL_CAP = 3.0


def _ritz_error(theta: np.ndarray, res: np.ndarray, k: int) -> np.ndarray:
    r"""Error estimate of the top-k Ritz values: :math:`\min(r, r^2/\delta)` (Kato–Temple),
    :math:`r` the residual and :math:`\delta` the gap to the nearest other Ritz value; just
    :math:`r` (a rigorous bound) while the Ritz values are too few to estimate the gap."""
    m = theta.shape[0]
    if m < k + _TRUST_GAP_AFTER:  # too few Ritz values to estimate the gap: residual only
        return res
    top = theta[m - k :]
    below = theta[m - k - 1 : m - 1] if m > k else np.concatenate([[-math.inf],
                                                                     theta[m - k : m - 1]])
    above = np.concatenate([theta[m - k + 1 :], [math.inf]])
    gap = np.maximum(np.minimum(top - below, above - top), 1e-300)
    return np.minimum(res, res**2 / gap)


def _tridiag_eigh(alphas, betas) -> tuple[np.ndarray, np.ndarray]:
    """Eigenpairs (ascending) of the Lanczos tridiagonal, in float64 NumPy: a few
    microseconds, where the same in torch cost a quarter of a millisecond per check."""
    return scipy.linalg.eigh_tridiagonal(np.asarray(alphas, dtype=np.float64),
                                         np.asarray(betas, dtype=np.float64))


# --------------------------------------------------------------------------- sharpness, λ*


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
