"""Shared case tables: tiny models for brute-force oracles."""

from __future__ import annotations

import os

import pytest
import torch
from torch import nn

from ijr_core.threads import set_budget

# IJR_TEST_THREADS: the suite must pass with any thread count (run it with 1 and 2); no
# thread trials, so the same seed gives identical scalars.
_THREADS = int(os.environ.get("IJR_TEST_THREADS", "1"))
torch.set_num_threads(_THREADS)
set_budget(_THREADS)


class SmallCNN(nn.Module):
    """Conv -> tanh -> conv (stride 2, padding) -> flatten -> linear, on 1×6×6 inputs."""

    def __init__(self, k: int = 3):
        super().__init__()
        self.c1 = nn.Conv2d(1, 3, 3, padding=1)
        self.c2 = nn.Conv2d(3, 2, 3, stride=2, padding=1)
        self.fc = nn.Linear(2 * 3 * 3, k)

    def forward(self, x):
        x = torch.tanh(self.c1(x))
        x = torch.relu(self.c2(x))
        return self.fc(x.flatten(1))


class TwoPathModel(nn.Module):
    """A model the fast path cannot take (a layer is used twice): exercises the generic path."""

    def __init__(self):
        super().__init__()
        self.a = nn.Linear(4, 4)
        self.out = nn.Linear(4, 3)

    def forward(self, x):
        return self.out(torch.sin(self.a(torch.tanh(self.a(x)))))


def mlp(act: type[nn.Module], k: int = 3) -> nn.Module:
    return nn.Sequential(nn.Linear(5, 6), act(), nn.Linear(6, 4), act(), nn.Linear(4, k))


def frozen_first_layer() -> nn.Module:
    m = mlp(nn.Tanh)
    m[0].weight.requires_grad_(False)
    m[2].bias.requires_grad_(False)
    return m


# name -> (model factory, input shape per sample)
MODEL_CASES = {
    "mlp-tanh": (lambda: mlp(nn.Tanh), (5,)),
    "mlp-relu": (lambda: mlp(nn.ReLU), (5,)),
    "mlp-gelu": (lambda: mlp(nn.GELU), (5,)),
    "mlp-softplus-k2": (lambda: mlp(nn.Softplus, k=2), (5,)),
    "cnn": (SmallCNN, (1, 6, 6)),
    "frozen": (frozen_first_layer, (5,)),
    "generic-only": (TwoPathModel, (4,)),
}


@pytest.fixture(params=sorted(MODEL_CASES))
def model_case(request):
    """(name, model in float64, X (7 samples), y) for each tiny model."""
    torch.manual_seed(0)
    factory, shape = MODEL_CASES[request.param]
    model = factory().double()
    X = torch.randn(7, *shape, dtype=torch.float64)
    with torch.no_grad():
        K = model(X).shape[1]
    y = torch.randint(0, K, (7,))
    return request.param, model, X, y
