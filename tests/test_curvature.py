"""Oracle tests for ijr_core.curvature: every metric against dense brute force on tiny models
(tests/oracles.py) and against analytic cases of SCIENCE.md."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from torch import nn

from ijr_core.curvature import (
    CurvatureGraph,
    ggn_operator,
    gn_sharpness,
    hessian_operator,
    jacobian_norms,
    jtu_from_products,
    lambda_star,
    logit_jacobian_gram,
    m_norm,
    num_parameters,
    sharpness,
    softmax_hessian,
    top_eigenpairs,
    vector_to_params,
)
from ijr_core.lanczos import Eigenpairs, lanczos
from tests import oracles


def random_probs(n, k, concentration, seed=0):
    """Dirichlet(concentration) samples: small concentrations give nearly pure p."""
    torch.manual_seed(seed)
    x = torch.distributions.Gamma(torch.full((n, k), float(concentration)), 1.0).sample()
    x = x.double() + 1e-300
    return x / x.sum(-1, keepdim=True)


# --------------------------------------------------------------------------- M and ‖M‖


def test_softmax_hessian_matches_definition_and_kills_ones():
    p = torch.tensor([0.2, 0.3, 0.5], dtype=torch.float64)
    expected = torch.tensor(
        [[0.16, -0.06, -0.10], [-0.06, 0.21, -0.15], [-0.10, -0.15, 0.25]], dtype=torch.float64
    )
    torch.testing.assert_close(softmax_hessian(p), expected)
    P = random_probs(50, 6, 0.5)
    M = softmax_hessian(P)
    assert M.shape == (50, 6, 6)
    ones = torch.ones(6, dtype=torch.float64)
    torch.testing.assert_close(M @ ones, torch.zeros(50, 6, dtype=torch.float64))
    # M is the Hessian of cross-entropy in the logits
    z = torch.randn(4, dtype=torch.float64)
    H = torch.func.hessian(lambda t: nn.functional.cross_entropy(t[None], torch.tensor([1])))(z)
    torch.testing.assert_close(H, softmax_hessian(torch.softmax(z, -1)))


def test_m_norm_closed_forms():
    p1 = torch.linspace(0, 1, 101, dtype=torch.float64)
    p = torch.stack([p1, 1 - p1], -1)
    torch.testing.assert_close(m_norm(p), 2 * p1 * (1 - p1), atol=1e-15, rtol=0)
    for K in (2, 3, 10, 100):
        u = torch.full((K,), 1.0 / K, dtype=torch.float64)
        assert abs(float(m_norm(u)) - 1.0 / K) < 1e-12
    onehot = torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64)
    assert float(m_norm(onehot)) == pytest.approx(0.0, abs=1e-15)


@pytest.mark.parametrize("K", [2, 3, 5, 10, 40])
@pytest.mark.parametrize("concentration", [0.05, 0.5, 5.0])
def test_m_norm_bounds_on_random_p(K, concentration):
    p = random_probs(400, K, concentration, seed=K)
    lam = m_norm(p)
    srt = p.sort(-1, descending=True).values
    p1, p2 = srt[:, 0], srt[:, 1]
    gini = 1 - (p**2).sum(-1)
    eps = 1e-12
    assert (p2 <= lam + eps).all() and (lam <= p1 + eps).all()
    assert (p1 * (1 - p1) <= lam + eps).all() and (lam <= 2 * p1 * (1 - p1) + eps).all()
    assert (lam <= gini + eps).all() and (lam <= 0.5 + eps).all()
    dense = torch.linalg.eigvalsh(softmax_hessian(p))[:, -1]
    torch.testing.assert_close(lam, dense, atol=1e-14, rtol=0)


def test_m_norm_keeps_dtype_and_batch_shape():
    p = torch.softmax(torch.randn(3, 4, 5), -1)
    out = m_norm(p)
    assert out.shape == (3, 4) and out.dtype == torch.float32


def test_m_norm_rejects_single_class():
    with pytest.raises(ValueError, match="K >= 2"):
        m_norm(torch.ones(4, 1))


# --------------------------------------------------------------------------- Jacobian Grams


def test_gram_matches_jacrev(model_case):
    name, model, X, _ = model_case
    J, _ = oracles.dense_jacobian(model, X)
    expected = J @ J.transpose(1, 2)
    gram = logit_jacobian_gram(model, X)
    torch.testing.assert_close(gram, expected, atol=1e-12, rtol=1e-10)
    norms = jacobian_norms(model, X)
    torch.testing.assert_close(norms.frobenius_sq, (J**2).sum((1, 2)))
    torch.testing.assert_close(norms.spectral_sq, torch.linalg.svdvals(J)[:, 0] ** 2)


def test_fast_path_is_taken_where_it_applies(model_case):
    """Every case of the table (a layer used twice included) has closed forms per operation."""
    name, model, X, _ = model_case
    fast = logit_jacobian_gram(model, X, method="fast")
    generic = logit_jacobian_gram(model, X, method="generic")
    torch.testing.assert_close(fast, generic, atol=1e-12, rtol=1e-10)


def test_fast_path_refuses_an_operation_without_a_closed_form():
    torch.manual_seed(0)

    class Squared(nn.Module):  # the weight enters an elementwise square: no closed form
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.randn(4, 3))

        def forward(self, x):
            return x @ (self.w * self.w)

    model, X = Squared().double(), torch.randn(5, 4, dtype=torch.float64)
    with pytest.raises(ValueError, match="fast path does not apply"):
        logit_jacobian_gram(model, X, method="fast")
    J, _ = oracles.dense_jacobian(model, X)
    torch.testing.assert_close(logit_jacobian_gram(model, X), J @ J.transpose(1, 2))


def test_gram_chunked_equals_one_batch(model_case):
    _, model, X, _ = model_case
    torch.testing.assert_close(
        logit_jacobian_gram(model, X, chunk_size=2), logit_jacobian_gram(model, X), atol=1e-13,
        rtol=1e-12,
    )


def test_gram_float32_close_to_float64():
    torch.manual_seed(1)
    m64 = nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 5)).double()
    m32 = nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 5))
    m32.load_state_dict({k: v.float() for k, v in m64.state_dict().items()})
    X = torch.randn(20, 8, dtype=torch.float64)
    g64 = logit_jacobian_gram(m64, X)
    g32 = logit_jacobian_gram(m32, X.float())
    assert g32.dtype == torch.float32
    torch.testing.assert_close(g32.double(), g64, atol=1e-5, rtol=1e-5)


def test_inplace_activation_falls_back_and_stays_exact():
    torch.manual_seed(2)
    model = nn.Sequential(nn.Linear(5, 6), nn.ReLU(inplace=True), nn.Linear(6, 3)).double()
    X = torch.randn(6, 5, dtype=torch.float64)
    J, _ = oracles.dense_jacobian(model, X)
    torch.testing.assert_close(logit_jacobian_gram(model, X), J @ J.transpose(1, 2))


def test_linear_model_gram_is_analytic():
    """Softmax regression: J(x)ᵀJ(x) = (‖x‖² + 1) I_K, independent of θ."""
    torch.manual_seed(3)
    model = nn.Linear(4, 3).double()
    X = torch.randn(5, 4, dtype=torch.float64)
    expected = ((X**2).sum(1) + 1)[:, None, None] * torch.eye(3, dtype=torch.float64)
    torch.testing.assert_close(logit_jacobian_gram(model, X), expected)


# --------------------------------------------------------------------------- H and G


@pytest.mark.parametrize("loss", ["ce", "mse"])
def test_hessian_and_ggn_products_match_dense(model_case, loss):
    _, model, X, y = model_case
    P = num_parameters(model)
    H = oracles.dense_hessian(model, X, y, loss)
    G = oracles.model_ggn(model, X, loss)
    Hop, Gop = hessian_operator(model, X, y, loss=loss), ggn_operator(model, X, y, loss=loss)
    for seed in range(3):
        v = torch.randn(P, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
        torch.testing.assert_close(Hop(v), H @ v, atol=1e-11, rtol=1e-9)
        torch.testing.assert_close(Gop(v), G @ v, atol=1e-11, rtol=1e-9)


@pytest.mark.parametrize("loss", ["ce", "mse"])
def test_sharpness_and_gn_sharpness_match_dense_spectra(model_case, loss):
    _, model, X, y = model_case
    h = torch.linalg.eigvalsh(oracles.dense_hessian(model, X, y, loss)).flip(0)
    g = torch.linalg.eigvalsh(oracles.model_ggn(model, X, loss)).flip(0)
    torch.testing.assert_close(sharpness(model, X, y, k=3, loss=loss, tol=1e-9), h[:3],
                               atol=1e-8, rtol=1e-7)
    torch.testing.assert_close(gn_sharpness(model, X, y, k=2, loss=loss, tol=1e-9), g[:2],
                               atol=1e-8, rtol=1e-7)


def test_ggn_is_linear_model_hessian_for_ce():
    """For softmax regression the residual term vanishes: H = G exactly."""
    torch.manual_seed(4)
    model = nn.Linear(3, 4).double()
    X, y = torch.randn(9, 3, dtype=torch.float64), torch.randint(0, 4, (9,))
    H, G = oracles.dense_hessian(model, X, y), oracles.model_ggn(model, X)
    torch.testing.assert_close(H, G, atol=1e-12, rtol=1e-10)


# --------------------------------------------------------------------------- the identity, λ*


@pytest.mark.parametrize("loss", ["ce", "mse"])
def test_identity_and_lambda_star_bound(model_case, loss):
    _, model, X, y = model_case
    values, vectors = gn_sharpness(model, X, y, loss=loss, tol=1e-10, return_vectors=True)
    u = vectors[:, 0]
    lam = lambda_star(model, X, u, loss=loss)
    jn = jacobian_norms(model, X)
    # ‖G‖ = ⟨λ* ‖J‖²⟩
    torch.testing.assert_close((lam * jn.spectral_sq).mean(), values[0], atol=1e-10, rtol=1e-9)
    # λ* against its dense definition
    J, _ = oracles.dense_jacobian(model, X)  # (N, K, P)
    jtu = J @ u
    with torch.no_grad():
        z = model(X)
    p = torch.softmax(z, -1)
    eye = torch.eye(z.shape[1], dtype=z.dtype).expand(z.shape[0], -1, -1)
    M = softmax_hessian(p) if loss == "ce" else eye
    dense = torch.einsum("nk,nkl,nl->n", jtu, M, jtu) / jn.spectral_sq
    torch.testing.assert_close(lam, dense, atol=1e-11, rtol=1e-9)
    # 0 ≤ λ* ≤ ‖M‖ (‖M‖ = 1 for the squared loss)
    bound = m_norm(p) if loss == "ce" else torch.ones_like(lam)
    assert (lam >= -1e-12).all() and (lam <= bound + 1e-12).all()


def test_lambda_star_reuses_gram_and_normalises_u():
    torch.manual_seed(5)
    model = nn.Sequential(nn.Linear(3, 5), nn.Tanh(), nn.Linear(5, 3)).double()
    X = torch.randn(6, 3, dtype=torch.float64)
    u = torch.randn(num_parameters(model), dtype=torch.float64)
    gram = logit_jacobian_gram(model, X)
    torch.testing.assert_close(lambda_star(model, X, 3 * u, gram=gram), lambda_star(model, X, u))


# --------------------------------------------------------------------------- Lanczos


def _sym_with_spectrum(eigs, seed=0):
    eigs = torch.as_tensor(eigs, dtype=torch.float64)
    Q, _ = torch.linalg.qr(torch.randn(len(eigs), len(eigs), dtype=torch.float64,
                                       generator=torch.Generator().manual_seed(seed)))
    return Q @ torch.diag(eigs) @ Q.T


@pytest.mark.parametrize(
    "eigs",
    [
        [10.0, 5.0, 3.0] + [1.0] * 40 + list(torch.linspace(-2, 0.5, 57).tolist()),  # generic
        [7.0, 7.0, 7.0, 6.999, 2.0] + [0.1] * 45,  # clustered and repeated top
        [1.0, 0.5] + [-20.0] * 3 + list(torch.linspace(-5, 0, 45).tolist()),  # big negatives
        [0.0] * 30,  # zero operator
    ],
)
def test_lanczos_on_known_spectra(eigs):
    A = _sym_with_spectrum(eigs)
    k = 3
    vals, vecs, res = top_eigenpairs(lambda v: A @ v, A.shape[0], k=k, tol=1e-10,
                                     dtype=torch.float64, return_residuals=True)
    expected = torch.tensor(sorted(eigs, reverse=True)[:k], dtype=torch.float64)
    torch.testing.assert_close(vals, expected, atol=1e-8, rtol=1e-8)
    true_res = torch.linalg.vector_norm(A @ vecs - vecs * vals, dim=0)
    assert (true_res <= 1e-5 * vals.abs().clamp_min(1)).all()  # residual ≤ sqrt(tol)·|λ|
    torch.testing.assert_close(res, true_res, atol=1e-7, rtol=0)
    torch.testing.assert_close(vecs.T @ vecs, torch.eye(k, dtype=torch.float64), atol=1e-8, rtol=0)


def test_lanczos_tolerance_controls_accuracy_and_warm_start_saves_products():
    eigs = torch.cat([torch.tensor([5.0, 4.5]), torch.rand(398, generator=torch.Generator()
                                                         .manual_seed(0)) * 4])
    A = _sym_with_spectrum(eigs.tolist(), seed=1)
    count = {"n": 0}

    def mv(v):
        count["n"] += 1
        return A @ v

    val, vec = top_eigenpairs(mv, 400, tol=1e-3, dtype=torch.float64)
    cold = count["n"]
    assert abs(float(val[0]) - 5.0) / 5.0 < 1e-3
    # a slightly perturbed operator, warm-started from the previous vector
    A = A + 1e-3 * _sym_with_spectrum(torch.rand(400).tolist(), seed=2)
    count["n"] = 0
    val2, _ = top_eigenpairs(mv, 400, tol=1e-3, v0=vec, dtype=torch.float64)
    exact = torch.linalg.eigvalsh(A)[-1]
    assert abs(float(val2[0] - exact)) / float(exact) < 1e-3
    assert count["n"] < cold


@pytest.mark.parametrize("mix", [0.3, 0.6, 0.8, 0.95])
def test_lanczos_warm_start_near_a_close_pair_meets_the_tolerance(mix):
    """The edge-of-stability case: top two eigenvalues 3 % apart, warm start mixing their
    eigenvectors. The eigenvalue error must stay within the tolerance asked for."""
    g = torch.Generator().manual_seed(7)
    rest = torch.rand(298, generator=g, dtype=torch.float64) * 2.5 - 0.5
    eigs = torch.cat([torch.tensor([3.064, 2.976], dtype=torch.float64), rest])
    Q, _ = torch.linalg.qr(torch.randn(300, 300, generator=g, dtype=torch.float64))
    A = Q @ torch.diag(eigs) @ Q.T
    v0 = mix * Q[:, 1] + (1 - mix**2) ** 0.5 * Q[:, 0] + 0.05 * Q[:, 5]
    for tol in (1e-3, 1e-4):
        val, _ = top_eigenpairs(lambda v: A @ v, 300, tol=tol, v0=v0, dtype=torch.float64)
        assert abs(float(val[0]) - 3.064) / 3.064 <= tol


def test_lanczos_rejects_bad_arguments():
    A = torch.eye(4, dtype=torch.float64)
    with pytest.raises(ValueError, match="k must lie"):
        top_eigenpairs(lambda v: A @ v, 4, k=5)
    with pytest.raises(ValueError, match="v0 must have shape"):
        top_eigenpairs(lambda v: A @ v, 4, v0=torch.ones(3))
    with pytest.raises(ValueError, match="v0 must be finite"):
        top_eigenpairs(lambda v: A @ v, 4, v0=torch.full((4,), float("nan")))
    # a zero warm start is harmless: it falls back to a random start
    val, _ = top_eigenpairs(lambda v: A @ v, 4, v0=torch.zeros(4, dtype=torch.float64))
    assert float(val[0]) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="finite"):
        top_eigenpairs(lambda v: v * float("nan"), 4)
    with pytest.raises(ValueError, match="finite"):  # one inf entry, the rest finite
        top_eigenpairs(lambda v: torch.cat([v[:3], v[3:] * float("inf")]), 4)
    with pytest.raises(ValueError, match=r"\(4,\) vectors, got \(3,\)"):
        top_eigenpairs(lambda v: v[:3], 4)


@pytest.mark.parametrize("loss", ["ce", "mse"])
def test_g_quadratic_form_is_v_dot_gv(model_case, loss):
    _, model, X, y = model_case
    graph = CurvatureGraph(model, X, y, loss=loss)
    v = torch.randn(num_parameters(model), dtype=torch.float64)
    assert graph.g_quadratic(v) == pytest.approx(float(v @ graph.gvp(v)), rel=1e-10)
    G = oracles.model_ggn(model, X, loss=loss)
    assert graph.g_quadratic(v) == pytest.approx(float(v @ G @ v), rel=1e-9)


@pytest.mark.parametrize("k", [1, 3])
def test_lanczos_stops_at_once_on_a_null_operator_and_still_finds_a_low_rank_top(k):
    """A random restart vector that breaks down at once proves the rest of the space one
    eigenspace: stop there (a saturated network has H = G = 0; all 300 iterations ran
    before). A repeated eigenvalue below the top is found exactly the same way."""
    calls = []

    def zero(v):
        calls.append(1)
        return torch.zeros_like(v)

    vals, _ = top_eigenpairs(zero, 5000, k=k, v0=torch.randn(5000, dtype=torch.float64))
    assert vals.tolist() == [0.0] * k and len(calls) <= k + 1
    # rank 2 (eigenvalues 3 and -1 in a 400-dim space): the stop finds both, not a 0 first
    U, _ = torch.linalg.qr(torch.randn(400, 2, dtype=torch.float64))
    A = U @ torch.diag(torch.tensor([3.0, -1.0], dtype=torch.float64)) @ U.T
    e = torch.zeros(400, dtype=torch.float64)
    e[0] = 1.0
    start = e - U @ (U.T @ e)  # in the null space: the first product breaks down at once
    vals, _ = top_eigenpairs(lambda v: A @ v, 400, k=2, v0=start, tol=1e-10)
    torch.testing.assert_close(vals, torch.tensor([3.0, 0.0], dtype=torch.float64), atol=1e-9,
                               rtol=0)
    # the leftover eigenspace holds more copies of the top than the restarts have found
    C = _sym_with_spectrum([2.0] * 5 + [0.0, -1.0], seed=1)
    for k in (3, 5):
        vals, _ = top_eigenpairs(lambda v: C @ v, 7, k=k, dtype=torch.float64)
        torch.testing.assert_close(vals, torch.full((k,), 2.0, dtype=torch.float64))
    B = _sym_with_spectrum([5.0, 4.9] + [1.0] * 98, seed=3)  # 3 distinct eigenvalues
    vals, _ = top_eigenpairs(lambda v: B @ v, 100, k=3, dtype=torch.float64, min_iter=40)
    torch.testing.assert_close(vals, torch.tensor([5.0, 4.9, 1.0], dtype=torch.float64))


def test_jtu_from_a_lanczos_log_equals_a_forward_pass():
    """J^T u rebuilt from the logged (q_i, J^T q_i) of the G solve that produced u is the
    forward-mode product; a foreign vector in the log, or an empty log, gives None."""
    torch.manual_seed(6)
    model = nn.Sequential(nn.Linear(4, 7), nn.Tanh(), nn.Linear(7, 3)).double()
    X, y = torch.randn(20, 4, dtype=torch.float64), torch.randint(0, 3, (20,))
    graph = CurvatureGraph(model, X, y)
    log: list = []
    _, vecs = top_eigenpairs(lambda v: graph.gvp(v, log=log), num_parameters(model), tol=1e-8,
                             dtype=torch.float64)
    u = vecs[:, 0]
    assert len(log) >= 3
    torch.testing.assert_close(jtu_from_products(log, u), graph.jtu(u), atol=1e-10, rtol=1e-8)
    lam = lambda_star(model, X, u, graph=graph, jtu=jtu_from_products(log, u))
    torch.testing.assert_close(lam, lambda_star(model, X, u, graph=graph))
    assert jtu_from_products([], u) is None
    other = torch.randn_like(u)
    assert jtu_from_products(log + [(other / other.norm(), graph.jtu(other))], u) is None
    with pytest.raises(ValueError, match="jtu must have shape"):
        lambda_star(model, X, u, graph=graph, jtu=torch.zeros(20, 2, dtype=torch.float64))


# --------------------------------------------------------------------------- bad input


def test_bad_inputs_have_clear_messages():
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))
    X, y = torch.randn(5, 3), torch.randint(0, 2, (5,))
    with pytest.raises(ValueError, match="y must have shape"):
        hessian_operator(model, X, y[:4])
    with pytest.raises(ValueError, match="labels must lie"):
        hessian_operator(model, X, y + 5)
    with pytest.raises(ValueError, match="K >= 2"):
        logit_jacobian_gram(nn.Linear(3, 1), X)
    frozen = nn.Linear(3, 2).requires_grad_(False)
    with pytest.raises(ValueError, match="no trainable parameters"):
        sharpness(frozen, X, y)
    bad = nn.Linear(3, 2)
    with torch.no_grad():
        bad.weight.fill_(float("nan"))
    with pytest.raises(ValueError, match="non-finite logits"):
        ggn_operator(bad, X, y)
    with pytest.raises(ValueError, match="unknown loss"):
        hessian_operator(model, X, y, loss="hinge")
    with pytest.raises(ValueError, match="u must be a flat vector"):
        lambda_star(model, X, torch.ones(3))
    with pytest.raises(ValueError, match="flat vector"):
        vector_to_params(torch.ones(2), model)
    with pytest.raises(ValueError, match="k must lie"):
        sharpness(nn.Linear(1, 2), torch.randn(3, 1), torch.tensor([0, 1, 0]), k=5)


def test_core_import_does_not_pull_ui_libraries():
    code = (
        "import sys, ijr_core, ijr_core.curvature\n"
        "import pkgutil, importlib\n"
        "for m in pkgutil.iter_modules(ijr_core.__path__):\n"
        "    if m.name != '__main__': importlib.import_module('ijr_core.' + m.name)\n"
        "bad = [m for m in ('streamlit', 'altair') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=str(_root()))


def _root():
    from pathlib import Path

    return Path(__file__).resolve().parents[1]


def test_lanczos_ritz_block_finds_a_new_top_after_a_swap():
    """At the edge of stability the top two eigenvalues swap between probes. A warm start
    holding only the old top direction converges to it (now second) with a small residual;
    the block of previous top Ritz vectors (``n_ritz``) finds the new top."""
    g = torch.Generator().manual_seed(11)
    rest = torch.rand(297, generator=g, dtype=torch.float64) * 5.5 - 0.5
    eigs = torch.cat([torch.tensor([6.35, 6.22, 5.67], dtype=torch.float64), rest])
    Q, _ = torch.linalg.qr(torch.randn(300, 300, generator=g, dtype=torch.float64))
    A = Q @ torch.diag(eigs) @ Q.T
    old_top, old_second = Q[:, 1], Q[:, 0] + 0.1 * Q[:, 2]
    single, _ = top_eigenpairs(lambda v: A @ v, 300, tol=1e-3, v0=old_top,
                               dtype=torch.float64)
    assert abs(float(single[0]) - 6.22) < 1e-3  # the trap the block start avoids
    vals, vecs, ritz = top_eigenpairs(lambda v: A @ v, 300, tol=1e-3, dtype=torch.float64,
                                      v0=torch.stack([old_top, old_second], 1), n_ritz=3)
    assert abs(float(vals[0]) - 6.35) / 6.35 <= 1e-3
    assert ritz.shape[0] == 300 and 1 <= ritz.shape[1] <= 3
    torch.testing.assert_close(ritz[:, 0].abs(), vecs[:, 0].abs())
    torch.testing.assert_close(torch.linalg.vector_norm(ritz, dim=0),
                               torch.ones(ritz.shape[1], dtype=torch.float64))


def test_lanczos_min_iter_guards_a_cold_start():
    # distinct eigenvalues: with a repeated one Lanczos ends exactly in a few iterations
    A = _sym_with_spectrum([5.0, 4.9] + torch.linspace(0.5, 1.5, 98).tolist(), seed=3)
    count = [0]

    def mv(v):
        count[0] += 1
        return A @ v

    top_eigenpairs(mv, 100, tol=1e-1, dtype=torch.float64)
    assert count[0] < 12
    count[0] = 0
    vals, _ = top_eigenpairs(mv, 100, tol=1e-1, dtype=torch.float64, min_iter=12)
    assert count[0] >= 12 and abs(float(vals[0]) - 5.0) < 1e-6


def test_lanczos_result_is_named_and_top_eigenpairs_keeps_its_tuples():
    A = _sym_with_spectrum([6.0, 5.5, 5.0] + torch.linspace(-1, 4, 77).tolist(), seed=5)
    count = [0]

    def mv(v):
        count[0] += 1
        return A @ v

    pairs = lanczos(mv, 80, k=2, tol=1e-3, dtype=torch.float64, n_ritz=4)
    assert isinstance(pairs, Eigenpairs) and pairs.iterations == count[0]
    assert 2 <= pairs.iterations <= 80
    assert pairs.values.shape == (2,) and pairs.vectors.shape == (80, 2)
    assert pairs.ritz.shape == (80, 4) and pairs.residuals.shape == (2,)
    true_res = torch.linalg.vector_norm(A @ pairs.vectors - pairs.vectors * pairs.values, dim=0)
    torch.testing.assert_close(pairs.residuals, true_res, atol=1e-9, rtol=1e-6)
    torch.testing.assert_close(pairs.ritz[:, :2], pairs.vectors)  # the top Ritz vectors
    assert lanczos(mv, 80, k=2, tol=1e-3, dtype=torch.float64).ritz.shape == (80, 0)
    # the tuple contract: (values, vectors) [+ residuals] [+ Ritz vectors], same numbers
    for return_residuals, n_ritz, fields in [(False, 0, (0, 1)), (True, 0, (0, 1, 2)),
                                             (False, 4, (0, 1, 3)), (True, 4, (0, 1, 2, 3))]:
        out = top_eigenpairs(mv, 80, k=2, tol=1e-3, dtype=torch.float64,
                             return_residuals=return_residuals, n_ritz=n_ritz)
        assert type(out) is tuple and len(out) == len(fields)
        for got, i in zip(out, fields, strict=True):
            assert torch.equal(got, pairs[i])
