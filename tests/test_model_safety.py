"""A user's own model, probed right: never altered, measured as gradient descent trains it.

Over a table of architectures (tests/architectures.py) and both probe modes:
* nothing of the model changes: parameters (identity, values, requires_grad), ``.grad``,
  buffers, train/eval mode of every module, hooks, parametrizations, deep-copyability;
* training after probes is the same as training without them;
* ‖H‖, ‖G‖ and the per-sample ‖J‖² equal dense autograd references (tests/oracles.py) in
  the mode asked for.
"""

from __future__ import annotations

import copy
import threading

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn.utils import parametrize

from ijr_core import RunWriter, load_run
from ijr_core.curvature import (
    CurvatureGraph,
    logit_jacobian_gram,
    sharpness,
    top_eigenpairs,
)
from ijr_core.model_view import ModelError
from ijr_core.probe import probe
from tests import oracles
from tests.architectures import ARCHITECTURES

MODES = ("train", "eval")
_HOOK_DICTS = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks",
               "_backward_pre_hooks", "_forward_hooks_with_kwargs",
               "_forward_pre_hooks_with_kwargs", "_state_dict_hooks",
               "_load_state_dict_pre_hooks")


def fingerprint(model: nn.Module) -> dict:
    """Everything a probe could change, with tensors cloned and identities kept."""
    params = {
        name: (id(p), type(p), p.detach().clone(), p.requires_grad,
               None if p.grad is None else (id(p.grad), p.grad.to_dense().clone()))
        for name, p in model.named_parameters(remove_duplicate=False)
    }
    buffers = {name: (id(b), b.clone()) for name, b in model.named_buffers(remove_duplicate=False)}
    modules = {}
    for name, m in model.named_modules(remove_duplicate=False):
        hooks = tuple((attr, tuple(getattr(m, attr, {}).items())) for attr in _HOOK_DICTS)
        modules[name] = (id(m), type(m), m.training, hooks, parametrize.is_parametrized(m))
    return {"params": params, "buffers": buffers, "modules": modules}


def assert_same(before: dict, after: dict) -> None:
    assert before["params"].keys() == after["params"].keys()
    for name, (pid, ptype, value, req, grad) in before["params"].items():
        pid2, ptype2, value2, req2, grad2 = after["params"][name]
        assert (pid, ptype, req) == (pid2, ptype2, req2), f"parameter {name} was replaced"
        assert torch.equal(value, value2), f"parameter {name} changed value"
        if grad is None:
            assert grad2 is None, f"{name}.grad appeared"
        else:
            assert grad2 is not None and grad[0] == grad2[0] and torch.equal(grad[1], grad2[1]), \
                f"{name}.grad changed"
    assert before["buffers"].keys() == after["buffers"].keys()
    for name, (bid, value) in before["buffers"].items():
        bid2, value2 = after["buffers"][name]
        assert bid == bid2 and torch.equal(value, value2), f"buffer {name} changed"
    assert before["modules"] == after["modules"]


def with_grads(model, X, y):
    """The model as a training loop leaves it: train mode, ``.grad`` set."""
    model.train()
    loss = nn.functional.cross_entropy(model(X), y)
    loss.backward()
    return model


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_probe_never_changes_the_model(arch, mode):
    model, X, y = ARCHITECTURES[arch]()
    with_grads(model, X, y)
    before = fingerprint(model)
    for _ in range(2):  # a second probe sees what the first left behind
        snap = probe(model, X, y, X[:5], y[:5], mode=mode, n_eigs=2, eig_tol=1e-6)
        assert np.isfinite(snap["sharpness"])
    assert_same(before, fingerprint(model))
    copy.deepcopy(model)  # still copyable (a probe that broke sharing made this raise)


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_public_curvature_functions_never_change_the_model(arch):
    model, X, y = ARCHITECTURES[arch]()
    with_grads(model, X, y)
    if arch == "dropout":  # these measure the model as it is: train-mode dropout is random
        model.eval()
    before = fingerprint(model)
    logit_jacobian_gram(model, X)
    logit_jacobian_gram(model, X, method="generic")
    sharpness(model, X, y, tol=1e-4)
    CurvatureGraph(model, X, y).gvp(torch.ones(sum(p.numel() for p in oracles.trainable(model)),
                                               dtype=torch.float64))
    assert_same(before, fingerprint(model))


def test_training_after_probes_equals_training_without(tmp_path):
    """The reported failure: a Linear used twice stopped training after the first probe."""
    runs = []
    for with_probes in (False, True):
        model, X, y = ARCHITECTURES["shared-block"]()
        opt = torch.optim.SGD(model.parameters(), lr=0.5)
        writer = RunWriter(tmp_path / f"w{with_probes}", model, X, y, lr=0.5) \
            if with_probes else None
        for step in range(6):
            loss = nn.functional.cross_entropy(model(X), y)
            opt.zero_grad()
            loss.backward()
            if writer is not None:
                writer.probe(step)
            opt.step()
        runs.append({n: p.detach().clone() for n, p in model.named_parameters()})
        if writer is not None:
            writer.close()
    for name in runs[0]:
        assert torch.equal(runs[0][name], runs[1][name]), f"{name} trained differently"


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_probe_matches_dense_references(arch, mode):
    model, X, y = ARCHITECTURES[arch]()
    model.train()
    snap = probe(model, X, y, mode=mode, n_eigs=1, eig_tol=1e-9)
    H = oracles.dense_hessian(model, X, y, mode=mode)
    J, z = oracles.dense_jacobian(model, X, mode=mode)
    G = oracles.dense_ggn(J, z)
    assert snap["sharpness"] == pytest.approx(oracles.top_eigenvalue(H), rel=1e-6, abs=1e-9)
    assert snap["gn_sharpness"] == pytest.approx(oracles.top_eigenvalue(G), rel=1e-6, abs=1e-9)
    Jn = oracles.frozen_jacobian(model, X)[0] if mode == "train" else J
    np.testing.assert_allclose(snap.samples["jac_spectral_sq"],
                               oracles.per_sample_spectral_sq(Jn).numpy(), rtol=1e-5, atol=1e-7)
    lam, m = snap.samples["lambda_star"], snap.samples["m_norm"]
    assert (lam >= -1e-7).all() and (lam <= m + 1e-6).all()
    coupled = mode == "train" and arch == "bn-resnet"
    if not coupled:  # ⟨λ*‖J‖²⟩ = uᵀGu by construction when samples do not interact
        assert snap["lambda_star_jac"] == pytest.approx(snap["gn_sharpness"], rel=1e-6)


