r"""Private copies of a user's model for measuring it: a probe never changes the model itself.

A probe runs forward and backward passes, switches modes and, on the generic path, swaps
parameters (``torch.func.functional_call``, which does not put back the parameters of a
module registered under two names). All of that happens on a private ``copy.deepcopy`` of the
model, so the user's parameters (identity and values), buffers, ``.grad``, train/eval mode
and hooks are exactly as before (tests/test_model_safety.py checks this over a table of
architectures). The copy keeps parameter sharing and ties (``deepcopy`` has a memo) and the
order of ``named_parameters()``, so flat vectors mean the same on the copy and on the model.
Hooks belong to the model's function and run on the copy: a hook that is a bound method runs
on a deep copy of its object (which must be deep-copyable, and is copied at every probe), but
a plain function's effects on objects outside the model (appending activations to a global
list, counting calls) also happen during probes, a few forward passes each.

Probe modes (``RunConfig.probe_mode``, ``RunWriter(probe_mode=...)``):

* ``"train"`` (default): the function gradient descent trains. Every module is in eval mode
  (dropout off) except batch normalisation, which normalises with the probe batch's own
  statistics, as in a training step, without updating the running buffers. The loss, H and G
  then include the dependence of the batch statistics on θ. Instance normalisation that
  tracks running statistics likewise uses each sample's own statistics, as in training.
* ``"eval"``: ``model.eval()``: batch normalisation uses its running statistics.

Models without batch normalisation or dropout give the same numbers in both modes. A model in
float16 / bfloat16 is measured in float32 (its copy is converted; eigenvalue routines need
float32 or float64): the same function, with the rounding of float32.

Per-sample Jacobians (‖J‖², λ*) need samples that do not interact. With batch normalisation in
``"train"`` mode (or without running statistics, in either mode) they do (through the batch
mean and variance), so per-sample quantities are
taken with **the batch statistics held fixed** at their values on the probe batch
(:func:`frozen_statistics_view`): :math:`J_n=\partial z_n/\partial\theta` of the network
whose normalisation uses the probe batch's mean and variance as constants. That network has
the same outputs on the probe batch; its G differs from the full G by the curvature that
flows through the batch statistics, so :math:`\langle\lambda^*\|J\|^2\rangle` equals
:math:`u^\top G_{\text{fixed}}u`, not exactly ‖G‖, in that case only.
"""

from __future__ import annotations

import copy
import weakref

import torch
from torch import nn

from ijr_core.config import PROBE_MODES

_BATCH_NORMS = (nn.modules.batchnorm._BatchNorm,)
_INSTANCE_NORMS = (nn.modules.instancenorm._InstanceNorm,)
_HALF = (torch.float16, torch.bfloat16)

# Copies made here: the curvature code works on them directly instead of copying again.
_VIEWS: weakref.WeakSet[nn.Module] = weakref.WeakSet()


class ModelError(ValueError):
    """The model (or its inputs) cannot be measured; raised before anything is run."""


def check_inputs(X) -> torch.Tensor:
    """The probe inputs as one tensor with the samples along dimension 0, or a clear error."""
    if isinstance(X, (dict, list, tuple)):
        raise ModelError(
            f"inputs must be one tensor with the samples along dimension 0, got a "
            f"{type(X).__name__}; for a model that takes several inputs, stack them into one "
            f"tensor and probe a small wrapper module whose forward splits it again"
        )
    try:
        X = torch.as_tensor(X)
    except (TypeError, ValueError, RuntimeError) as exc:
        raise ModelError(f"inputs must be a tensor (or array) of samples: {exc}") from None
    if X.ndim < 1 or X.shape[0] == 0:
        raise ModelError(f"inputs need a leading sample dimension with N >= 1, "
                         f"got {tuple(X.shape)}")
    return X


def check_labels(y, n: int, k: int | None = None, name: str = "labels") -> torch.Tensor:
    """Labels as one integer class index per sample ((n,), in [0, k) when k is known), or a
    clear error (a float label would be silently truncated to a class)."""
    try:
        y = torch.as_tensor(y)
    except (TypeError, ValueError, RuntimeError):
        raise ModelError(f"{name} must be integer class indices, one per sample (a tensor or "
                         f"array of shape ({n},)), got a {type(y).__name__}") from None
    if y.ndim != 1 or y.shape[0] != n:
        raise ModelError(f"{name} must have shape ({n},) to match the inputs (one class index "
                         f"per sample), got {tuple(y.shape)}")
    if y.is_floating_point() or y.is_complex() or y.dtype == torch.bool:
        raise ModelError(f"{name} must hold integer class indices, got dtype {y.dtype}")
    if k is not None and n and (int(y.min()) < 0 or int(y.max()) >= k):
        raise ModelError(f"{name} must lie in [0, {k - 1}] for a model with K = {k} logits, "
                         f"got range [{int(y.min())}, {int(y.max())}]")
    return y


def _batch_statistics(m: nn.Module) -> bool:
    """Batch normalisation that normalises with the batch's statistics: in train mode, or in
    any mode without running statistics (``track_running_stats=False``)."""
    return isinstance(m, _BATCH_NORMS) and (m.training or m.running_mean is None)


