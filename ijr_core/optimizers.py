r"""Training update rules: GD/SGD, SAM, ASAM, EJR and an explicit Jacobian penalty.

Every method has one interface, whether it takes one gradient evaluation per step or two::

    method = build_optimizer(config, model)
    loss = method.step(model, X, y, loss_fn)   # batch loss L_B(\theta) before the update

``loss_fn(logits, y)`` returns the scalar mean loss over the batch. The batch itself is the
trainer's choice (full batch for ``gd``, mini-batches for ``sgd``); every method here applies
one update for the batch it is given. All methods finish with a ``torch.optim.SGD`` step
(learning rate :math:`\eta`, momentum, weight decay) taken from :math:`\theta` with the
gradient the method computed, so with :math:`\rho = 0` the two-step methods reproduce plain
SGD exactly.

``grad_evals_per_step`` is the cost of one step in forward/backward passes, so runs can be
compared at equal compute: 1 for GD/SGD, 2 for SAM, ASAM and EJR (measured 2.0-2.2 GD steps),
3 for the Jacobian penalty (a double backward; measured about 2.5).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

LossFn = Callable[[Tensor, Tensor], Tensor]


class Method:
    r"""Plain (stochastic) gradient descent, the base of every other method.

    .. math::
        g = \nabla_\theta L_B(\theta), \qquad
        \theta \leftarrow \mathrm{SGD}(\theta, g; \eta, \text{momentum}, \text{weight decay})

    with ``torch.optim.SGD``'s conventions (weight decay :math:`\lambda` adds
    :math:`\lambda\theta` to :math:`g`; momentum :math:`\mu` keeps
    :math:`b \leftarrow \mu b + g`, :math:`\theta \leftarrow \theta - \eta b`).
    """

    grad_evals_per_step = 1

    def __init__(
        self,
        model: nn.Module,
        lr: float,
        momentum: float = 0.0,
        weight_decay: float = 0.0,
        rho: float = 0.0,
        beta: float = 0.0,
        seed: int = 0,
    ) -> None:
        self.params = [p for p in model.parameters() if p.requires_grad]
        if not self.params:
            raise ValueError("model has no parameters with requires_grad=True")
        _check_lr(lr)
        _check_rho(rho)
        self.base = torch.optim.SGD(
            self.params, lr=lr, momentum=momentum, weight_decay=weight_decay
        )
        self._rho = float(rho)
        self.beta = float(beta)
        self.seed = int(seed)
        self._generator: torch.Generator | None = None

    @property
    def lr(self) -> float:
        return float(self.base.param_groups[0]["lr"])

    def set_lr(self, lr: float) -> None:
        """Change the learning rate; takes effect on the next ``step``."""
        _check_lr(lr)
        for group in self.base.param_groups:
            group["lr"] = float(lr)

    @property
    def rho(self) -> float:
        return self._rho

    def set_rho(self, rho: float) -> None:
        """Change the perturbation radius; takes effect on the next ``step``."""
        _check_rho(rho)
        self._rho = float(rho)

    def step(self, model: nn.Module, X: Tensor, y: Tensor, loss_fn: LossFn) -> float:
        """One update on the batch (X, y); returns the batch loss before the update."""
        loss = loss_fn(model(X), y)
        self._apply(self._grad(loss))
        return float(loss.detach())

    def state_dict(self) -> dict:
        gen = self._generator
        return {
            "base": self.base.state_dict(),
            "rho": self._rho,
            "beta": self.beta,
            "generator": None if gen is None else gen.get_state(),
        }

    def load_state_dict(self, state: dict) -> None:
        self.base.load_state_dict(state["base"])
        self._rho = float(state["rho"])
        self.beta = float(state["beta"])
        if state["generator"] is not None:
            self._rng(self.params[0].device).set_state(state["generator"])

    def _grad(self, scalar: Tensor, create_graph: bool = False) -> list[Tensor]:
        return list(
            torch.autograd.grad(
                scalar,
                self.params,
                create_graph=create_graph,
                allow_unused=True,
                materialize_grads=True,
            )
        )

    def _apply(self, grads: Sequence[Tensor]) -> None:
        """Base SGD step from the current θ with the given gradient."""
        for p, g in zip(self.params, grads, strict=True):
            p.grad = g.detach()
        self.base.step()
        for p in self.params:
            p.grad = None

    def _rng(self, device: torch.device) -> torch.Generator:
        # One generator, seeded once, on the device the noise is drawn on: reproducible runs.
        if self._generator is None or self._generator.device != device:
            self._generator = torch.Generator(device=device)
            self._generator.manual_seed(self.seed)
        return self._generator


class _TwoStep(Method):
    r"""Shared two-pass scheme of SAM, ASAM and EJR.

    .. math::
        \theta' = \theta + \epsilon(\theta), \qquad g = \nabla_\theta L_B(\theta'), \qquad
        \theta \leftarrow \mathrm{SGD}(\theta, g)

    :math:`\theta` is saved and copied back after the second pass (not recomputed as
    :math:`\theta' - \epsilon`), so the base step starts from exactly the original
    parameters, also when the second pass raises. Both passes always run (also for
    :math:`\rho = 0`), so the cost is the same for every :math:`\rho`.
    """

    grad_evals_per_step = 2

    def step(self, model: nn.Module, X: Tensor, y: Tensor, loss_fn: LossFn) -> float:
        loss, direction = self._direction(model, X, y, loss_fn)
        saved = [p.detach().clone() for p in self.params]
        try:
            with torch.no_grad():
                for p, e in zip(self.params, direction, strict=True):
                    p.add_(e)
            grads = self._grad(loss_fn(model(X), y))
        finally:  # θ comes back even when the second pass raises (e.g. out of memory)
            with torch.no_grad():
                for p, s in zip(self.params, saved, strict=True):
                    p.copy_(s)
        self._apply(grads)
        return float(loss.detach())

    def _direction(
        self, model: nn.Module, X: Tensor, y: Tensor, loss_fn: LossFn
    ) -> tuple[Tensor, list[Tensor]]:
        """Return (L_B(θ), the perturbation ε as a list shaped like the parameters)."""
        raise NotImplementedError


class SAM(_TwoStep):
    r"""Sharpness-Aware Minimization (Foret et al., ICLR 2021).

    .. math::
        g_0 = \nabla_\theta L_B(\theta), \qquad
        \epsilon = \rho\, \frac{g_0}{\lVert g_0 \rVert_2}, \qquad
        g = \nabla_\theta L_B(\theta + \epsilon)

    then an SGD step from :math:`\theta` with :math:`g`. Weight decay enters only the base
    step, not :math:`\epsilon`. If :math:`g_0 = 0` there is no perturbation.
    """

    def _direction(self, model, X, y, loss_fn):
        loss = loss_fn(model(X), y)
        g0 = self._grad(loss)
        return loss, _scaled(g0, self.rho, _norm(g0))


class ASAM(_TwoStep):
    r"""Adaptive SAM (Kwon et al., ICML 2021), elementwise scale operator.

    .. math::
        T = |\theta| + \eta_{\mathrm{A}}, \qquad
        \epsilon = \rho\, \frac{T^2 g_0}{\lVert T g_0 \rVert_2}, \qquad
        g = \nabla_\theta L_B(\theta + \epsilon)

    (products elementwise, :math:`g_0 = \nabla_\theta L_B(\theta)`,
    :math:`\eta_{\mathrm{A}}` = ``eta``, default 0.01, applied to all parameters including
    biases). If :math:`T g_0 = 0` there is no perturbation.
    """

    def __init__(self, model: nn.Module, lr: float, *args, eta: float = 0.01, **kwargs) -> None:
        super().__init__(model, lr, *args, **kwargs)
        self.eta = float(eta)

    def _direction(self, model, X, y, loss_fn):
        loss = loss_fn(model(X), y)
        g0 = self._grad(loss)
        with torch.no_grad():
            t = [p.abs() + self.eta for p in self.params]
            tg = [ti * gi for ti, gi in zip(t, g0, strict=True)]
            t2g = [ti * tgi for ti, tgi in zip(t, tg, strict=True)]
        return loss, _scaled(t2g, self.rho, _norm(tg))


class EJR(_TwoStep):
    r"""Explicit Jacobian Regularization as a SAM-like two-step update.

    This is the project's own definition (SCIENCE.md, "EJR"); the paper's exact variant
    could not be confirmed. For each example :math:`i` of the batch :math:`B`

    .. math::
        \varepsilon_i \sim \mathcal N(0, I_K), \qquad
        v = \nabla_\theta \sum_{i \in B} \varepsilon_i^\top z(x_i;\theta)
          = \sum_{i \in B} J_i \varepsilon_i, \qquad
        \epsilon = \rho\, \frac{v}{\lVert v \rVert_2}, \qquad
        g = \nabla_\theta L_B(\theta + \epsilon)

    then an SGD step from :math:`\theta` with :math:`g`. The perturbation is a random
    direction in the column space of the Jacobians, with
    :math:`\mathbb E \lVert v \rVert^2 = \sum_i \lVert J_i \rVert_F^2`. The
    :math:`\varepsilon_i` come from a ``torch.Generator`` seeded with ``seed`` on the
    model's device. If :math:`v = 0` there is no perturbation.
    """

    def _direction(self, model, X, y, loss_fn):
        logits = model(X)
        with torch.no_grad():
            loss = loss_fn(logits, y)
        noise = _randn_like(logits, self._rng(logits.device))
        v = self._grad((noise * logits).sum())
        return loss, _scaled(v, self.rho, _norm(v))


class JacobianPenalty(Method):
    r"""Gradient descent on the loss plus a random-projection Jacobian penalty.

    .. math::
        \tilde L(\theta) = L_B(\theta) + \beta\, \frac{1}{|B|}
            \Bigl\lVert \sum_{i \in B} J_i \varepsilon_i \Bigr\rVert_2^2, \qquad
        \varepsilon_i \sim \mathcal N(0, I_K)

    Since :math:`\mathbb E \lVert \sum_i J_i \varepsilon_i \rVert^2 = \sum_i \lVert J_i
    \rVert_F^2`, the penalty is an unbiased one-sample estimate of
    :math:`\beta \langle \lVert J \rVert_F^2 \rangle` -- the random-projection estimator of
    Hoffman et al. 2019 ("Robust learning with Jacobian regularization"), applied here to the
    logit-parameter Jacobian :math:`J_i = \partial z(x_i)/\partial\theta` rather than the
    input-output Jacobian. :math:`\sum_i J_i \varepsilon_i` is one backward pass with
    ``create_graph=True``; differentiating its norm is a double backward. ``step`` returns
    :math:`L_B(\theta)` without the penalty; ``last_penalty`` holds the penalty's draw
    (without :math:`\beta`). ``rho`` is stored but unused.

    Cost: two backward passes, the second through the graph of the first (a double
    backward). Measured at 2.4-2.6 plain GD steps (CPU time, MLP 64-128-128-10, 1000
    inputs; bench/bench_optimizers.py), counted as ``grad_evals_per_step = 3`` (rounded up,
    so compute-matched comparisons do not favour the penalty).
    """

    grad_evals_per_step = 3
    last_penalty = math.nan

    def step(self, model: nn.Module, X: Tensor, y: Tensor, loss_fn: LossFn) -> float:
        logits = model(X)
        loss = loss_fn(logits, y)
        penalty = self.penalty(logits)
        self._apply(self._grad(loss + self.beta * penalty))
        self.last_penalty = float(penalty.detach())
        return float(loss.detach())

    def penalty(self, logits: Tensor) -> Tensor:
        r"""One draw of :math:`\lVert \sum_i J_i \varepsilon_i \rVert^2 / |B|` for the batch
        whose logits (still attached to the graph) are given; differentiable in θ."""
        noise = _randn_like(logits, self._rng(logits.device))
        v = self._grad((noise * logits).sum(), create_graph=True)
        return sum((vi * vi).sum() for vi in v) / logits.shape[0]


OPTIMIZERS: dict[str, type[Method]] = {
    "gd": Method,
    "sgd": Method,
    "sam": SAM,
    "asam": ASAM,
    "ejr": EJR,
    "jacobian-penalty": JacobianPenalty,
}


def build_optimizer(config, model: nn.Module) -> Method:
    """The update rule named by ``config.optimizer`` for the parameters of ``model``.

    Reads ``optimizer, lr, momentum, weight_decay, rho, beta, seed`` from ``config`` (a
    :class:`~ijr_core.config.RunConfig`, or any object with these attributes: the defaults
    live in RunConfig alone). ``gd`` and ``sgd`` are the same update; which batch each step
    sees is the trainer's business.
    """
    name = config.optimizer
    if name not in OPTIMIZERS:
        known = ", ".join(OPTIMIZERS)
        raise ValueError(f"unknown optimizer {name!r}; known optimizers: {known}")
    return OPTIMIZERS[name](
        model,
        lr=config.lr,
        momentum=config.momentum,
        weight_decay=config.weight_decay,
        rho=config.rho,
        beta=config.beta,
        seed=config.seed,
    )


def _norm(tensors: Sequence[Tensor]) -> Tensor:
    r""":math:`\lVert (t_1, \dots, t_n) \rVert_2` of the concatenated tensors."""
    return torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(t) for t in tensors]))


def _scaled(tensors: Sequence[Tensor], rho: float, norm: Tensor) -> list[Tensor]:
    r""":math:`\rho\, t / \lVert\cdot\rVert`, or zeros when the norm is 0 (no perturbation)."""
    if float(norm) == 0.0:
        return [torch.zeros_like(t) for t in tensors]
    scale = rho / norm
    return [(t * scale).detach() for t in tensors]


def _randn_like(t: Tensor, generator: torch.Generator) -> Tensor:
    return torch.randn(t.shape, generator=generator, device=t.device, dtype=t.dtype)


def _check_lr(lr: float) -> None:
    if not (math.isfinite(lr) and lr > 0):
        raise ValueError(f"lr must be a finite number > 0, got {lr!r}")


def _check_rho(rho: float) -> None:
    if not (math.isfinite(rho) and rho >= 0):
        raise ValueError(f"rho must be a finite number >= 0, got {rho!r}")
