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

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

_T = torch._C.TensorBase
_LINEAR = {F.linear, torch._C._nn.linear}
_MATMUL = {torch.matmul, torch.mm, _T.matmul, _T.mm, _T.__matmul__}
_ADD = {torch.add, _T.add, _T.__add__, _T.__radd__}
_MUL = {torch.mul, _T.mul, _T.__mul__, _T.__rmul__}
_TRANSPOSE = {torch.t, _T.t, torch.transpose, _T.transpose}
_TRANSPOSE_PROPERTIES = (_T.T, _T.mT)
_CONV = {F.conv1d: 1, F.conv2d: 2}
_NORMS = {F.layer_norm, F.group_norm, F.batch_norm, F.rms_norm}

# Relative mismatch allowed between autograd's summed gradient and the one rebuilt from the
# recorded uses (float32 sums over N·K·T terms stay near 1e-6).
_CHECK_RTOL = 1e-4


class _Unsupported(Exception):
    """A parameter entered an operation without a closed-form per-sample gradient."""


@dataclass
class _Uses:
    """Per-sample gradient pieces of one parameter."""

    # (a (N, T, d_in), g (K, N, T, d_out)); the gradient is Σ_t g_t a_tᵀ, transposed when
    # ``transposed`` (the parameter is stored (d_in, d_out))
    bilinear: list[tuple[torch.Tensor, torch.Tensor, bool]] = field(default_factory=list)
    # pieces (K, N, numel) in the parameter's own layout
    explicit: list[torch.Tensor] = field(default_factory=list)