def has_batch_coupling(model: nn.Module) -> bool:
    """True when some layer mixes the samples of a batch (batch normalisation on the batch's
    statistics)."""
    return any(_batch_statistics(m) for m in model.modules())


def private_copy(model: nn.Module) -> nn.Module:
    """A deep copy of ``model`` that the curvature code may change freely (modes, buffers,
    swapped parameters); ``model`` itself is only read. A copy made here is returned as is."""
    if model in _VIEWS:
        return model
    if not isinstance(model, nn.Module):
        raise ModelError(f"the model must be a torch.nn.Module, got {type(model).__name__}")
    if any(isinstance(t, nn.parameter.UninitializedTensorMixin)
           for t in [*model.parameters(), *model.buffers()]):
        raise ModelError("the model has uninitialised lazy parameters (nn.LazyLinear, ...); "
                         "run one forward pass on a batch before probing it")
    if not any(p.requires_grad for p in model.parameters()):
        raise ModelError("the model has no trainable parameters (none with requires_grad=True)")
    try:
        view = deep_copy(model)
    except Exception as exc:  # any failure of the user's __deepcopy__ / hooks
        raise ModelError(
            f"the probe measures a private copy of the model and copy.deepcopy failed "
            f"({type(exc).__name__}); make the model (and objects its hooks hold) deep-copyable"
        ) from None
    if not isinstance(view, nn.Module) or _shares_state(model, view):
        raise ModelError(
            f"the probe measures a private copy of the model, and copy.deepcopy of this "
            f"{type(model).__name__} returns an object that shares modules, parameters or "
            f"buffers with it (a custom __deepcopy__?); the probe would change the model, so "
            f"make copy.deepcopy return an independent copy"
        )
    if any(p.dtype in _HALF for p in view.parameters()):
        view.float()  # eigh and Lanczos need float32 or float64; the same function, measured
    for m in view.modules():
        if isinstance(m, (nn.Embedding, nn.EmbeddingBag)):
            m.sparse = False  # the same function; curvature products need dense gradients
    _VIEWS.add(view)
    return view


def _shares_state(model: nn.Module, view: nn.Module) -> bool:
    """Whether ``view`` shares a module object or tensor memory with ``model``."""
    if {id(m) for m in model.modules()} & {id(m) for m in view.modules()}:
        return True

    def storages(m: nn.Module) -> set[int]:
        tensors = [*m.parameters(), *(b for b in m.buffers() if b is not None)]
        return {t.untyped_storage().data_ptr() for t in tensors if t.numel()}

    return bool(storages(model) & storages(view))


def deep_copy(model: nn.Module) -> nn.Module:
    """``copy.deepcopy(model)``, where tensors that modules keep as plain attributes and that
    came out of a forward pass with gradients (e.g. ``torch.nn.utils.prune``'s ``weight``,
    recomputed by a pre-hook on every call; an activation kept for later) are copied detached:
    torch refuses to deep-copy a tensor that is not a graph leaf."""
    memo: dict[int, object] = {}
    for m in model.modules():
        for value in vars(m).values():
            if isinstance(value, torch.Tensor) and value.grad_fn is not None:
                memo[id(value)] = value.detach().clone()
    return copy.deepcopy(model, memo)


def probe_view(model: nn.Module, mode: str = "train") -> nn.Module:
    """A private copy of ``model`` set up for probe ``mode`` (module docstring)."""
    if mode not in PROBE_MODES:
        raise ModelError(f"probe mode must be one of {', '.join(PROBE_MODES)}, got {mode!r}")
    view = private_copy(model)
    view.eval()
    if mode == "train":
        for m in view.modules():
            if isinstance(m, _BATCH_NORMS):
                m.train()
            elif isinstance(m, _INSTANCE_NORMS) and m.track_running_stats:
                # each sample's own statistics, as in training; no running buffers to update
                m.track_running_stats = False
                m.running_mean = m.running_var = None
    return view


@torch.no_grad()
def frozen_statistics_view(view: nn.Module, X: torch.Tensor) -> nn.Module:
    """A copy of ``view`` whose batch normalisation uses the batch statistics of ``X`` as
    constants (eval mode, running mean and biased variance := those of the batch), so that
    samples no longer interact; ``view`` itself when nothing couples the samples."""
    norms = [m for m in view.modules() if _batch_statistics(m)]
    if not norms:
        return view
    stats: dict[nn.Module, tuple[torch.Tensor, torch.Tensor]] = {}

    def record(module, inputs):
        a = inputs[0]
        dims = [0] + list(range(2, a.ndim))
        stats[module] = (a.mean(dims), a.var(dims, unbiased=False))

    handles = [m.register_forward_pre_hook(record) for m in norms]
    try:
        view(X)
    finally:
        for h in handles:
            h.remove()
    frozen = deep_copy(view)
    _VIEWS.add(frozen)
    by_name = dict(view.named_modules())
    for name, m in frozen.named_modules():
        original = by_name.get(name)
        if original in stats:
            mean, var = stats[original]
            m.eval()
            m.running_mean, m.running_var = mean.clone(), var.clone()
    return frozen