def test_batch_norm_modes_measure_different_functions_and_train_is_what_gd_sees():
    """Train-mode curvature is that of the loss a training step descends; eval-mode differs
    (running statistics far from the batch's)."""
    model, X, y = ARCHITECTURES["bn-resnet"]()
    train = probe(model, X, y, mode="train", eig_tol=1e-9)
    evalm = probe(model, X, y, mode="eval", eig_tol=1e-9)
    assert abs(train["sharpness"] - evalm["sharpness"]) > 1e-3 * train["sharpness"]
    assert torch.all(model.bn1.running_var == 4.0)  # the model keeps its own statistics
    model.train()
    loss = nn.functional.cross_entropy(model(X), y)  # the loss a training step descends
    assert train["train_loss"] == pytest.approx(float(loss.detach()), rel=1e-12)


def test_dropout_is_off_in_both_modes():
    model, X, y = ARCHITECTURES["dropout"]()
    a = probe(model, X, y, mode="train", eig_tol=1e-9)
    b = probe(model, X, y, mode="eval", eig_tol=1e-9)
    assert a["sharpness"] == pytest.approx(b["sharpness"], rel=1e-9)
    assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-12)


def test_writer_records_the_mode_and_buffers_rebuild_the_model(tmp_path):
    model, X, y = ARCHITECTURES["bn-resnet"]()
    model.train()
    with RunWriter(tmp_path / "bn", model, X, y, lr=0.2, probe_mode="train") as w:
        for step in range(3):
            model(X)  # a training forward pass moves the running statistics
            w.probe(step)
    run = load_run(tmp_path / "bn")
    assert run.meta["probe_mode"] == "train" and run.config.probe_mode == "train"
    snapshot = run.params[-1]
    assert "bn1.running_mean" in snapshot and "bn2.running_var" in snapshot
    rebuilt = ARCHITECTURES["bn-resnet"](seed=5)[0]
    rebuilt.load_state_dict({k: torch.from_numpy(np.asarray(v)) for k, v in snapshot.items()})
    model.eval()
    rebuilt.eval()
    torch.testing.assert_close(rebuilt(X), model(X), rtol=1e-6, atol=1e-6)


def test_writer_rejects_a_bad_probe_mode(tmp_path):
    model, X, y = ARCHITECTURES["mlp"]()
    with pytest.raises(ModelError, match="probe_mode must be one of train, eval"):
        RunWriter(tmp_path / "x", model, X, y, probe_mode="inference")


@pytest.mark.parametrize("batch", ["dict", "tuple"])
def test_inputs_that_are_not_one_tensor_get_a_message_that_says_what_is_accepted(tmp_path,
                                                                                 batch):
    model, X, y = ARCHITECTURES["mlp"]()
    bad = {"x": X} if batch == "dict" else (X, X)
    for call in (lambda: RunWriter(tmp_path / "x", model, bad, y),
                 lambda: probe(model, bad, y)):
        with pytest.raises(ModelError, match="one tensor with the samples along dimension 0"):
            call()


def test_a_model_that_cannot_be_copied_is_refused_before_anything_runs():
    model, X, y = ARCHITECTURES["mlp"]()
    model.lock = threading.Lock()  # deepcopy cannot copy a lock
    before = fingerprint(model)
    with pytest.raises(ModelError, match="deep-copyable"):
        probe(model, X, y)
    assert_same(before, fingerprint(model))


def test_a_model_that_returns_no_logits_tensor_is_refused(tmp_path):
    class Dict(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(4, 3)

        def forward(self, x):
            return {"logits": self.lin(x)}

    X = torch.randn(6, 4)
    with pytest.raises(ModelError, match="one tensor of logits"):
        RunWriter(tmp_path / "d", Dict(), X, torch.zeros(6, dtype=torch.long))
    with pytest.raises(ModelError, match="one tensor of logits"):
        probe(Dict(), X, torch.zeros(6, dtype=torch.long))


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_top_eigenpairs_runs_in_the_operators_dtype(dtype):
    A = torch.diag(torch.arange(1.0, 13.0, dtype=dtype))
    values, vectors = top_eigenpairs(lambda v: A @ v, 12, k=2, tol=1e-8)
    assert values.dtype == dtype and vectors.dtype == dtype
    torch.testing.assert_close(values, torch.tensor([12.0, 11.0], dtype=dtype))
