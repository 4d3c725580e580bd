"""probe(): every metric against a dense brute-force computation on a tiny float64 model."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from ijr_core.probe import (
    WARM_RITZ,
    ProbeState,
    Snapshot,
    evaluate,
    param_snapshot,
    probe,
)
from ijr_core.run import SAMPLE_KEYS
from tests import oracles

N, D, K = 24, 4, 3


def tiny(seed=0, act=nn.Tanh):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(D, 6), act(), nn.Linear(6, K)).double()


def data(seed=1, n=N):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, D, generator=g, dtype=torch.float64)
    y = torch.randint(0, K, (n,), generator=g)
    return X, y


def dense_reference(model, X, y, loss):
    """H, G, per-sample Jacobians, M, logits, p and the gradient by brute force
    (tests/oracles.py)."""
    J, z = oracles.dense_jacobian(model, X)  # (N, K, P): one forward pass, no batch coupling
    M = oracles.softmax_hessians(z, loss)
    G = oracles.dense_ggn(J, z, loss)
    H = oracles.dense_hessian(model, X, y, loss)
    grad = oracles.dense_gradient(model, X, y, loss)
    return H, G, J, M, z, torch.softmax(z, -1), grad


@pytest.mark.parametrize("loss", ["ce", "mse"])
def test_probe_matches_dense_reference(loss):
    model = tiny()
    X, y = data()
    tX, ty = data(seed=2, n=10)
    snap = probe(model, X, y, tX, ty, loss=loss, n_eigs=3, eig_tol=1e-8, state=ProbeState(),
                 step=7, lr=0.25)
    H, G, J, M, z, p, grad = dense_reference(model, X, y, loss)
    s = snap.scalars
    h_eigs = torch.linalg.eigvalsh(H).flip(0)
    g_eigs, g_vecs = torch.linalg.eigh(G)
    np.testing.assert_allclose([s["sharpness"], s["sharpness_2"], s["sharpness_3"]],
                               h_eigs[:3].numpy(), rtol=1e-6)
    np.testing.assert_allclose(s["gn_sharpness"], g_eigs[-1].item(), rtol=1e-6)
    assert s["sharpness_residual"] < 1e-5 and s["gn_sharpness_residual"] < 1e-5

    gram = J @ J.transpose(1, 2)
    spec = torch.linalg.eigvalsh(gram)[:, -1]
    frob = torch.diagonal(gram, dim1=1, dim2=2).sum(-1)
    u = g_vecs[:, -1]
    jtu = torch.einsum("nkp,p->nk", J, u)
    lam = torch.einsum("nk,nkl,nl->n", jtu, M, jtu) / spec
    mnorm = torch.linalg.eigvalsh(M)[:, -1]
    smp = snap.samples
    assert set(smp) == set(SAMPLE_KEYS) and all(v.dtype == np.float32 for v in smp.values())
    np.testing.assert_allclose(smp["jac_spectral_sq"], spec.numpy(), rtol=1e-5)
    np.testing.assert_allclose(smp["jac_frobenius_sq"], frob.numpy(), rtol=1e-5)
    np.testing.assert_allclose(smp["lambda_star"], lam.numpy(), rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(smp["m_norm"], mnorm.numpy(), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(smp["p_max"], p.max(-1).values.numpy(), rtol=1e-6)
    np.testing.assert_array_equal(smp["correct"], (z.argmax(-1) == y).numpy().astype(np.float32))

    np.testing.assert_allclose(s["m_norm_mean"], mnorm.mean().item(), rtol=1e-6)
    np.testing.assert_allclose(s["jac_spectral_sq_mean"], spec.mean().item(), rtol=1e-6)
    np.testing.assert_allclose(s["jac_frobenius_sq_mean"], frob.mean().item(), rtol=1e-6)
    np.testing.assert_allclose(s["lambda_star_jac"], (lam * spec).mean().item(), rtol=1e-6)
    np.testing.assert_allclose(s["m_norm_jac"], (mnorm * spec).mean().item(), rtol=1e-6)
    np.testing.assert_allclose(s["lambda_star_jac"], s["gn_sharpness"], rtol=1e-8)  # theorem
    np.testing.assert_allclose(s["grad_norm"], grad.norm().item(), rtol=1e-8)
    np.testing.assert_allclose(s["train_loss"], oracles.loss_of(z, y, loss).item(), rtol=1e-10)
    np.testing.assert_allclose(s["train_acc"], (z.argmax(-1) == y).double().mean().item())
    with torch.no_grad():
        tz = model(tX)
    np.testing.assert_allclose(s["test_loss"], oracles.loss_of(tz, ty, loss).item(), rtol=1e-10)
    np.testing.assert_allclose(s["test_acc"], (tz.argmax(-1) == ty).double().mean().item())
    assert s["lr"] == 0.25 and s["two_over_eta"] == 8.0 and snap.step == 7
    if loss == "mse":
        assert np.all(smp["m_norm"] == 1.0)
    assert np.all(smp["lambda_star"] <= smp["m_norm"] + 1e-6)


def test_probe_leaves_model_untouched_and_snapshots_params():
    model = tiny()
    model.train()
    X, y = data()
    before = param_snapshot(model)
    snap = probe(model, X, y)
    assert model.training
    assert all(p.grad is None for p in model.parameters())
    after = param_snapshot(model)
    assert isinstance(snap, Snapshot) and snap.params.keys() == before.keys()
    for k in before:
        np.testing.assert_array_equal(before[k], after[k])
        np.testing.assert_array_equal(snap.params[k], before[k])
    assert "test_loss" not in snap.scalars and "two_over_eta" not in snap.scalars
    assert probe(model, X, y, with_params=False).params is None
    assert snap["train_loss"] == snap.scalars["train_loss"]


def test_warm_start_state_is_kept_and_gives_the_same_values():
    model = tiny()
    X, y = data()
    state = ProbeState()
    first = probe(model, X, y, n_eigs=2, eig_tol=1e-6, state=state)
    assert state.h_vectors.shape == (sum(p.numel() for p in model.parameters()), 2)
    assert state.g_vector.ndim == 1
    assert state.g_ritz.shape[0] == state.h_vectors.shape[0]
    assert 1 <= state.g_ritz.shape[1] <= WARM_RITZ  # G's top directions, for the next start
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(1.01)
    second = probe(model, X, y, n_eigs=2, eig_tol=1e-6, state=state)
    cold = probe(model, X, y, n_eigs=2, eig_tol=1e-6, state=ProbeState())
    for key in ("sharpness", "sharpness_2", "gn_sharpness"):
        np.testing.assert_allclose(second.scalars[key], cold.scalars[key], rtol=1e-5)
    assert second.scalars["sharpness"] != first.scalars["sharpness"]


def test_probe_works_in_float32_and_on_relu():
    model = tiny(act=nn.ReLU).float()
    X, y = data()
    snap = probe(model, X.float(), y, loss="ce", eig_tol=1e-4)
    s = snap.scalars
    assert abs(s["gn_sharpness"] - s["lambda_star_jac"]) <= 1e-4 * s["gn_sharpness"]
    assert np.all(snap.samples["lambda_star"] <= snap.samples["m_norm"] + 1e-6)


def test_evaluate_in_chunks_equals_one_batch():
    model = tiny()
    X, y = data()
    whole = evaluate(model, X, y, chunk_size=1000)
    parts = evaluate(model, X, y, chunk_size=5)
    np.testing.assert_allclose(whole, parts, rtol=1e-12)
