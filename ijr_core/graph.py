r"""Products with H and G on one forward pass: :class:`CurvatureGraph`, shared by every
product a probe takes, and the operators built on it."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ijr_core.grams import logit_jacobian_gram
from ijr_core.mlp_jacobian import MLPJacobian, mlp_chain
from ijr_core.model_view import private_copy
from ijr_core.params import (
    Matvec,
    _check_logits,
    _logits,
    _prepare_inputs,
    loss_fn,
    params_to_vector,
    trainable_parameters,
    vector_to_params,
)
from ijr_core.softmax import _apply_m


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