class _Recorder(TorchFunctionMode):
    """Records every operation that takes a trainable parameter (or a transpose of one)."""

    def __init__(self, params: list[torch.Tensor], shield: bool = False):
        super().__init__()
        # hand the model a copy of each recorded output, so that in-place operations after
        # it (nn.ReLU(inplace=True), ``out += identity``) leave the recorded one intact
        self.shield = shield
        self.index = {id(p): i for i, p in enumerate(params)}
        self.params = params
        self.views: dict[int, tuple[torch.Tensor, int]] = {}  # id(view) -> (view, index)
        self.records: list[tuple] = []  # (kind, param index, output, extra...)
        self.problem: str | None = None

    def _tracked(self, t) -> tuple[int, bool] | None:
        """(parameter index, transposed) for a parameter or a recorded transpose of one."""
        if not isinstance(t, torch.Tensor):
            return None
        if id(t) in self.index and t is self.params[self.index[id(t)]]:
            return self.index[id(t)], False
        view = self.views.get(id(t))
        if view is not None and view[0] is t:
            return view[1], True
        return None

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        if self.problem is None:
            args, kwargs = _positional(func, args, kwargs)
            flat = [*args, *kwargs.values()]
            flat += [x for a in args if isinstance(a, (list, tuple)) for x in a]
            tracked = [(i, self._tracked(a)) for i, a in enumerate(flat)]
            tracked = [(i, t) for i, t in tracked if t is not None]
            if tracked:
                count = len(self.records)
                try:
                    self._record(func, args, kwargs, out, tracked)
                except Exception as exc:  # _Unsupported, or a call this reading missed
                    self.problem = str(exc) or type(exc).__name__
                if self.shield and len(self.records) > count:
                    return out.clone()
        return out

    def _record(self, func, args, kwargs, out, tracked) -> None:
        name = getattr(func, "__name__", repr(func))
        if not isinstance(out, torch.Tensor):
            if any(isinstance(o, torch.Tensor) and o.requires_grad for o in _flatten(out)):
                raise _Unsupported(f"a parameter enters {name}, which returns several tensors")
            return  # .shape, .dtype: no gradient flows
        if not out.requires_grad:
            return  # a detached copy: no gradient flows
        (pos, (index, transposed)), *rest = tracked
        owner = getattr(func, "__self__", None)
        if func in _TRANSPOSE or owner in _TRANSPOSE_PROPERTIES:
            if transposed or self.params[index].ndim != 2 or rest or not _swaps(args, kwargs):
                raise _Unsupported(f"{name} of a transposed parameter")
            self.views[id(out)] = (out, index)
            return
        if func in _LINEAR:
            x, w = args[0], args[1]
            b = args[2] if len(args) > 2 else kwargs.get("bias")
            if self._tracked(x) is not None:
                raise _Unsupported("linear with a parameter as input")
            wt, bt = self._tracked(w), self._tracked(b)
            if wt is not None:  # out = x Wᵀ: W stored (out, in) unless it is a transpose
                self.records.append(("bilinear", wt[0], out, x, wt[1]))
            if bt is not None:
                if bt[1]:
                    raise _Unsupported("linear with a transposed bias")
                self.records.append(("broadcast", bt[0], out))
            return
        if func in _MATMUL and not rest and pos == 1 and self._tracked(args[0]) is None \
                and self.params[index].ndim in (1, 2) and args[0].ndim >= 2:
            # out = x W: W stored (in, out) unless it is a transpose
            self.records.append(("bilinear", index, out, args[0], not transposed))
            return
        if (func in _ADD or func in _MUL) and not rest and not transposed and not kwargs \
                and len(args) == 2 and isinstance(args[1 - pos], torch.Tensor):
            kind = "broadcast" if func in _ADD else "scale"
            self.records.append((kind, index, out, args[1 - pos]))
            return
        if func in _CONV and pos == 1 and not transposed:
            self._record_conv(func, args, kwargs, out, index, rest)
            return
        if func is F.embedding and pos == 1 and not transposed and not rest:
            if kwargs.get("max_norm") is not None or kwargs.get("scale_grad_by_freq"):
                raise _Unsupported("embedding with max_norm or scale_grad_by_freq")
            padding = kwargs.get("padding_idx")
            if padding is not None and padding < 0:  # as nn.Embedding normalises it
                padding += self.params[index].shape[0]
            self.records.append(("embedding", index, out, args[0], padding))
            return
        if func in _NORMS and not transposed:
            self._record_norm(func, args, kwargs, out, tracked)
            return
        raise _Unsupported(f"a parameter enters {name}")

    def _record_conv(self, func, args, kwargs, out, index, rest) -> None:
        bias = args[2] if len(args) > 2 else kwargs.get("bias")
        bt = self._tracked(bias)
        if any(t != bt for _, t in rest) or (bt is not None and bt[1]):
            raise _Unsupported("convolution with a parameter as input")
        names = ("stride", "padding", "dilation", "groups")
        opts = dict(zip(names, args[3:], strict=False)) | {k: kwargs[k] for k in names
                                                            if k in kwargs}
        if opts.get("groups", 1) != 1:
            raise _Unsupported("grouped convolution")
        if opts.get("padding") == "valid":
            opts["padding"] = 0
        elif isinstance(opts.get("padding"), str) and opts["padding"] != "same":
            raise _Unsupported(f"convolution padding {opts['padding']!r}")
        self.records.append(("conv", index, out, args[0], _CONV[func], opts))
        if bt is not None:
            self.records.append(("channel", bt[0], out))

    def _record_norm(self, func, args, kwargs, out, tracked) -> None:
        x = args[0]
        if self._tracked(x) is not None:
            raise _Unsupported("normalisation of a parameter")
        if func is F.batch_norm:
            training = kwargs.get("training", args[5] if len(args) > 5 else False)
            if training:
                raise _Unsupported("batch norm with batch statistics couples the samples")
            names = ("running_mean", "running_var", "weight", "bias", "training", "momentum",
                     "eps")
            opts = dict(zip(names, args[1:], strict=False)) | kwargs
            with torch.no_grad():
                xhat = F.batch_norm(x, opts["running_mean"], opts["running_var"], None, None,
                                    False, 0.0, opts.get("eps", 1e-5))
            per_channel = True
        elif func is F.group_norm:
            names = ("num_groups", "weight", "bias", "eps")
            opts = dict(zip(names, args[1:], strict=False)) | kwargs
            with torch.no_grad():
                xhat = F.group_norm(x, opts["num_groups"], None, None, opts.get("eps", 1e-5))
            per_channel = True
        elif func is F.rms_norm:
            names = ("normalized_shape", "weight", "eps")
            opts = dict(zip(names, args[1:], strict=False)) | kwargs
            with torch.no_grad():
                xhat = F.rms_norm(x, opts["normalized_shape"], None, opts.get("eps"))
            per_channel = False
        else:
            names = ("normalized_shape", "weight", "bias", "eps")
            opts = dict(zip(names, args[1:], strict=False)) | kwargs
            with torch.no_grad():
                xhat = F.layer_norm(x, opts["normalized_shape"], None, None,
                                    opts.get("eps", 1e-5))
            per_channel = False
        for role in ("weight", "bias"):
            t = self._tracked(opts.get(role))
            if t is None:
                continue
            kind = "channel" if per_channel else "broadcast"
            if role == "weight":
                self.records.append(("channel_scale" if per_channel else "scale", t[0], out,
                                     xhat))
            else:
                self.records.append((kind, t[0], out))


def _per_sample_sum(t: torch.Tensor, shape: torch.Size, channel: bool) -> torch.Tensor:
    """Sum a (K, N, *out) tensor over the positions a parameter of ``shape`` is broadcast
    over: its trailing dims (``channel=False``, broadcasting) or dim 1 of the output (a
    per-channel parameter of batch / group norm and convolution biases). (K, N, numel)."""
    K, N = t.shape[:2]
    rest = t.shape[2:]
    if channel:
        return t.reshape(K, N, rest[0], -1).sum(-1).reshape(K, N, -1)
    nd = len(shape)
    if nd > len(rest) and all(s == 1 for s in shape[: nd - len(rest)]):
        shape, nd = shape[nd - len(rest) :], len(rest)  # e.g. a (1, d) bias on (N, d)
    if nd > len(rest):
        raise _Unsupported("a parameter broadcast over the batch dimension")
    lead = t.reshape(K, N, -1, *rest[len(rest) - nd :]).sum(2)
    dims = [2 + i for i, (s, r) in enumerate(zip(shape, lead.shape[2:], strict=True))
            if s == 1 and r != 1]
    if dims:
        lead = lead.sum(dims, keepdim=True)
    if tuple(lead.shape[2:]) != tuple(shape):
        raise _Unsupported("a parameter broadcast in a way that is not elementwise")
    return lead.reshape(K, N, -1)


