"""Update rules of ijr_core.optimizers against hand-computed references."""

import copy
import math
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ijr_core.optimizers import OPTIMIZERS, build_optimizer
from tests import oracles

torch.set_num_threads(1)

TWO_STEP = ["sam", "asam", "ejr"]
N, D, K = 12, 5, 3


def make_config(optimizer, **kw):
    base = dict(lr=0.1, momentum=0.0, weight_decay=0.0, rho=0.05, beta=0.01, seed=0)
    return SimpleNamespace(optimizer=optimizer, **{**base, **kw})


def make_model(seed=0, dtype=torch.float64):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(D, 7), nn.Tanh(), nn.Linear(7, K)).to(dtype)


def make_data(seed=1, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(N, D, generator=g, dtype=dtype)
    y = torch.randint(0, K, (N,), generator=g)
    return X, y


def params(model):
    return [p.detach().clone() for p in model.parameters()]


def assert_equal(a, b):
    for x, z in zip(a, b, strict=True):
        assert torch.equal(x, z), (x - z).abs().max()


def norm(tensors):
    return torch.sqrt(sum((t * t).sum() for t in tensors)).item()


def sgd_update(theta, grads, lr):
    """θ - lr g exactly as torch.optim.SGD computes it (no momentum, no weight decay)."""
    return [t.clone().add_(g, alpha=-lr) for t, g in zip(theta, grads, strict=True)]


def recording(loss_fn, model, log):
    """loss_fn that records the parameters it is evaluated at."""

    def wrapped(logits, y):
        log.append(params(model))
        return loss_fn(logits, y)

    return wrapped


def flat_grad(model, theta, X, y):
    """∇L at the parameter list theta, per parameter: the autograd oracle on an independent
    copy of the model (tests/oracles.py)."""
    g = oracles.dense_gradient(oracles.with_parameters(model, theta), X, y)
    return list(oracles.split(model, g).values())


def named(model):
    return {k: v.detach().clone() for k, v in model.named_parameters()}


def test_registry_and_grad_evals():
    assert set(OPTIMIZERS) == {"gd", "sgd", "sam", "asam", "ejr", "jacobian-penalty"}
    model = make_model()
    evals = {n: build_optimizer(make_config(n), model).grad_evals_per_step for n in OPTIMIZERS}
    assert evals == {"gd": 1, "sgd": 1, "sam": 2, "asam": 2, "ejr": 2, "jacobian-penalty": 3}


def test_bad_name_lists_known_names():
    with pytest.raises(ValueError, match="adam") as err:
        build_optimizer(make_config("adam"), make_model())
    for name in OPTIMIZERS:
        assert name in str(err.value)


def test_build_reads_config():
    cfg = make_config("sam", lr=0.3, momentum=0.5, weight_decay=0.01, rho=0.2)
    m = build_optimizer(cfg, make_model())
    group = m.base.param_groups[0]
    assert (m.lr, m.rho, group["momentum"], group["weight_decay"]) == (0.3, 0.2, 0.5, 0.01)


@pytest.mark.parametrize("name", ["gd", "sgd", *TWO_STEP])
def test_rho_zero_reproduces_torch_sgd_bit_exactly(name):
    model = make_model()
    ref = copy.deepcopy(model)
    opt = torch.optim.SGD(ref.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-3)
    method = build_optimizer(make_config(name, rho=0.0, momentum=0.9, weight_decay=1e-3), model)
    for step in range(5):
        X, y = make_data(seed=step)  # a different batch each step, as SGD would see
        opt.zero_grad()
        ref_loss = F.cross_entropy(ref(X), y)
        ref_loss.backward()
        opt.step()
        loss = method.step(model, X, y, F.cross_entropy)
        assert loss == ref_loss.item()
        assert_equal(params(model), params(ref))


@pytest.mark.parametrize("name", TWO_STEP)
def test_parameters_restored_exactly_between_passes(name):
    model = make_model()
    X, y = make_data()
    method = build_optimizer(make_config(name, rho=0.3, lr=0.2), model)
    for _ in range(3):
        theta0, log = params(model), []
        method.step(model, X, y, recording(F.cross_entropy, model, log))
        assert len(log) == 2
        assert_equal(log[0], theta0)
        # ‖ε‖ = ρ; for ASAM in its own metric, ‖T⁻¹ε‖ = ρ with T = |θ| + 0.01.
        scale = [t.abs() + 0.01 if name == "asam" else 1.0 for t in theta0]
        eps = [(b - a) / s for a, b, s in zip(log[0], log[1], scale, strict=True)]
        assert norm(eps) == pytest.approx(0.3, rel=1e-9)
        # The update starts from exactly θ0: θ0 - lr ∇L(θ'), as torch.optim.SGD computes it.
        g = flat_grad(model, log[1], X, y)
        assert_equal(params(model), sgd_update(theta0, g, 0.2))


@pytest.mark.parametrize("name", TWO_STEP)
def test_parameters_restored_when_the_second_pass_raises(name):
    model = make_model()
    X, y = make_data()
    method = build_optimizer(make_config(name, rho=0.3), model)
    theta0, calls = params(model), []

    def failing_second_pass(logits, y):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("out of memory")
        return F.cross_entropy(logits, y)

    with pytest.raises(RuntimeError, match="out of memory"):
        method.step(model, X, y, failing_second_pass)
    assert_equal(params(model), theta0)


def reference_two_step(model, X, y, direction, lr):
    """θ - lr ∇L(θ + ε), ε = direction(θ, g0), the gradients by autograd on copies."""
    theta = params(model)
    g0 = flat_grad(model, theta, X, y)
    eps = direction(theta, g0)
    g = flat_grad(model, [t + e for t, e in zip(theta, eps, strict=True)], X, y)
    return [t - lr * gi for t, gi in zip(theta, g, strict=True)]


def test_sam_matches_hand_reference():
    rho, lr = 0.05, 0.1
    model = make_model()
    X, y = make_data()

    def sam_eps(theta, g0):
        norm = torch.sqrt(sum((g * g).sum() for g in g0))
        return [rho * g / norm for g in g0]

    expected = reference_two_step(model, X, y, sam_eps, lr)
    build_optimizer(make_config("sam", rho=rho, lr=lr), model).step(model, X, y, F.cross_entropy)
    for p, e in zip(params(model), expected, strict=True):
        torch.testing.assert_close(p, e, rtol=1e-12, atol=1e-14)


def test_asam_matches_hand_reference():
    rho, lr, eta = 0.5, 0.1, 0.01
    model = make_model()
    X, y = make_data()

    def asam_eps(theta, g0):
        t = [th.detach().abs() + eta for th in theta]
        norm = torch.sqrt(sum(((ti * g) ** 2).sum() for ti, g in zip(t, g0, strict=True)))
        return [rho * ti * ti * g / norm for ti, g in zip(t, g0, strict=True)]

    expected = reference_two_step(model, X, y, asam_eps, lr)
    build_optimizer(make_config("asam", rho=rho, lr=lr), model).step(model, X, y, F.cross_entropy)
    for p, e in zip(params(model), expected, strict=True):
        torch.testing.assert_close(p, e, rtol=1e-12, atol=1e-14)


def test_ejr_direction_is_sum_of_jacobian_noise_products():
    rho, lr, seed = 0.2, 0.1, 7
    model = make_model()
    X, y = make_data()
    noise = torch.randn(N, K, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    J, _ = oracles.dense_jacobian(model, X)
    v = list(oracles.split(model, torch.einsum("nk,nkp->p", noise, J)).values())
    norm = torch.sqrt(sum((vi * vi).sum() for vi in v))
    expected_eps = [rho * vi / norm for vi in v]
    expected = reference_two_step(model, X, y, lambda theta, g0: expected_eps, lr)

    log = []
    method = build_optimizer(make_config("ejr", rho=rho, lr=lr, seed=seed), model)
    method.step(model, X, y, recording(F.cross_entropy, model, log))
    for a, b, e in zip(log[0], log[1], expected_eps, strict=True):
        torch.testing.assert_close(b - a, e, rtol=1e-9, atol=1e-12)
    for p, e in zip(params(model), expected, strict=True):
        torch.testing.assert_close(p, e, rtol=1e-12, atol=1e-14)


def test_jacobian_penalty_on_linear_model_is_plain_gd():
    # z = Wx + b: J does not depend on θ, so the penalty has zero gradient and the update is GD.
    torch.manual_seed(0)
    model = nn.Linear(D, K).double()
    ref = copy.deepcopy(model)
    X, y = make_data()
    method = build_optimizer(make_config("jacobian-penalty", beta=10.0, lr=0.1), model)
    loss = method.step(model, X, y, F.cross_entropy)
    g = flat_grad(ref, params(ref), X, y)
    assert loss == pytest.approx(F.cross_entropy(ref(X), y).item(), rel=1e-15)
    for p, r, gi in zip(params(model), params(ref), g, strict=True):
        torch.testing.assert_close(p, r - 0.1 * gi, rtol=1e-12, atol=1e-14)
    # ...and the penalty equals its closed form ‖Σ ε_i x_iᵀ‖² + ‖Σ ε_i‖², over N.
    noise = torch.randn(N, K, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    closed = ((noise.T @ X) ** 2).sum() + (noise.sum(0) ** 2).sum()
    assert method.last_penalty == pytest.approx(closed.item() / N, rel=1e-12)


def penalty_reference(model, X, noise):
    """θ ↦ (‖Σ_i J_i(θ) ε_i‖² / N, its gradient by name), θ a parameter dict
    (tests/oracles.py)."""

    def fn(p):
        value, grad = oracles.jacobian_penalty(oracles.with_parameters(model, p), X, noise)
        return value, oracles.split(model, grad)

    return fn


def test_jacobian_penalty_gradient_matches_the_oracle_and_finite_differences():
    beta, lr, seed = 0.3, 0.1, 3
    model = make_model()
    X, y = make_data()
    noise = torch.randn(N, K, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    theta = named(model)
    pen = penalty_reference(model, X, noise)
    pen_value, grad_pen = pen(theta)
    grad_loss = oracles.split(model, oracles.dense_gradient(model, X, y))

    # Central finite difference of the penalty along a random direction.
    d = {k: torch.randn_like(v) for k, v in theta.items()}
    h = 1e-5
    fd = (pen({k: v + h * d[k] for k, v in theta.items()})[0]
          - pen({k: v - h * d[k] for k, v in theta.items()})[0]) / (2 * h)
    directional = sum((grad_pen[k] * d[k]).sum() for k in theta)
    assert fd.item() == pytest.approx(directional.item(), rel=1e-6)

    method = build_optimizer(make_config("jacobian-penalty", beta=beta, lr=lr, seed=seed), model)
    method.step(model, X, y, F.cross_entropy)
    assert method.last_penalty == pytest.approx(pen_value.item(), rel=1e-12)
    for k, p in model.named_parameters():
        expected = theta[k] - lr * (grad_loss[k] + beta * grad_pen[k])
        torch.testing.assert_close(p.detach(), expected, rtol=1e-12, atol=1e-14)


def test_jacobian_penalty_expectation_is_mean_frobenius_norm():
    model = make_model()
    X, _ = make_data()
    rows = oracles.dense_jacobian(model, X)[0].reshape(N * K, -1)  # (N·K, P)
    q = rows @ rows.T  # covariance structure of ε ↦ ‖Σ J_i ε_i‖² = εᵀ Q ε
    mean = torch.trace(q) / N  # Σ_i ‖J_i‖_F² / N
    std = math.sqrt(2 * (q * q).sum().item()) / N  # Var εᵀQε = 2 tr(Q²)
    method = build_optimizer(make_config("jacobian-penalty"), model)
    n = 1000
    draws = torch.stack([method.penalty(model(X)).detach() for _ in range(n)])
    assert abs(draws.mean().item() - mean.item()) < 4 * std / math.sqrt(n)
    assert draws.std().item() == pytest.approx(std, rel=0.15)


def test_set_lr_and_set_rho_take_effect_next_step():
    model = make_model()
    X, y = make_data()
    method = build_optimizer(make_config("sam", rho=0.05, lr=0.1), model)
    method.step(model, X, y, F.cross_entropy)
    method.set_lr(0.4)
    method.set_rho(0.0)
    assert (method.lr, method.rho) == (0.4, 0.0)
    theta0 = params(model)
    method.step(model, X, y, F.cross_entropy)
    g = flat_grad(model, theta0, X, y)  # ρ = 0: SAM's gradient is the plain gradient
    assert_equal(params(model), sgd_update(theta0, g, 0.4))
    method.set_rho(0.7)
    log = []
    method.step(model, X, y, recording(F.cross_entropy, model, log))
    eps = [b - a for a, b in zip(log[0], log[1], strict=True)]
    assert norm(eps) == pytest.approx(0.7, rel=1e-9)


@pytest.mark.parametrize("bad", [0.0, -1.0, math.nan, math.inf])
def test_invalid_lr_and_rho_rejected(bad):
    method = build_optimizer(make_config("sam"), make_model())
    with pytest.raises(ValueError, match="lr"):
        method.set_lr(bad)
    if bad != 0.0:
        with pytest.raises(ValueError, match="rho"):
            method.set_rho(bad)
    assert (method.lr, method.rho) == (0.1, 0.05)


class Point(nn.Module):
    """The 'logits' are the parameter vector itself, for a loss that is a quadratic in θ."""

    def __init__(self, w0):
        super().__init__()
        self.w = nn.Parameter(w0.clone())

    def forward(self, X):
        return self.w


def test_gd_on_quadratic_follows_closed_form():
    a = torch.tensor([0.5, 2.0, 3.5], dtype=torch.float64)
    w0 = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    lr = 0.5  # 1 - lr·a = 0.75, 0, -0.75: decay, one-step convergence, oscillation

    def quadratic(w, y):
        return 0.5 * (a * w * w).sum()

    model = Point(w0)
    method = build_optimizer(make_config("gd", lr=lr), model)
    for t in range(6):
        w_t = (1 - lr * a) ** t * w0
        loss = method.step(model, None, None, quadratic)
        assert loss == pytest.approx(0.5 * (a * w_t * w_t).sum().item(), rel=1e-14, abs=1e-300)
        torch.testing.assert_close(model.w.detach(), (1 - lr * a) ** (t + 1) * w0)


@pytest.mark.parametrize("name", ["ejr", "jacobian-penalty", "sam"])
def test_same_seed_same_trajectory(name):
    def trajectory(seed):
        model = make_model()
        method = build_optimizer(make_config(name, seed=seed, rho=0.1, momentum=0.5), model)
        X, y = make_data()
        losses = [method.step(model, X, y, F.cross_entropy) for _ in range(4)]
        return losses, params(model)

    losses, theta = trajectory(0)
    losses_again, theta_again = trajectory(0)
    assert losses == losses_again
    assert_equal(theta, theta_again)
    if name != "sam":  # random methods: another seed gives another trajectory
        _, theta_other = trajectory(1)
        assert not all(torch.equal(a, b) for a, b in zip(theta, theta_other, strict=True))


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_zero_gradient_gives_no_nan(name):
    # x = 0 and no bias: z = 0 for every θ, so ∇L = 0 and every J_i = 0 (v = 0).
    model = nn.Linear(D, K, bias=False)
    theta0 = params(model)
    method = build_optimizer(make_config(name, rho=0.5), model)
    X, y = torch.zeros(N, D), torch.zeros(N, dtype=torch.long)
    loss = method.step(model, X, y, F.cross_entropy)
    assert loss == pytest.approx(math.log(K))
    assert_equal(params(model), theta0)


def test_state_dict_resumes_bit_exactly():
    X, y = make_data()
    model = make_model()
    method = build_optimizer(make_config("ejr", rho=0.1, momentum=0.9), model)
    for _ in range(2):
        method.step(model, X, y, F.cross_entropy)
    state, theta = copy.deepcopy(method.state_dict()), params(model)
    for _ in range(2):
        method.step(model, X, y, F.cross_entropy)

    resumed = make_model(seed=5)
    with torch.no_grad():
        for p, t in zip(resumed.parameters(), theta, strict=True):
            p.copy_(t)
    other = build_optimizer(make_config("ejr", rho=0.3, seed=9, momentum=0.9), resumed)
    other.load_state_dict(state)
    for _ in range(2):
        other.step(resumed, X, y, F.cross_entropy)
    assert other.rho == 0.1
    assert_equal(params(resumed), params(model))
