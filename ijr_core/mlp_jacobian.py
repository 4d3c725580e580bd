r"""Explicit logit-Jacobian products for plain MLPs, from one recorded forward pass.

For ``Sequential(Linear, σ, Linear, σ, …, Linear)`` with element-wise activations write
:math:`s_l = W_l a_l + b_l` (layer input :math:`a_l`, :math:`a_{l+1}=\sigma(s_l)`). The forward
pass keeps :math:`a_l` and :math:`\sigma'(s_l)`; then, without autograd,

* :math:`J^\top v` (per-sample directional derivative of the logits) is one forward-mode
  sweep, :math:`\sum_n J_n w_n` one backward sweep: together about two thirds of the autograd
  route, which back-propagates twice for the forward-mode product;
* the per-sample Gram :math:`J^\top J=\sum_l (a_l\cdot a_l + 1)\,B_lB_l^\top` comes from
  :math:`B_l=\partial z/\partial s_l\in\mathbb R^{K\times d_l}`, the K one-hot cotangents
  back-propagated all at once: :math:`B_L = I_K`, :math:`B_{l-1} = (B_l W_l)\odot
  \sigma'(s_{l-1})`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

ELEMENTWISE = (nn.Tanh, nn.ReLU, nn.GELU, nn.ELU, nn.Softplus, nn.Sigmoid, nn.SiLU,
               nn.LeakyReLU, nn.Identity)

# The Gram streams one layer's signals (K · N · width entries) at a time; beyond this many,
# callers split the samples into chunks.
SIGNAL_BUDGET = 2**26


def mlp_chain(model: nn.Module):
    """``(linears, activations)`` when the model is ``Sequential(Linear, act, Linear, ...,
    Linear)`` with element-wise activations (a leading ``Flatten`` allowed), else None."""
    if type(model) is not nn.Sequential:
        return None
    mods = list(model)
    if mods and type(mods[0]) is nn.Flatten and mods[0].start_dim == 1 and mods[0].end_dim == -1:
        mods = mods[1:]
    if not mods or len(mods) % 2 == 0:
        return None
    linears, acts = mods[0::2], mods[1::2]
    if any(type(m) is not nn.Linear for m in linears):
        return None
    if any(type(a) not in ELEMENTWISE or getattr(a, "inplace", False) for a in acts):
        return None
    return linears, acts


def signal_size(X: torch.Tensor, linears: list[nn.Linear]) -> int:
    """Entries of the largest layer's signals :math:`B_l` (K · N · width)."""
    K = linears[-1].out_features
    return K * X.shape[0] * max((lin.out_features for lin in linears[:-1]), default=0)


