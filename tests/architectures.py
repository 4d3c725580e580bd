"""Models users actually write, small enough for dense references (P of a few hundred).

Each factory takes a seed and returns ``(model, X, y)`` in float64. The table covers the code
paths of the probe (explicit MLP, Linear/Conv2d hooks, generic) and the ways a model can be
built that a careless probe breaks: a module used twice, tied raw parameters,
parametrizations, hooks, batch norm, layer norm, dropout, residual connections, frozen
layers and a custom module that uses one raw weight twice.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize

K = 3


def _data(seed: int, shape: tuple[int, ...], n: int = 12, k: int = K):
    g = torch.Generator().manual_seed(seed + 100)
    X = torch.randn(n, *shape, generator=g, dtype=torch.float64)
    y = torch.randint(0, k, (n,), generator=g)
    return X, y


def mlp(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, K)).double(), *_data(seed, (4,))


def shared_block(seed=0):
    """The same Linear at two places of a Sequential (functional_call breaks it)."""
    torch.manual_seed(seed)
    block = nn.Linear(5, 5)
    model = nn.Sequential(nn.Linear(4, 5), nn.Tanh(), block, nn.Tanh(), block, nn.Tanh(),
                          nn.Linear(5, K))
    return model.double(), *_data(seed, (4,))


class TiedAutoencoderClassifier(nn.Module):
    """One raw Parameter registered in two modules (decoder weight tied to the encoder's)."""

    def __init__(self):
        super().__init__()
        self.enc = nn.Linear(4, 3, bias=False)
        self.dec = nn.Linear(3, 4, bias=False)
        self.dec.weight = self.enc.weight  # tied: (3, 4) used as (out 4, in 3) below
        self.head = nn.Linear(4, K)

    def forward(self, x):
        h = torch.tanh(self.enc(x))
        r = F.linear(h, self.dec.weight.t())
        return self.head(torch.tanh(r + x))


def tied(seed=0):
    torch.manual_seed(seed)
    return TiedAutoencoderClassifier().double(), *_data(seed, (4,))


class _Symmetric(nn.Module):
    def forward(self, w):
        return 0.5 * (w + w.t())


def parametrized(seed=0):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(4, 5), nn.Tanh(), nn.Linear(5, 5), nn.Tanh(), nn.Linear(5, K))
    parametrize.register_parametrization(model[2], "weight", _Symmetric())
    return model.double(), *_data(seed, (4,))


def hooked(seed=0):
    """A forward hook that changes the output and a pre-hook that counts calls."""
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, K)).double()
    model[0].register_forward_hook(lambda m, i, o: 0.5 * o)
    model[2].register_forward_pre_hook(lambda m, i: None)
    return model, *_data(seed, (4,))


class ResidualBNCNN(nn.Module):
    """Conv -> BN -> ReLU with a residual block, global pooling, linear head."""

    def __init__(self, c: int = 3):
        super().__init__()
        self.stem = nn.Conv2d(1, c, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(c)
        self.conv = nn.Conv2d(c, c, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(c)
        self.head = nn.Linear(c, K)

    def forward(self, x):
        h = F.relu(self.bn1(self.stem(x)))
        h = F.relu(h + self.bn2(self.conv(h)))
        return self.head(h.mean((2, 3)))


def bn_resnet(seed=0):
    torch.manual_seed(seed)
    model = ResidualBNCNN().double()
    with torch.no_grad():  # running statistics far from the batch's, as early in training
        model.bn1.running_mean.fill_(0.5)
        model.bn1.running_var.fill_(4.0)
    return model, *_data(seed, (1, 5, 5))


class TransformerBlock(nn.Module):
    """Pre-LayerNorm self-attention + GELU MLP over a short sequence, mean-pooled."""

    def __init__(self, d: int = 4, t: int = 3):
        super().__init__()
        self.embed = nn.Linear(2, d)
        self.ln1 = nn.LayerNorm(d)
        self.qkv = nn.Linear(d, 3 * d)
        self.ln2 = nn.LayerNorm(d)
        self.mlp = nn.Sequential(nn.Linear(d, 2 * d), nn.GELU(), nn.Linear(2 * d, d))
        self.head = nn.Linear(d, K)

    def forward(self, x):  # x: (N, T, 2)
        h = self.embed(x)
        q, k, v = self.qkv(self.ln1(h)).chunk(3, dim=-1)
        att = torch.softmax(q @ k.transpose(1, 2) / q.shape[-1] ** 0.5, dim=-1)
        h = h + att @ v
        h = h + self.mlp(self.ln2(h))
        return self.head(h.mean(1))


def transformer(seed=0):
    torch.manual_seed(seed)
    return TransformerBlock().double(), *_data(seed, (3, 2))


def dropout_mlp(seed=0):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Dropout(0.5), nn.Linear(6, K))
    return model.double(), *_data(seed, (4,))


class RawWeightTwice(nn.Module):
    """A custom module with one raw weight used twice in its forward."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.randn(4, 4) / 2)
        self.b = nn.Parameter(torch.zeros(4))
        self.out = nn.Linear(4, K)

    def forward(self, x):
        h = torch.tanh(x @ self.w + self.b)
        return self.out(torch.tanh(h @ self.w))


def raw_twice(seed=0):
    torch.manual_seed(seed)
    return RawWeightTwice().double(), *_data(seed, (4,))


def frozen(seed=0):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 5), nn.Tanh(),
                          nn.Linear(5, K)).double()
    model[0].weight.requires_grad_(False)
    model[2].bias.requires_grad_(False)
    return model, *_data(seed, (4,))


def small_cnn(seed=0):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.Tanh(), nn.Conv2d(2, 2, 3, stride=2),
                          nn.Tanh(), nn.Flatten(), nn.Linear(8, K))
    return model.double(), *_data(seed, (1, 5, 5))


ARCHITECTURES = {
    "mlp": mlp,
    "cnn": small_cnn,
    "shared-block": shared_block,
    "tied-weights": tied,
    "parametrized": parametrized,
    "hooks": hooked,
    "bn-resnet": bn_resnet,
    "transformer": transformer,
    "dropout": dropout_mlp,
    "raw-weight-twice": raw_twice,
    "frozen": frozen,
}
