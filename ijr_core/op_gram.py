r"""Per-sample Jacobian Grams of arbitrary modules from the operations that use each parameter.

The per-sample Gram :math:`J_n^\top J_n` (K × K) is a sum over trainable parameters of
:math:`\langle\partial_\theta z_{nk}, \partial_\theta z_{nl}\rangle`. Forming every per-sample
gradient (``vmap(jacrev)``) costs N·K·P memory and time. Most parameters enter a network
through a few operations whose per-sample gradients have a closed form in the operation's
input :math:`a` and the gradient :math:`g_k=\partial z_k/\partial(\text{output})`:

* ``F.linear(a, W, b)``, ``a @ W`` (``W`` or ``W.t()``/``W.T``): weight gradient
  :math:`\sum_t g_{kt}a_t^\top`, so its Gram is :math:`\sum_{t,s}(g_{kt}\cdot g_{ls})
  (a_t\cdot a_s)` without forming it (:func:`_bilinear_gram`);
* ``conv1d``/``conv2d`` (one group, zero or ``"same"`` padding): the same on unfolded
  patches;
* ``F.embedding``: :math:`\sum_{t,s}[i_t=i_s]\,g_{kt}\cdot g_{ls}` written out per row;
* ``x + b``, ``x * s``, ``layer_norm``/``rms_norm``/``group_norm``/eval ``batch_norm`` affine
  parameters: the gradient summed over the positions the parameter is broadcast over
  (normalised input :math:`\hat a` recomputed for the norms), a short per-sample vector.

Every use of a parameter is recorded (a ``TorchFunctionMode`` sees each operation of one
forward pass, at the level the module calls it, before any hook), so a module called twice, a
raw weight used twice and weights tied between modules add their uses up exactly. One
forward pass records the uses, K backward passes through it give the output gradients.
Guards make the result exact or absent (``None``: the caller falls back to ``vmap(jacrev)``):

* a parameter that enters any other operation, or one returning several tensors;
* a sample whose logits alone differ from its row of the batch's (samples interact, e.g.
  ``if x.sum() > 0`` on the whole batch; a per-sample Jacobian is that of each sample alone);
* an output changed in place afterwards, even when the forward pass is run again with copies
  of the recorded outputs handed to the model (how ``nn.ReLU(inplace=True)`` and
  ``out += identity`` are handled);
* row n of a recorded output that reaches other samples' logits: one more backward pass with
  other random weights :math:`v_{nk}` must give :math:`\sum_k (v_{nk}/w_{nk})\,g_k[n]` (a
  positional table looked up with ``arange(T)``, T = N, or logits mixed across the batch
  fail here and nowhere else);
* per-sample gradients that, summed over samples and classes with random weights, differ
  from autograd's gradient of :math:`\sum_{n,k}w_{nk}z_{nk}` for some parameter (a use the
  recorder missed shows up there).
"""

from __future__ import annotations

import torch
from torch import nn

from ijr_core.op_record import (
    _pieces,
    _Recorder,
    _Unsupported,
    _Uses,
)

# Relative mismatch allowed between autograd's summed gradient and the one rebuilt from the
# recorded uses (float32 sums over N·K·T terms stay near 1e-6).
_CHECK_RTOL = 1e-4


