"""The explicit MLP Jacobian products against dense Jacobians and Hessians (tests/oracles.py)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from ijr_core import curvature as cv
from ijr_core.curvature import CurvatureGraph, logit_jacobian_gram
from ijr_core.mlp_jacobian import MLPJacobian, mlp_chain
from ijr_core.op_gram import op_gram
from tests import oracles


def _no_bias() -> nn.Module:
    return nn.Sequential(nn.Linear(4, 5, bias=False), nn.ReLU(), nn.Linear(5, 3, bias=False))


def _frozen() -> nn.Module:
    m = nn.Sequential(nn.Linear(4, 5), nn.Tanh(), nn.Linear(5, 6), nn.GELU(), nn.Linear(6, 3))
    m[0].weight.requires_grad_(False)
    m[2].bias.requires_grad_(False)
    return m


def _frozen_last() -> nn.Module:
    m = nn.Sequential(nn.Linear(4, 5), nn.Tanh(), nn.Linear(5, 3))
    m[2].weight.requires_grad_(False)
    return m


CASES = {
    "tanh-deep": (lambda: nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 5), nn.Tanh(),
                                        nn.Linear(5, 5), nn.Tanh(), nn.Linear(5, 3)), (4,)),
    "gelu-flatten": (lambda: nn.Sequential(nn.Flatten(), nn.Linear(6, 5), nn.GELU(),
                                           nn.Linear(5, 4), nn.Softplus(), nn.Linear(4, 3)),
                     (2, 3)),
    "sigmoid-leaky-identity": (lambda: nn.Sequential(
        nn.Linear(4, 5), nn.Sigmoid(), nn.Linear(5, 5), nn.LeakyReLU(0.2), nn.Linear(5, 4),
        nn.Identity(), nn.Linear(4, 3)), (4,)),
    "elu-silu": (lambda: nn.Sequential(nn.Linear(4, 5), nn.ELU(), nn.Linear(5, 4), nn.SiLU(),
                                       nn.Linear(4, 3)), (4,)),
    "softmax-regression": (lambda: nn.Sequential(nn.Linear(4, 3)), (4,)),
    "no-bias-relu": (_no_bias, (4,)),
    "frozen": (_frozen, (4,)),
    "frozen-last": (_frozen_last, (4,)),
}


@pytest.fixture(params=sorted(CASES))
def case(request):
    factory, shape = CASES[request.param]
    torch.manual_seed(3)
    model = factory().double()
    X = torch.randn(7, *shape, dtype=torch.float64)
    return model, X


def test_recorded_forward_equals_the_model(case):
    model, X = case
    torch.testing.assert_close(MLPJacobian(X, *mlp_chain(model)).z, model(X), rtol=0, atol=0)


def test_products_equal_dense_jacobian(case):
    model, X = case
    J, _ = oracles.dense_jacobian(model, X)  # (N, K, P)
    mlp = MLPJacobian(X, *mlp_chain(model))
    gen = torch.Generator().manual_seed(0)
    v = torch.randn(J.shape[-1], generator=gen, dtype=torch.float64)
    w = torch.randn(J.shape[:2], generator=gen, dtype=torch.float64)
    torch.testing.assert_close(mlp.jvp(v), J @ v, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(mlp.vjp(w), torch.einsum("nkp,nk->p", J, w), rtol=1e-10,
                               atol=1e-12)
    torch.testing.assert_close(mlp.gram(), J @ J.transpose(1, 2), rtol=1e-10, atol=1e-12)


def test_mlp_gram_equals_generic_and_replicated_paths(case):
    model, X = case
    mlp = MLPJacobian(X, *mlp_chain(model)).gram()
    torch.testing.assert_close(mlp, logit_jacobian_gram(model, X, method="generic"),
                               rtol=1e-10, atol=1e-12)
    replicated = op_gram(model, X)  # the per-operation route, on the replicated batch
    torch.testing.assert_close(mlp, replicated, rtol=1e-10, atol=1e-12)


def test_graph_products_match_autograd_and_dense_g():
    torch.manual_seed(4)
    model = CASES["tanh-deep"][0]().double()
    X = torch.randn(9, 4, dtype=torch.float64)
    y = torch.randint(0, 3, (9,))
    v = torch.randn(cv.num_parameters(model), dtype=torch.float64)
    w = torch.randn(9, 3, dtype=torch.float64)
    graph = CurvatureGraph(model, X, y)
    assert isinstance(graph.linearization, MLPJacobian)
    auto = cv._LogitLinearization(graph.model, graph.model(X), graph.params)  # its own copy
    torch.testing.assert_close(graph.linearization.jvp(v), auto.jvp(v))
    torch.testing.assert_close(graph.linearization.vjp(w), auto.vjp(w))
    J, z = oracles.dense_jacobian(model, X)
    G = oracles.dense_ggn(J, z)
    torch.testing.assert_close(graph.gvp(v), G @ v, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(graph.gram(), J @ J.transpose(1, 2))
    for chunk in (1, 4, 100):  # sample blocks, including a ragged last one
        torch.testing.assert_close(graph.linearization.gram(chunk), J @ J.transpose(1, 2))


@pytest.mark.parametrize("loss", ["ce", "mse"])
def test_explicit_gradient_and_hvp_equal_dense_hessian(case, loss):
    """Back-propagation and the R-operator against the dense Hessian of the mean loss."""
    model, X = case
    y = torch.arange(X.shape[0]) % 3
    H = oracles.dense_hessian(model, X, y, loss)
    grad = oracles.dense_gradient(model, X, y, loss)
    graph = CurvatureGraph(model, X, y, loss=loss)
    assert isinstance(graph.linearization, MLPJacobian)
    torch.testing.assert_close(graph.gradient(), grad, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(float(graph.value),
                               float(oracles.loss_of(model(X), y, loss).detach()))
    for seed in range(3):
        v = torch.randn(H.shape[0], generator=torch.Generator().manual_seed(seed),
                        dtype=torch.float64)
        torch.testing.assert_close(graph.hvp(v), H @ v, rtol=1e-9, atol=1e-11)


def test_hvp_without_labels_is_a_clear_error():
    model = nn.Sequential(nn.Linear(4, 5), nn.Tanh(), nn.Linear(5, 3))
    graph = CurvatureGraph(model, torch.randn(3, 4))
    with pytest.raises(ValueError, match="need labels"):
        graph.hvp(torch.zeros(cv.num_parameters(model)))


def test_wrong_vector_length_is_a_clear_error():
    model = nn.Sequential(nn.Linear(4, 5), nn.Tanh(), nn.Linear(5, 3))
    mlp = MLPJacobian(torch.randn(3, 4), *mlp_chain(model))
    with pytest.raises(ValueError, match="length 43"):
        mlp.jvp(torch.zeros(44))


def test_chain_detection():
    assert mlp_chain(nn.Sequential(nn.Linear(3, 3), nn.Dropout(), nn.Linear(3, 2))) is None
    assert mlp_chain(nn.Sequential(nn.Linear(3, 3), nn.ReLU(inplace=True),
                                   nn.Linear(3, 2))) is None
    assert mlp_chain(nn.Sequential(nn.Linear(3, 3), nn.Tanh())) is None
    assert mlp_chain(nn.Linear(3, 2)) is None
    linears, acts = mlp_chain(nn.Sequential(nn.Flatten(), nn.Linear(3, 3), nn.ELU(),
                                            nn.Linear(3, 2)))
    assert len(linears) == 2 and len(acts) == 1


def test_chain_rejects_what_the_recorded_forward_would_get_wrong():
    """Hooks, tied weights and re-parametrised weights change what model(X) computes or
    which parameters exist: such models take the autograd path."""
    hooked = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))
    hooked[1].register_forward_hook(lambda m, i, o: 2 * o)
    shared = nn.Linear(4, 4)
    tied = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), shared, nn.Tanh(), shared, nn.Tanh(),
                         nn.Linear(4, 2))
    extra = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))
    extra.register_parameter("scale", nn.Parameter(torch.ones(1)))
    for model in (hooked, tied, extra):
        assert mlp_chain(model) is None
    X, y = torch.randn(6, 3), torch.tensor([0, 1, 0, 1, 1, 0])
    graph = CurvatureGraph(hooked, X, y)
    torch.testing.assert_close(graph.z, hooked(X))  # the hook is applied
