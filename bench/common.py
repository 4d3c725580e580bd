"""Shared setup for the benchmarks: the digits setting of SCIENCE.md and a timer."""

from __future__ import annotations

import statistics
import time

import torch
from sklearn.datasets import load_digits
from torch import nn


def digits(n: int = 1024, dtype=torch.float32):
    """First n digits, standardised (features with zero spread left at 0)."""
    X, y = load_digits(return_X_y=True)
    X, y = X[:n], y[:n]
    X = (X - X.mean(0)) / X.std(0).clip(min=1e-8)
    return torch.tensor(X, dtype=dtype), torch.tensor(y, dtype=torch.long)


def mlp(seed: int = 0) -> nn.Module:
    """MLP 64-128-128-10, tanh, PyTorch default init."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(64, 128), nn.Tanh(), nn.Linear(128, 128), nn.Tanh(),
                         nn.Linear(128, 10))


class DigitsCNN(nn.Module):
    """A small CNN on 1×8×8 digits."""

    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(1, 8, 3, padding=1)
        self.c2 = nn.Conv2d(8, 16, 3, stride=2, padding=1)
        self.fc = nn.Linear(16 * 4 * 4, 10)

    def forward(self, x):
        x = x.view(-1, 1, 8, 8)
        return self.fc(torch.tanh(self.c2(torch.tanh(self.c1(x)))).flatten(1))


def cnn(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return DigitsCNN()


def median_time(fn, repeats: int = 5, warmup: int = 1) -> float:
    """Median wall time of fn() in seconds."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)