def _bilinear_gram(patches: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    r"""Gram of the per-sample weight gradients :math:`\sum_t g_{kt} a_t^\top`, by the cheaper of
    :math:`\sum_{t,s}(g_{kt}\cdot g_{ls})(a_t\cdot a_s)` and forming the gradients."""
    K, N, T, out = g.shape
    d = patches.shape[-1]
    if T * T * (K * K + d + K * out) <= K * out * d * 2:
        aa = patches @ patches.transpose(1, 2)  # (N, T, T)
        gg = torch.einsum("knto,lnso->nklts", g, g)
        return (gg * aa[:, None, None]).sum((-1, -2))
    per_sample = torch.einsum("knto,ntd->nkod", g, patches).reshape(N, K, -1)
    return per_sample @ per_sample.transpose(1, 2)


def _gram_of(param: torch.Tensor, use: _Uses, K: int, N: int) -> torch.Tensor:
    """(N, K, K) Gram of one parameter's per-sample gradients, and checks nothing."""
    dense = [p[1] for p in use.explicit if p[0] == "dense"]
    embeds = [p for p in use.explicit if p[0] == "embedding"]
    orientations = {t for _, _, t in use.bilinear}
    if use.bilinear and not dense and not embeds and len(orientations) == 1:
        if len(use.bilinear) == 1:  # cat would copy the (K, N, T, out) gradients
            return _bilinear_gram(*use.bilinear[0][:2])
        a = torch.cat([a for a, _, _ in use.bilinear], dim=1)
        g = torch.cat([g for _, g, _ in use.bilinear], dim=2)
        return _bilinear_gram(a, g)
    if embeds and not dense and not use.bilinear:
        idx = torch.cat([e[1] for e in embeds], dim=1)
        g = torch.cat([e[2] for e in embeds], dim=2)
        same = (idx[:, :, None] == idx[:, None, :]).to(g.dtype)  # (N, T, T)
        gg = torch.einsum("kntd,lnsd->nklts", g, g)
        return (gg * same[:, None, None]).sum((-1, -2))
    per_sample = _explicit(param, use, K, N)
    return torch.einsum("knp,lnp->nkl", per_sample, per_sample)


def _explicit(param: torch.Tensor, use: _Uses, K: int, N: int) -> torch.Tensor:
    """(K, N, numel) per-sample gradients, formed."""
    out = torch.zeros(K, N, param.numel(), dtype=param.dtype, device=param.device)
    for a, g, transposed in use.bilinear:
        grad = torch.einsum("knto,ntd->knod", g, a)
        if transposed:
            grad = grad.transpose(2, 3)
        out += grad.reshape(K, N, -1)
    for piece in use.explicit:
        if piece[0] == "dense":
            out += piece[1]
            continue
        idx, g = piece[1], piece[2]  # (N, T), (K, N, T, d): rows idx[n, t] get g[:, n, t]
        rows = torch.zeros(K, N, param.shape[0], g.shape[-1], dtype=g.dtype, device=g.device)
        for n in range(N):
            rows[:, n].index_add_(1, idx[n], g[:, n])
        out += rows.reshape(K, N, -1)
    return out


def _summed(param: torch.Tensor, use: _Uses) -> torch.Tensor:
    """Σ over classes and samples of the per-sample gradient pieces, in the parameter's
    shape."""
    total = torch.zeros_like(param)
    for a, g, transposed in use.bilinear:
        grad = torch.einsum("knto,ntd->od", g, a)
        total += (grad.T if transposed else grad).reshape(param.shape)
    for piece in use.explicit:
        if piece[0] == "dense":
            total += piece[1].sum((0, 1)).reshape(param.shape)
        else:
            idx, g = piece[1], piece[2]
            total += torch.zeros_like(param).index_add_(
                0, idx.reshape(-1).repeat(g.shape[0]), g.reshape(-1, g.shape[-1]))
    return total


def op_gram(model: nn.Module, X: torch.Tensor, K: int | None = None) -> torch.Tensor | None:
    """(N, K, K) per-sample Grams (module docstring), or None when some use of a parameter
    has no closed form here. ``model`` must be a private copy; ``K`` the number of logits
    (found by a forward pass when not given). A model that changes a recorded output in
    place is run again with copies of the recorded outputs."""
    gram = _op_gram(model, X, K, shield=False)
    return _op_gram(model, X, K, shield=True) if gram is _CHANGED else gram


_CHANGED = object()  # a recorded output was changed in place


def _op_gram(model: nn.Module, X: torch.Tensor, K: int | None, shield: bool):
    params = [p for _, p in model.named_parameters() if p.requires_grad]
    if K is None:
        with torch.no_grad():
            K = model(X).shape[1]
    N = X.shape[0]
    recorder = _Recorder(params, shield)
    with torch.enable_grad(), recorder:
        z = model(X)
    if recorder.problem is not None or not recorder.records \
            or not _alone_as_in_batch(model, X, z):
        return None
    outputs = [rec[2] for rec in recorder.records]
    if any(o.shape[0] != N for o in outputs):
        return None  # an operation whose output is not one row per sample
    versions = [o._version for o in outputs]
    if not shield and any(v for v in versions):
        return _CHANGED
    # Pass k back-propagates w_kn e_k from sample n: random weights in [1, 2) (divided out of
    # the Gram) keep the check below from passing on sums that cancel, e.g. Σ_n x̂_n = 0
    # after batch statistics. One forward pass, K (+ 1) backward passes through it.
    weights = (1 + torch.rand(K, N, generator=torch.Generator().manual_seed(0),
                              dtype=torch.float64)).to(device=z.device, dtype=z.dtype)
    # One more cotangent, all classes at once with other weights v_kn: row n of an output
    # feeds sample n's logits only when its gradient is Σ_k (v_kn / w_kn) g_k[n].
    other = (1 + torch.rand(K, N, generator=torch.Generator().manual_seed(1),
                            dtype=torch.float64)).to(device=z.device, dtype=z.dtype)
    cotangents = torch.zeros(K + 1, *z.shape, dtype=z.dtype, device=z.device)
    cotangents[torch.arange(K), :, torch.arange(K)] = weights
    cotangents[K] = other.T
    grads = _batched_grad(z, outputs, cotangents)  # each (K + 1, ...) or None
    # what the per-sample pieces must add up to: one pass for Σ_k w_k e_k, not a weight
    # gradient per class
    totals = torch.autograd.grad(z, params, grad_outputs=weights.T, allow_unused=True)
    if any(o._version != v for o, v in zip(outputs, versions, strict=True)):
        return _CHANGED if not shield else None  # changed in place after it was recorded
    if not _rows_are_samples(grads, other / weights):
        return None  # an output row reaches other samples' logits: rows are not samples
    uses = [_Uses() for _ in params]
    with torch.no_grad():
        try:
            for rec, g in zip(recorder.records, grads, strict=True):
                if g is not None:
                    _pieces(_with_shape(rec, params), g[:K], uses)
        except _Unsupported:
            return None
        gram = torch.zeros(N, K, K, dtype=z.dtype, device=z.device)
        for p, use, total in zip(params, uses, totals, strict=True):
            expect = torch.zeros_like(p) if total is None else total
            rebuilt = _summed(p, use)
            scale = max(float(expect.norm()), float(rebuilt.norm()), 1e-30)
            if float((rebuilt - expect).norm()) > _CHECK_RTOL * scale:
                return None  # a use the recorder did not see
            if use.bilinear or use.explicit:
                gram += _gram_of(p, use, K, N)
    w = weights.T  # (N, K)
    return gram / (w[:, :, None] * w[:, None, :])


@torch.no_grad()
def _alone_as_in_batch(model: nn.Module, X: torch.Tensor, z: torch.Tensor) -> bool:
    """Whether every sample's logits alone equal its row of the batch's: a per-sample
    Jacobian is that of each sample alone, which the batch's rows give only when samples do
    not interact (``if x.sum() > 0`` on the whole batch chooses one branch for all). All
    samples at once by ``vmap``; three samples one by one where ``vmap`` cannot run."""
    z = z.detach()
    try:
        alone = torch.func.vmap(lambda x: model(x.unsqueeze(0)).squeeze(0))(X)
        rows = z
    except Exception:  # e.g. Python control flow on tensor values
        picks = sorted({0, X.shape[0] // 2, X.shape[0] - 1})
        try:
            alone = torch.cat([model(X[i : i + 1]) for i in picks])
        except Exception:  # cannot run one sample: the generic path says why
            return False
        rows = z[picks]
    if not isinstance(alone, torch.Tensor) or alone.shape != rows.shape:
        return False
    # rounding of the least precise dtype computed in (float32 layers under float64 logits)
    eps = max(torch.finfo(t.dtype).eps for t in [z, *model.parameters()]
              if t.is_floating_point())
    scale = float(rows.abs().max()) + 1e-30
    return float((alone - rows).abs().max()) <= 1e3 * eps * scale


def _batched_grad(z: torch.Tensor, targets: list[torch.Tensor], cotangents: torch.Tensor):
    """Gradients of ⟨c_b, z⟩ for every cotangent c_b (B, *z.shape) with respect to each
    target, stacked (B, *target.shape) (None where a target is unused): one vmapped backward
    pass, or B plain ones where some operation has no batching rule."""
    try:
        return list(torch.autograd.grad(z, targets, grad_outputs=cotangents, retain_graph=True,
                                        allow_unused=True, is_grads_batched=True))
    except Exception:  # no batching rule (a real error repeats in the plain passes)
        pass
    passes = [torch.autograd.grad(z, targets, grad_outputs=c, retain_graph=True,
                                  allow_unused=True) for c in cotangents]
    out = []
    for i, t in enumerate(targets):
        gs = [grads[i] for grads in passes]
        out.append(None if all(g is None for g in gs) else
                   torch.stack([torch.zeros_like(t) if g is None else g for g in gs]))
    return out


@torch.no_grad()
def _rows_are_samples(grads, ratio: torch.Tensor) -> bool:
    """Whether each recorded output's gradient for the weights v (the last of each stack)
    equals Σ_k ratio_kn g_k[n] row by row (ratio = v / w, (K, N)), up to rounding."""
    for g in grads:
        if g is None:
            continue
        got, gs = g[-1], g[:-1]
        want = torch.einsum("kn,kn...->n...", ratio.to(gs.dtype), gs)
        scale = max(float(got.norm()), float(want.norm()), 1e-30)
        if float((got - want).norm()) > _CHECK_RTOL * scale:
            return False
    return True


def _with_shape(rec, params):
    """Attach what a record's pieces need of its parameter (its shape)."""
    kind, index = rec[0], rec[1]
    if kind == "conv":
        return (*rec, params[index].shape)
    if kind in ("broadcast", "channel", "scale", "channel_scale"):
        other = rec[3] if len(rec) > 3 else None
        return (kind, index, rec[2], other, None, params[index].shape)
    return rec
