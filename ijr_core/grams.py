r"""Per-sample logit-Jacobian Grams :math:`J^\top J` (K × K) and the norms taken from them."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ijr_core.mlp_jacobian import MLPJacobian, mlp_chain
from ijr_core.model_view import ModelError, deep_copy, frozen_statistics_view, private_copy
from ijr_core.op_gram import op_gram
from ijr_core.params import (
    NonFiniteError,
    _check_logits,
    _logits,
    _prepare_inputs,
    trainable_parameters,
)


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
    K = _one_sample_logits(model, X[:1]).shape[1]
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
    chunks small enough for their (chunk, K, P) Jacobians; one sample at a time by plain
    autograd (:func:`_gram_per_sample`) where ``vmap`` cannot run the model (``nn.LSTM`` /
    ``nn.GRU``, ``nn.PReLU``, Python control flow on tensor values).

    On a throwaway copy: ``functional_call`` does not restore the parameters of a module
    registered under two names (torch 2.13), so it must never run on a model that lives on."""
    try:
        return _gram_vmap(deep_copy(model), X, chunk_size)
    except Exception:  # vmap could not run the model; a real error repeats below
        pass
    try:
        return _gram_per_sample(model, X)
    except NonFiniteError:
        raise
    except Exception as exc:
        raise _one_sample_error(f"{type(exc).__name__}: {str(exc)[:200]}") from None


def _one_sample_error(what: str) -> ModelError:
    return ModelError(
        f"per-sample Jacobians run the model on one sample at a time, and on one sample it "
        f"{what}; the model must map a batch of one to logits (1, K) (samples may interact "
        f"only through torch.nn batch-norm layers)")


@torch.no_grad()
def _one_sample_logits(model: nn.Module, x1: torch.Tensor) -> torch.Tensor:
    """The logits (1, K) of one sample, or a clear error."""
    try:
        z = _logits(model, x1)
    except (NonFiniteError, ModelError):
        raise
    except Exception as exc:
        raise _one_sample_error(f"failed ({type(exc).__name__}: {str(exc)[:200]})") from None
    if z.shape[0] != 1:
        raise _one_sample_error(f"returned logits of shape {tuple(z.shape)}")
    return z


def _gram_per_sample(model: nn.Module, X: torch.Tensor) -> torch.Tensor:
    """(N, K, K) Grams, sample by sample: forward of x_n alone, K backward passes."""
    params = [p for _, p in trainable_parameters(model)]
    grams = []
    with torch.enable_grad():
        for n in range(X.shape[0]):
            z = _logits(model, X[n : n + 1])[0]
            rows = []
            for k in range(z.shape[0]):
                g = torch.autograd.grad(z[k], params, retain_graph=k < z.shape[0] - 1,
                                        allow_unused=True)
                rows.append(torch.cat([torch.zeros_like(p).reshape(-1) if t is None
                                       else t.reshape(-1) for t, p in zip(g, params,
                                                                          strict=True)]))
            J = torch.stack(rows)
            grams.append(J @ J.T)
    return torch.stack(grams)


def _gram_vmap(model: nn.Module, X: torch.Tensor, chunk_size: int) -> torch.Tensor:
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