def _pieces(record, g: torch.Tensor, uses: list[_Uses]) -> None:
    """Per-sample gradient pieces of one recorded operation, given its output gradient g
    (K, N, ...) for the cotangents w_kn e_k."""
    kind, index = record[0], record[1]
    K, N = g.shape[:2]
    if kind == "bilinear":
        x, transposed = record[3], record[4]
        a = _rows(x, N)
        a = a.reshape(N, -1, a.shape[-1])
        uses[index].bilinear.append((a, g.reshape(K, N, a.shape[1], -1), transposed))
    elif kind == "conv":
        x, dim, opts, weight_shape = record[3], record[4], record[5], record[6]
        a, kernel = _rows(x, N), tuple(weight_shape[2:])
        stride, padding, dilation = (opts.get(k, d) for k, d in
                                     (("stride", 1), ("padding", 0), ("dilation", 1)))
        same = padding == "same"
        padding = 0 if same else padding
        if dim == 1:  # as a 2-D convolution over a (1, L) image
            a, kernel = a.unsqueeze(2), (1, *kernel)
            stride, padding, dilation = ((1, _one(stride)), (0, _one(padding)),
                                         (1, _one(dilation)))
        if same:  # torch pads d·(k−1) in all, the odd one on the right / bottom
            dil = (dilation, dilation) if isinstance(dilation, int) else tuple(dilation)
            totals = [d * (k - 1) for d, k in zip(dil, kernel, strict=True)]
            a = F.pad(a, (totals[1] // 2, totals[1] - totals[1] // 2,
                          totals[0] // 2, totals[0] - totals[0] // 2))
        patches = F.unfold(a, kernel, dilation=dilation, padding=padding,
                           stride=stride).transpose(1, 2)  # (N, L, C_in·k)
        gg = g.reshape(K, N, g.shape[2], -1).transpose(2, 3)  # (K, N, L, C_out)
        uses[index].bilinear.append((patches, gg, False))
    elif kind == "embedding":
        idx, padding = _rows(record[3], N).reshape(N, -1), record[4]
        gg = g.reshape(K, N, idx.shape[1], -1)
        if padding is not None:
            gg = gg * (idx != padding).to(gg.dtype)[None, :, :, None]
        uses[index].explicit.append(("embedding", idx, gg))
    else:
        shape = record[5]
        if kind in ("broadcast", "channel"):
            piece = g
        else:  # scale: gradient g ⊙ x (x̂ for the norms)
            other = _rows(record[3], N)
            if other.shape != g.shape[1:]:
                raise _Unsupported("a scale parameter times a broadcast input")
            piece = g * other.unsqueeze(0)
        channel = kind in ("channel", "channel_scale")
        uses[index].explicit.append(("dense", _per_sample_sum(piece, shape, channel)))


def _rows(x: torch.Tensor, N: int) -> torch.Tensor:
    """A batch-leading input of a recorded operation, detached."""
    if not isinstance(x, torch.Tensor) or x.ndim == 0 or x.shape[0] != N:
        raise _Unsupported("a parameter meets a tensor that is not one row per sample")
    return x.detach()


_LEADING = {**dict.fromkeys(_LINEAR, ("input", "weight", "bias")),
            **dict.fromkeys(_CONV, ("input", "weight", "bias", "stride", "padding", "dilation",
                                    "groups")),
            **dict.fromkeys(_MATMUL, ("input", "other"))}


def _positional(func, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
    """``F.linear(input=x, weight=W)`` and the like as positional arguments, the way the
    records read them."""
    names = _LEADING.get(func, ())
    if len(args) >= len(names) or not kwargs:
        return args, kwargs
    args, kwargs = list(args), dict(kwargs)
    for name in names[len(args) :]:
        if name not in kwargs:
            break
        args.append(kwargs.pop(name))
    return tuple(args), kwargs


def _flatten(out) -> list:
    """The tensors of an operation's (possibly nested tuple / list) result."""
    if isinstance(out, (tuple, list)):
        return [t for o in out for t in _flatten(o)]
    return [out]


def _swaps(args, kwargs) -> bool:
    """``t()``, ``T``/``mT`` or ``transpose(d0, d1)`` of a matrix with d0 ≠ d1."""
    dims = [*args[1:3], *(kwargs[k] for k in ("dim0", "dim1") if k in kwargs)]
    return len(dims) < 2 or {int(d) % 2 for d in dims[:2]} == {0, 1}


def _one(v) -> int:
    return int(v[0]) if isinstance(v, (tuple, list)) else int(v)


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