class MLPJacobian:
    r"""Recorded forward pass of an MLP chain on X, with the Jacobian products of the module
    docstring. ``z`` keeps its autograd graph when gradients are enabled at construction, so
    one forward serves both these products and the loss (and its Hessian)."""

    def __init__(self, X: torch.Tensor, linears: list[nn.Linear], acts: list[nn.Module]):
        self.linears, self.acts = linears, acts
        a = X.flatten(1)
        self.inputs: list[torch.Tensor] = []  # a_l, detached
        self.derivs: list[torch.Tensor] = []  # σ'(s_l) for the hidden layers
        for i, lin in enumerate(linears):
            self.inputs.append(a.detach())
            s = F.linear(a, lin.weight, lin.bias)
            if i == len(acts):
                break
            a = self._activate(acts[i], s)
        self.z = s

    def _activate(self, act: nn.Module, s: torch.Tensor) -> torch.Tensor:
        """σ(s), recording σ'(s); ``s`` keeps its graph when it has one."""
        with torch.enable_grad():
            s_in = s if s.requires_grad else s.detach().requires_grad_(True)
            out = act(s_in)
            (d,) = torch.autograd.grad(out, s_in, torch.ones_like(out), retain_graph=True)
        self.derivs.append(d.detach())
        return out if s.requires_grad else out.detach()

    def _backward_signals(self):
        r"""Yield :math:`(l, B_l)` for the hidden layers, last first, each (N, K, d_l)."""
        if len(self.linears) < 2:
            return
        with torch.no_grad():
            g = self.linears[-1].weight * self.derivs[-1][:, None, :]
            yield len(self.linears) - 2, g
            for i in range(len(self.linears) - 2, 0, -1):
                g = (g @ self.linears[i].weight) * self.derivs[i - 1][:, None, :]
                yield i - 1, g

    def gram(self) -> torch.Tensor:
        r"""Per-sample :math:`J^\top J`, (N, K, K), over the trainable parameters; the signals
        :math:`B_l` are formed one layer at a time and dropped."""
        K = self.z.shape[1]
        with torch.no_grad():
            gram = self._layer_scale(len(self.linears) - 1)[:, None, None] * torch.eye(
                K, device=self.z.device, dtype=self.z.dtype)
            for i, B in self._backward_signals():
                gram += (B @ B.transpose(1, 2)) * self._layer_scale(i)[:, None, None]
        return gram

    def _layer_scale(self, i: int) -> torch.Tensor:
        r""":math:`a_l\cdot a_l` (if the weight trains) + 1 (if the bias trains), (N,)."""
        lin, a = self.linears[i], self.inputs[i]
        scale = a.pow(2).sum(-1) if lin.weight.requires_grad else torch.zeros_like(a[:, 0])
        if lin.bias is not None and lin.bias.requires_grad:
            scale = scale + 1
        return scale

    def _split(self, v: torch.Tensor):
        """Views of a flat parameter vector per layer: (weight or None, bias or None)."""
        offset = 0
        for lin in self.linears:
            parts = []
            for p in (lin.weight, lin.bias):
                if p is None or not p.requires_grad:
                    parts.append(None)
                    continue
                parts.append(v[offset : offset + p.numel()].view_as(p))
                offset += p.numel()
            yield parts
        if offset != v.shape[0]:
            raise ValueError(f"v must have length {offset}, got {v.shape[0]}")

    def jvp(self, v: torch.Tensor) -> torch.Tensor:
        r"""Per-sample :math:`J_n^\top v`, (N, K), for a flat (P,) vector: forward mode,
        :math:`\dot s_l = V_l a_l + v_{b_l} + W_l \dot a_l`, :math:`\dot a_{l+1} =
        \sigma'(s_l)\odot\dot s_l`."""
        v = v.to(self.z.dtype)
        dot_a = None
        with torch.no_grad():
            for i, (lin, (vw, vb)) in enumerate(zip(self.linears, self._split(v), strict=True)):
                a = self.inputs[i]
                ds = F.linear(a, vw, vb) if vw is not None else None
                if dot_a is not None:
                    ds = (F.linear(dot_a, lin.weight) if ds is None
                          else torch.addmm(ds, dot_a, lin.weight.T))
                if ds is None:
                    ds = self.z.new_zeros(a.shape[0], lin.out_features)
                if vb is not None and vw is None:
                    ds = ds + vb
                dot_a = ds * self.derivs[i] if i < len(self.derivs) else ds
        return dot_a

    def vjp(self, w: torch.Tensor) -> torch.Tensor:
        r""":math:`\sum_n J_n w_n` for (N, K) ``w``, a flat (P,) vector: back-propagation,
        :math:`\delta_L = w`, :math:`\delta_{l-1} = (\delta_l W_l)\odot\sigma'(s_{l-1})`;
        layer l gets :math:`\delta_l^\top a_l` and :math:`\sum_n\delta_l`."""
        delta = w.to(self.z.dtype)
        parts = []
        with torch.no_grad():
            for i in range(len(self.linears) - 1, -1, -1):
                lin = self.linears[i]
                if lin.bias is not None and lin.bias.requires_grad:
                    parts.append(delta.sum(0))
                if lin.weight.requires_grad:
                    parts.append((delta.T @ self.inputs[i]).reshape(-1))
                if i > 0:
                    delta = (delta @ lin.weight) * self.derivs[i - 1]
        return torch.cat(parts[::-1]) if parts else delta.new_zeros(0)
