"""More models researchers bring, probed against dense references (tests/oracles.py) with the
"model unchanged" fingerprint of tests/test_model_safety.py: recurrent layers and PReLU
(``vmap`` cannot run them), pruning masks (tensors torch will not deep-copy), batch norm
without running statistics, models whose ``__deepcopy__`` shares state, half precision, and
bad RunWriter inputs."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torch.nn.utils.prune as prune
from torch import nn

from ijr_core.probe import probe
from tests import oracles
from tests.test_model_safety import assert_same, fingerprint

MODES = ("train", "eval")


class Recurrent(nn.Module):
    def __init__(self, kind: str):
        super().__init__()
        self.rnn = (nn.LSTM if kind == "lstm" else nn.GRU)(4, 5, batch_first=True)
        self.out = nn.Linear(5, 3)

    def forward(self, x):
        return self.out(self.rnn(x)[0][:, -1])


def _pruned():
    model = nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 3))
    prune.random_unstructured(model[0], "weight", 0.3)
    return model


class SparseEmbedding(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(7, 4, sparse=True)
        self.out = nn.Linear(4, 3)

    def forward(self, idx):
        return self.out(torch.tanh(self.emb(idx)).mean(1))


def _model(name: str):
    torch.manual_seed(7)
    if name in ("lstm", "gru"):
        return Recurrent(name).double(), torch.randn(6, 3, 4, dtype=torch.float64)
    if name == "sparse-embedding":
        return SparseEmbedding().double(), torch.randint(0, 7, (6, 5))
    if name == "prelu":
        model = nn.Sequential(nn.Linear(4, 5), nn.PReLU(), nn.Linear(5, 3))
    elif name == "pruned":
        model = _pruned()
    else:  # batch norm without running statistics: batch statistics in both modes
        model = nn.Sequential(nn.Linear(4, 5), nn.BatchNorm1d(5, track_running_stats=False),
                              nn.Tanh(), nn.Linear(5, 3))
    return model.double(), torch.randn(6, 4, dtype=torch.float64)


def check_probe(model, X, y, mode):
    """The probe leaves the model as it was and equals the dense references."""
    model.train()
    nn.functional.cross_entropy(model(X), y).backward()  # as a training loop leaves it
    before = fingerprint(model)
    snap = probe(model, X, y, mode=mode, eig_tol=1e-9)
    assert_same(before, fingerprint(model))
    with torch.no_grad():
        model(X)  # leaves a pruning hook's weight a graph leaf again, for the oracles
    H = oracles.dense_hessian(model, X, y, mode=mode)
    J, z = oracles.dense_jacobian(model, X, mode=mode)
    assert snap["sharpness"] == pytest.approx(oracles.top_eigenvalue(H), rel=1e-6)
    assert snap["gn_sharpness"] == pytest.approx(oracles.top_eigenvalue(oracles.dense_ggn(J, z)),
                                                 rel=1e-6)
    return snap


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name", ["lstm", "gru", "prelu", "pruned", "sparse-embedding"])
def test_models_vmap_or_deepcopy_cannot_run_are_probed_exactly(name, mode):
    """Before: LSTM / GRU / PReLU crashed inside vmap(jacrev) ("output with shape [1, 20]
    doesn't match the broadcast shape"), a pruned model crashed in deepcopy ("Only Tensors
    created explicitly by the user (graph leaves) support the deepcopy protocol"), an
    nn.Embedding(sparse=True) in the flat gradient ("reshape is not implemented for sparse
    tensors")."""
    model, X = _model(name)
    y = torch.arange(X.shape[0]) % 3
    snap = check_probe(model, X, y, mode)
    Jn = oracles.frozen_jacobian(model, X)[0]  # no batch coupling: alone = batch rows
    np.testing.assert_allclose(snap.samples["jac_spectral_sq"],
                               oracles.per_sample_spectral_sq(Jn).numpy(), rtol=1e-6)


@pytest.mark.parametrize("mode", MODES)
def test_batch_norm_without_running_statistics_is_coupled_in_both_modes(mode):
    """BatchNorm1d(track_running_stats=False) normalises with the batch's statistics even in
    eval mode. Before: probe mode "eval" treated the samples as independent and crashed
    ("Expected more than 1 value per channel when training"). Now the per-sample Jacobians
    hold the batch statistics fixed, as in train mode."""
    model, X = _model("bn-no-stats")
    y = torch.arange(X.shape[0]) % 3
    snap = check_probe(model, X, y, mode)
    Jn = oracles.frozen_jacobian(model, X)[0]
    np.testing.assert_allclose(snap.samples["jac_spectral_sq"],
                               oracles.per_sample_spectral_sq(Jn).numpy(), rtol=1e-6)


def _writer_inputs():
    torch.manual_seed(8)
    model = nn.Sequential(nn.Linear(4, 5), nn.Tanh(), nn.Linear(5, 3))
    return model, torch.randn(8, 4), torch.arange(8) % 3


BAD_WRITER_INPUTS = {
    # before: accepted, labels silently truncated to classes
    "float labels": ({"probe_y": (torch.arange(8) % 3) + 0.5}, "integer class indices"),
    "bool labels": ({"probe_y": torch.arange(8) % 2 == 0}, "integer class indices"),
    # before: caught only at the first probe, after the folder was written
    "labels out of range": ({"probe_y": torch.arange(8)},
                            r"lie in \[0, 2\] for a model with K = 3"),
    # an n_classes in **meta does not change what the model returns
    "labels beyond the model's classes": ({"probe_y": torch.arange(8) % 6, "n_classes": 10},
                                          r"lie in \[0, 2\] for a model with K = 3"),
    # before: "too many dimensions 'str'"
    "text labels": ({"probe_y": ["cat"] * 8}, "integer class indices, one per sample"),
    # before: RuntimeError from inside the model ("mat1 and mat2 shapes cannot be multiplied")
    "inputs of the wrong width": ({"probe_X": torch.randn(8, 7)}, "cannot run on probe_X"),
    "test inputs of the wrong width": ({"test_X": torch.randn(5, 6), "test_y": torch.zeros(5)},
                                       "test_y must hold integer|cannot run on test_X"),
    # before: RuntimeError from cross_entropy at the first probe
    "test labels of the wrong length": ({"test_X": torch.randn(5, 4),
                                         "test_y": torch.zeros(3, dtype=torch.long)},
                                        r"test_y must have shape \(5,\)"),
    # before: test_X silently ignored
    "test inputs without labels": ({"test_X": torch.randn(5, 4)}, "both test_X and test_y"),
}


@pytest.mark.parametrize("case", sorted(BAD_WRITER_INPUTS))
def test_bad_writer_inputs_get_a_clear_message_before_anything_is_written(tmp_path, case):
    from ijr_core import RunWriter
    from ijr_core.model_view import ModelError

    model, X, y = _writer_inputs()
    changes, match = BAD_WRITER_INPUTS[case]
    kwargs = {"probe_X": X, "probe_y": y} | changes
    with pytest.raises(ModelError, match=match):
        RunWriter(tmp_path / "run", model, lr=0.1, **kwargs)
    assert not (tmp_path / "run").exists()


def test_probe_refuses_float_labels():
    from ijr_core.model_view import ModelError

    model, X, y = _writer_inputs()
    with pytest.raises(ModelError, match="probe_y must hold integer class indices"):
        probe(model, X, y.float() + 0.5)
    with pytest.raises(ModelError, match=r"test_y must lie in \[0, 2\]"):
        probe(model, X, y, X[:4], y[:4] + 3)


class _SelfCopy(nn.Sequential):
    def __deepcopy__(self, memo):  # a wrapper that "copies" by returning itself
        return self


class _ShallowCopy(nn.Sequential):
    def __deepcopy__(self, memo):  # a new object sharing every submodule
        new = nn.Sequential.__new__(type(self))
        new.__dict__ = {k: dict(v) if isinstance(v, dict) else v for k, v in vars(self).items()}
        return new


@pytest.mark.parametrize("cls", [_SelfCopy, _ShallowCopy])
def test_a_deepcopy_that_shares_state_is_refused_before_anything_runs(cls):
    """Before: the probe ran on the model itself (or its shared modules), switched it to eval
    mode and moved the batch-norm running statistics."""
    from ijr_core.model_view import ModelError

    torch.manual_seed(9)
    model = cls(nn.Linear(4, 5), nn.BatchNorm1d(5), nn.Linear(5, 3)).train()
    X, y = torch.randn(8, 4), torch.arange(8) % 3
    before = fingerprint(model)
    with pytest.raises(ModelError, match="shares modules, parameters or buffers"):
        probe(model, X, y)
    assert_same(before, fingerprint(model))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_models_are_measured_in_float32(dtype):
    """Before: NotImplementedError "linalg_eigh_cpu" not implemented for 'Half' (float16),
    TypeError "Got unsupported ScalarType BFloat16" (bfloat16, in the parameter snapshot)."""
    torch.manual_seed(10)
    model = nn.Sequential(nn.Linear(4, 5), nn.Tanh(), nn.Linear(5, 3)).to(dtype)
    X, y = torch.randn(8, 4), torch.arange(8) % 3
    before = fingerprint(model)
    snap = probe(model, X.to(dtype), y, eig_tol=1e-6)
    assert_same(before, fingerprint(model))
    same = probe(copy.deepcopy(model).float(), X.to(dtype).float(), y, eig_tol=1e-6)
    for name in ("sharpness", "gn_sharpness", "train_loss"):
        assert snap[name] == pytest.approx(same[name], rel=1e-9)
    rebuilt = nn.Sequential(nn.Linear(4, 5), nn.Tanh(), nn.Linear(5, 3)).to(dtype)
    rebuilt.load_state_dict({k: torch.from_numpy(v) for k, v in snap.params.items()})
    for a, b in zip(rebuilt.parameters(), model.parameters(), strict=True):
        assert a.dtype == dtype and torch.equal(a, b)


@pytest.mark.parametrize("norm", ["batch", "instance"])
def test_train_mode_measures_the_training_loss_of_a_model_left_in_eval_mode(norm):
    """Probe mode "train" is the function a training step descends, whatever mode the model
    was left in. Before: InstanceNorm1d(track_running_stats=True) used its running statistics
    in train-mode probes (loss 1.017 where training sees 0.951)."""
    import copy

    torch.manual_seed(11)
    layer = nn.BatchNorm1d(3) if norm == "batch" else \
        nn.InstanceNorm1d(3, affine=True, track_running_stats=True)
    model = nn.Sequential(nn.Conv1d(2, 3, 3), layer, nn.Tanh(), nn.Flatten(),
                          nn.Linear(12, 3)).double()
    X, y = torch.randn(8, 2, 6, dtype=torch.float64), torch.arange(8) % 3
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(X * 2 + 1)  # running statistics far from the probe batch's
    model.eval()
    before = fingerprint(model)
    snap = probe(model, X, y, mode="train", eig_tol=1e-9)
    assert_same(before, fingerprint(model))
    trained = copy.deepcopy(model).train()
    loss = nn.functional.cross_entropy(trained(X), y)
    assert snap["train_loss"] == pytest.approx(float(loss.detach()), rel=1e-12)
    H = oracles.dense_hessian(trained, X, y, mode="train") if norm == "batch" else \
        _train_mode_hessian(trained, X, y)
    assert snap["sharpness"] == pytest.approx(oracles.top_eigenvalue(H), rel=1e-6)


def _train_mode_hessian(model, X, y):
    """The Hessian of the model in train mode, all of it (oracles.prepared sets eval)."""
    params = [p for p in model.parameters() if p.requires_grad]
    g = torch.autograd.grad(nn.functional.cross_entropy(model(X), y), params, create_graph=True)
    g = torch.cat([t.reshape(-1) for t in g])
    return torch.stack([torch.cat([t.reshape(-1) for t in torch.autograd.grad(
        g[i], params, retain_graph=True)]) for i in range(g.numel())])


class _Batchwise(nn.Module):
    """Samples that interact outside torch.nn batch-norm layers: F.batch_norm on the batch's
    statistics called directly, or a parameter with one row per sample of the batch."""

    def __init__(self, case: str, n: int):
        super().__init__()
        self.case = case
        self.rows = nn.Parameter(torch.randn(n, 1))
        self.out = nn.Linear(4, 3)

    def forward(self, x):
        if self.case == "functional-bn":
            return self.out(nn.functional.batch_norm(x, None, None, training=True))
        return self.out(torch.tanh(x + self.rows))


@pytest.mark.parametrize("case", ["functional-bn", "row-parameter"])
def test_models_that_cannot_run_one_sample_get_a_clear_message(case):
    """Before: ValueError "Expected more than 1 value per channel when training" from inside
    torch, or (row parameter) Grams of the wrong shape, silently."""
    from ijr_core.curvature import logit_jacobian_gram
    from ijr_core.model_view import ModelError

    torch.manual_seed(13)
    model = _Batchwise(case, 6).double()
    X, y = torch.randn(6, 4, dtype=torch.float64), torch.arange(6) % 3
    before = fingerprint(model)
    for call in (lambda: probe(model, X, y), lambda: logit_jacobian_gram(model, X)):
        with pytest.raises(ModelError, match="one sample at a time"):
            call()
    assert_same(before, fingerprint(model))


def test_uninitialised_lazy_modules_get_a_clear_message(tmp_path):
    """Before: torch's ValueError from numel() inside the probe."""
    from ijr_core import RunWriter
    from ijr_core.model_view import ModelError

    model = nn.Sequential(nn.LazyLinear(5), nn.Tanh(), nn.Linear(5, 3))
    X, y = torch.randn(8, 4), torch.arange(8) % 3
    for call in (lambda: probe(model, X, y), lambda: RunWriter(tmp_path / "w", model, X, y)):
        with pytest.raises(ModelError, match="run one forward pass"):
            call()
    model(X)  # initialised: probed as usual
    assert np.isfinite(probe(model, X, y)["sharpness"])
