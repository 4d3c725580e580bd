"""Models by name: `build_model(config, dataset) -> nn.Module` mapping (N, D) -> logits (N, K).

All models are `nn.Sequential` stacks of nn.Linear / nn.Conv2d, element-wise activations
and reshapes (nn.Unflatten, nn.Flatten) only, so per-layer Jacobian formulas apply.

- ``mlp``:    D → [Linear(width), act] × depth → Linear(K)
              (defaults: 64-128-128-10 tanh on digits);
- ``cnn``:    Unflatten to (C, H, W) → [Conv2d(width, 3×3, stride 2, padding 1), act] × depth
              → Flatten → Linear(K); each conv halves H and W (rounding up), so it works on
              8×8 digits, 28×28 MNIST and 32×32 CIFAR-10 alike;
- ``linear``: Linear(D, K), softmax regression: z = Wx + b, so the Jacobian ∂z/∂θ depends
              on x only, never on θ.

Parameters get PyTorch's default initialisation drawn from a generator seeded with
``config.seed`` (the global RNG is left untouched): same seed → identical parameters.
Models are built on the CPU; the trainer moves them to the device.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import torch
from torch import nn

from ijr_core.config import (
    ACTIVATION_NAMES,
    MODEL_NAMES,
    ConfigError,
    RunConfig,
    check_work,
    registrar,
)

__all__ = ["ACTIVATIONS", "MODELS", "build_model", "conv_output_size"]

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "tanh": nn.Tanh,
    "relu": nn.ReLU,
    "gelu": nn.GELU,
    "elu": nn.ELU,
    "softplus": nn.Softplus,
}
assert tuple(ACTIVATIONS) == ACTIVATION_NAMES

MODELS: dict[str, Callable] = {}


register = registrar(MODELS, MODEL_NAMES)  # @register(name) adds to MODELS


# Layers initialise from torch's global generator: models built in parallel threads (a
# sweep) take turns, so that each gets exactly the weights its seed gives.
_GLOBAL_RNG = threading.Lock()


def build_model(config: RunConfig, dataset) -> nn.Module:
    """The model ``config.model`` for `dataset`, initialised from ``config.seed``; a
    ConfigError, before anything is allocated, when it would exceed config.LIMITS."""
    check_work(config, _in_features(dataset), int(dataset.n_classes),
               getattr(dataset, "image_shape", None))
    with _GLOBAL_RNG, torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        return MODELS[config.model](config, dataset)


def _in_features(dataset) -> int:
    return int(torch.Size(dataset.input_shape).numel())


@register("mlp")
def _mlp(config: RunConfig, dataset) -> nn.Sequential:
    layers: list[nn.Module] = []
    width_in = _in_features(dataset)
    for _ in range(config.depth):
        layers += [nn.Linear(width_in, config.width), ACTIVATIONS[config.activation]()]
        width_in = config.width
    layers.append(nn.Linear(width_in, dataset.n_classes))
    return nn.Sequential(*layers)


def conv_output_size(size: int, depth: int) -> int:
    """Side length after `depth` 3×3 convs with stride 2, padding 1: ⌈size / 2⌉ each."""
    for _ in range(depth):
        size = (size - 1) // 2 + 1
    return size


@register("cnn")
def _cnn(config: RunConfig, dataset) -> nn.Sequential:
    shape = getattr(dataset, "image_shape", None)
    if shape is None:
        raise ConfigError("model", "cnn", f"cnn needs image data; {dataset.name!r} is not")
    c, h, w = shape
    layers: list[nn.Module] = [nn.Unflatten(1, (c, h, w))]
    for _ in range(config.depth):
        layers += [
            nn.Conv2d(c, config.width, kernel_size=3, stride=2, padding=1),
            ACTIVATIONS[config.activation](),
        ]
        c = config.width
    h, w = conv_output_size(h, config.depth), conv_output_size(w, config.depth)
    layers += [nn.Flatten(), nn.Linear(c * h * w, dataset.n_classes)]
    return nn.Sequential(*layers)


@register("linear")
def _linear(config: RunConfig, dataset) -> nn.Sequential:
    return nn.Sequential(nn.Linear(_in_features(dataset), dataset.n_classes))
