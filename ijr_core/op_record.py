r"""What one operation on a parameter contributes to per-sample Grams (see
:mod:`ijr_core.op_gram`): the recorder that sees every operation of a forward pass that takes
a trainable parameter, and the per-sample gradient pieces of each recorded operation, in
closed form from its input and its output gradient."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
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
