r"""Parameters, losses and logits: what every curvature module shares.

Flat vectors follow ``model.named_parameters()`` order, ``requires_grad`` only; the loss is
the mean over the batch.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from ijr_core.model_view import ModelError, check_inputs

LOSSES = ("ce", "mse")

Matvec = Callable[[torch.Tensor], torch.Tensor]


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
