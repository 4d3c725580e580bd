"""Models: architectures, output shapes, seeded PyTorch-default init, layer types."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from torch import nn

from ijr_core.config import ACTIVATION_NAMES, ConfigError, RunConfig
from ijr_core.data import load_dataset
from ijr_core.models import ACTIVATIONS, MODELS, build_model, conv_output_size
from tests import oracles

DIGITS = load_dataset(RunConfig(n_train=64, n_test=16))


def _fake(image_shape=None, d=None, k=10):
    """Minimal stand-in for a Dataset: what build_model reads."""
    if d is None:
        c, h, w = image_shape
        d = c * h * w
    return SimpleNamespace(name="fake", input_shape=(d,), n_classes=k, image_shape=image_shape)


def _linears(model):
    return [m for m in model.modules() if isinstance(m, nn.Linear)]


def test_default_mlp_is_64_128_128_10_tanh():
    model = build_model(RunConfig(), DIGITS)
    shapes = [(m.in_features, m.out_features) for m in _linears(model)]
    assert shapes == [(64, 128), (128, 128), (128, 10)]
    assert sum(isinstance(m, nn.Tanh) for m in model.modules()) == 2
    out = model(DIGITS.X_train)
    assert out.shape == (64, 10) and out.dtype == torch.float32


@pytest.mark.parametrize("activation", ACTIVATION_NAMES)
@pytest.mark.parametrize("depth", [1, 3])
def test_mlp_width_depth_activation(activation, depth):
    c = RunConfig(width=7, depth=depth, activation=activation)
    model = build_model(c, DIGITS)
    assert len(_linears(model)) == depth + 1
    acts = [m for m in model.modules() if isinstance(m, ACTIVATIONS[activation])]
    assert len(acts) == depth
    assert model(DIGITS.X_train[:5]).shape == (5, 10)


@pytest.mark.parametrize("shape", [(1, 8, 8), (1, 28, 28), (3, 32, 32), (1, 4, 5)])
@pytest.mark.parametrize("depth", [1, 2, 3])
def test_cnn_output_shapes(shape, depth):
    data = _fake(shape, k=7)
    model = build_model(RunConfig(model="cnn", width=4, depth=depth), data)
    X = torch.randn(3, data.input_shape[0])
    assert model(X).shape == (3, 7)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == depth and convs[0].in_channels == shape[0]
    h = model[: 1 + 2 * depth](X).shape  # after the last activation
    assert h[2:] == (conv_output_size(shape[1], depth), conv_output_size(shape[2], depth))


def test_cnn_on_digits_reshapes_rows_as_images():
    c = RunConfig(model="cnn", width=3, depth=1)
    model = build_model(c, DIGITS)
    x = DIGITS.X_train[:2]
    conv = model[1]
    expected = conv(x.reshape(2, 1, 8, 8))
    torch.testing.assert_close(model[:2](x), expected)


def test_cnn_needs_image_data():
    moons = load_dataset(RunConfig(dataset="moons", n_train=10, n_test=5))
    with pytest.raises(ConfigError, match="cnn needs image data"):
        build_model(RunConfig(model="cnn"), moons)


def test_linear_model_is_softmax_regression_with_theta_free_jacobian():
    model = build_model(RunConfig(model="linear"), DIGITS)
    (layer,) = _linears(model)
    assert (layer.in_features, layer.out_features) == (64, 10)
    x = DIGITS.X_train[:3]
    params = dict(model.named_parameters())
    other = oracles.with_parameters(model, {k: torch.randn_like(v) * 5 for k, v in params.items()})
    # (N, K, P) over all parameters: elementwise the per-parameter Jacobians, concatenated
    torch.testing.assert_close(oracles.dense_jacobian(model, x)[0],
                               oracles.dense_jacobian(other, x)[0])


@pytest.mark.parametrize("name", ["mlp", "cnn", "linear"])
def test_same_seed_same_parameters_and_global_rng_untouched(name):
    c = RunConfig(model=name, width=8)
    torch.manual_seed(123)
    expected_next = torch.rand(3)
    torch.manual_seed(123)
    a = build_model(c, DIGITS)
    assert torch.equal(torch.rand(3), expected_next)  # global RNG state not consumed
    b = build_model(c, DIGITS)
    other = build_model(c.replace(seed=1), DIGITS)
    for (na, pa), (nb, pb), (_, po) in zip(a.named_parameters(), b.named_parameters(),
                                          other.named_parameters(), strict=True):
        assert na == nb and torch.equal(pa, pb)
        assert not torch.equal(pa, po)


def test_init_is_pytorch_default():
    c = RunConfig(width=16, depth=2, seed=5)
    model = build_model(c, DIGITS)
    torch.manual_seed(5)
    reference = nn.Sequential(nn.Linear(64, 16), nn.Tanh(), nn.Linear(16, 16), nn.Tanh(),
                              nn.Linear(16, 10))
    for p, q in zip(model.parameters(), reference.parameters(), strict=True):
        assert torch.equal(p, q)


@pytest.mark.parametrize("name", ["mlp", "cnn", "linear"])
def test_models_use_only_fast_path_layers(name):
    model = build_model(RunConfig(model=name, width=4), DIGITS)
    allowed = (nn.Sequential, nn.Linear, nn.Conv2d, nn.Flatten, nn.Unflatten,
               *ACTIVATIONS.values())
    assert all(isinstance(m, allowed) for m in model.modules())
    owners = [m for m in model.modules() if list(m.parameters(recurse=False))]
    assert all(type(m) in (nn.Linear, nn.Conv2d) for m in owners)


def test_registry_and_mlp_on_2d_and_mse_shapes():
    assert set(MODELS) == {"mlp", "cnn", "linear"}
    model = build_model(RunConfig(dataset="spirals", n_classes=4, loss="mse"), _fake(d=2, k=4))
    assert model(torch.zeros(6, 2)).shape == (6, 4)
