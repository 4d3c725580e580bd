"""ijr_core.op_gram: per-sample Grams from the operations that use each parameter, against
dense per-sample Jacobians (tests/oracles.py), and its refusals (None, never a wrong Gram)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ijr_core.grams import logit_jacobian_gram
from ijr_core.model_view import frozen_statistics_view, probe_view
from ijr_core.op_gram import op_gram
from tests import oracles
from tests.architectures import ARCHITECTURES


def reference(model, X):
    J = oracles.frozen_jacobian(model, X)[0]
    return J @ J.transpose(1, 2)


def ours(model, X):
    return op_gram(frozen_statistics_view(probe_view(model, "train"), X), X)


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_every_architecture_of_the_table_is_exact_or_refused(arch):
    model, X, _ = ARCHITECTURES[arch]()
    gram = ours(model, X)
    if arch == "parametrized":  # weight = (W + Wᵀ)/2: an add of two parameter views
        assert gram is None
    else:
        torch.testing.assert_close(gram, reference(model, X), rtol=1e-10, atol=1e-12)


class Ops(nn.Module):
    """conv1d, embedding, group norm, a scale vector, a positional table added, a bias used
    by hand, and a Linear called twice with a raw matmul of its weight's transpose."""

    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(6, 4, padding_idx=0)
        self.pos = nn.Parameter(torch.randn(5, 4) / 3)
        self.conv = nn.Conv1d(4, 3, 3, padding=1, stride=1)
        self.gn = nn.GroupNorm(1, 3)
        self.scale = nn.Parameter(torch.rand(3) + 0.5)
        self.lin = nn.Linear(3, 3)
        self.bias = nn.Parameter(torch.zeros(3))

    def forward(self, idx):  # idx: (N, 5) token ids
        h = self.emb(idx) + self.pos  # (N, 5, 4)
        h = torch.tanh(self.gn(self.conv(h.transpose(1, 2))))  # (N, 3, 5)
        h = h.mean(-1) * self.scale
        h = torch.tanh(self.lin(torch.tanh(self.lin(h))))
        return h @ self.lin.weight.t() + self.bias


def test_operations_beyond_linear_layers():
    torch.manual_seed(0)
    model = Ops().double()
    X = torch.randint(0, 6, (7, 5))
    X[0, :2] = 0  # padding tokens: no gradient into row 0
    torch.testing.assert_close(ours(model, X), reference(model, X), rtol=1e-10, atol=1e-12)


class _Cube(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, w):
        ctx.save_for_backward(x, w)
        return x @ w

    @staticmethod
    def backward(ctx, g):
        x, w = ctx.saved_tensors
        return g @ w.t(), x.t() @ g


@pytest.mark.parametrize("case", ["custom-function", "square", "weight-product"])
def test_uses_without_a_closed_form_are_refused(case):
    torch.manual_seed(1)

    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.randn(4, 4) / 2)
            self.v = nn.Parameter(torch.randn(4, 3) / 2)

        def forward(self, x):
            if case == "custom-function":
                return _Cube.apply(torch.tanh(x), self.w) @ self.v
            if case == "square":
                return x @ (self.w * self.w) @ self.v
            return x @ (self.w @ self.v)

    model, X = Model().double(), torch.randn(6, 4, dtype=torch.float64)
    assert ours(model, X) is None


class _BasicBlock(nn.Module):
    """torchvision's ResNet block: ReLU(inplace=True) and ``out += identity`` change the
    outputs of recorded convolutions and batch norms in place."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(2, 3, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(3)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(3, 3, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(3)
        self.down = nn.Conv2d(2, 3, 1, bias=False)
        self.fc = nn.Linear(3, 3)

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out += self.down(x)
        return self.fc(self.relu(out).mean((2, 3)))


@pytest.mark.parametrize("case", ["inplace-relu", "resnet-block"])
def test_outputs_changed_in_place_are_exact(case):
    """Before: refused (the vmap(jacrev) fallback), which is every torchvision ResNet. Now the
    forward runs again with copies of the recorded outputs, which in-place operations leave
    intact."""
    torch.manual_seed(6)
    if case == "inplace-relu":
        model = nn.Sequential(nn.Linear(4, 5), nn.ReLU(inplace=True), nn.Linear(5, 3)).double()
        X = torch.randn(6, 4, dtype=torch.float64)
    else:
        model, X = _BasicBlock().double().train(), torch.randn(6, 2, 5, 5, dtype=torch.float64)
    gram = ours(model, X)
    assert gram is not None
    torch.testing.assert_close(gram, reference(model, X), rtol=1e-10, atol=1e-12)


def test_batch_statistics_are_refused_where_samples_interact():
    model = nn.Sequential(nn.Linear(4, 5), nn.BatchNorm1d(5), nn.Linear(5, 3)).double().train()
    X = torch.randn(6, 4, dtype=torch.float64)
    assert op_gram(probe_view(model, "train"), X) is None  # not the frozen view
    torch.testing.assert_close(ours(model, X), reference(model, X), rtol=1e-10, atol=1e-12)


def test_float32_is_close_to_float64():
    model, X, _ = ARCHITECTURES["transformer"]()
    g64 = ours(model, X)
    g32 = ours(model.float(), X.float())
    assert g32.dtype == torch.float32
    torch.testing.assert_close(g32.double(), g64, rtol=1e-4, atol=1e-5)


def test_linear_without_bias_and_matmul_with_a_plain_weight():
    torch.manual_seed(2)
    lin = nn.Linear(4, 4, bias=False).double()
    w = nn.Parameter(torch.randn(4, 3, dtype=torch.float64))

    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin, self.w = lin, w

        def forward(self, x):
            return F.softplus(self.lin(x)) @ self.w

    model, X = Model(), torch.randn(5, 4, dtype=torch.float64)
    torch.testing.assert_close(ours(model, X), reference(model, X), rtol=1e-10, atol=1e-12)


class _Rows(nn.Module):
    """Recorded outputs whose rows are not samples: a positional nn.Embedding over
    arange(T) with T = N, logits flipped over the batch, a weight with a head dimension."""

    def __init__(self, case: str, n: int):
        super().__init__()
        self.case = case
        self.tok = nn.Embedding(7, 4)
        self.pos = nn.Embedding(n, 4)
        self.heads = nn.Parameter(torch.randn(2, 4, 3) / 2)
        self.out = nn.Linear(4, 3)

    def forward(self, x):
        if self.case == "heads":  # x (N, 2, T, 4) @ (2, 4, 3)
            return torch.tanh(x @ self.heads).mean((1, 2))
        h = self.tok(x) + self.pos(torch.arange(x.shape[1]))  # (N, T, 4) + (T, 4)
        z = self.out(torch.tanh(h).mean(1))
        return z.flip(0) if self.case == "flip" else z


@pytest.mark.parametrize("case", ["positions", "flip", "heads"])
def test_outputs_whose_rows_are_not_samples_are_refused(case):
    """Before: a positional table looked up with arange(T), T = N, gave a Gram 9 % off, the
    flipped logits 68 % off (the summed gradient cannot see either), the head-batched weight
    crashed. Now refused, and the Gram (generic path) equals the reference."""
    torch.manual_seed(3)
    n = 5
    model = _Rows(case, n).double()
    X = torch.randn(n, 2, 3, 4, dtype=torch.float64) if case == "heads" else \
        torch.randint(0, 7, (n, n))
    assert ours(model, X) is None
    torch.testing.assert_close(logit_jacobian_gram(model, X), reference(model, X),
                               rtol=1e-10, atol=1e-12)


class _Forms(nn.Module):
    """(1, d) scale and bias parameters, F.embedding with a negative padding_idx."""

    def __init__(self):
        super().__init__()
        self.table = nn.Parameter(torch.randn(7, 4))
        self.s = nn.Parameter(torch.rand(1, 4) + 0.5)
        self.b = nn.Parameter(torch.randn(1, 4))
        self.out = nn.Linear(4, 3)

    def forward(self, idx):
        h = F.embedding(idx, self.table, padding_idx=-1).mean(1)
        return self.out(torch.tanh(h * self.s + self.b))


def test_leading_one_broadcasts_and_negative_padding_are_exact():
    torch.manual_seed(4)
    X = torch.randint(0, 7, (6, 5))
    X[:, 0] = 6  # the padding row (-1) gets no gradient
    model = _Forms().double()
    gram = ours(model, X)
    assert gram is not None
    torch.testing.assert_close(gram, reference(model, X), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("case", ["lstm", "transpose-same-dim"])
def test_multi_output_operations_and_non_transposes_are_refused(case):
    torch.manual_seed(5)

    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = nn.LSTM(4, 5, batch_first=True)
            self.w = nn.Parameter(torch.randn(4, 4))
            self.out = nn.Linear(5, 3)

        def forward(self, x):
            if case == "lstm":
                return self.out(self.rnn(x)[0][:, -1])
            return torch.tanh(x[:, -1] @ self.w.transpose(0, 0))[:, :3]

    model, X = Model().double(), torch.randn(5, 3, 4, dtype=torch.float64)
    assert ours(model, X) is None


class _Keywords(nn.Module):
    """Parameters passed by keyword: F.linear(input=, weight=, bias=), matmul(other=),
    F.conv2d(input=, weight=, stride=)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Parameter(torch.randn(3, 2, 3, 3) / 3)
        self.W = nn.Parameter(torch.randn(4, 12) / 3)
        self.b = nn.Parameter(torch.randn(4))
        self.V = nn.Parameter(torch.randn(4, 3))

    def forward(self, x):
        h = torch.tanh(F.conv2d(input=x, weight=self.conv, stride=(2, 2))).flatten(1)
        h = torch.tanh(F.linear(input=h, weight=self.W, bias=self.b))
        return torch.matmul(h, other=self.V) + F.linear(h, weight=self.V.t())


def test_parameters_passed_by_keyword_are_exact():
    """Before: IndexError from inside the recorder (it read args[0], args[1]): every probe of
    such a model crashed."""
    torch.manual_seed(12)
    model, X = _Keywords().double(), torch.randn(6, 2, 5, 5, dtype=torch.float64)
    gram = ours(model, X)
    assert gram is not None
    torch.testing.assert_close(gram, reference(model, X), rtol=1e-10, atol=1e-12)


def test_float64_logits_from_a_float32_model():
    """The logits' dtype (weights, cotangents) differs from the recorded outputs'. Crashed in
    the row check ("expected scalar type Double but found Float") between two commits."""
    torch.manual_seed(14)

    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Linear(4, 5), nn.Linear(5, 3)

        def forward(self, x):
            return self.b(torch.tanh(self.a(x))).double()

    model, X = Model(), torch.randn(6, 4)
    gram = ours(model, X)
    assert gram is not None and gram.dtype == torch.float64
    torch.testing.assert_close(gram, reference(model, X).double(), rtol=1e-5, atol=1e-6)


class _BatchBranch(nn.Module):
    """Python control flow on the whole batch: the batch takes one branch, a sample alone
    may take the other."""

    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(4, 3), nn.Linear(4, 3)

    def forward(self, x):
        return self.a(x) if float(x.sum()) > 0 else self.b(torch.tanh(x))


def test_samples_that_interact_through_control_flow_are_refused():
    """Before: the Gram of the batch's rows (161 % off the per-sample reference, each sample
    alone), while the generic path gave the reference: the answer depended on the path."""
    torch.manual_seed(15)
    model = _BatchBranch().double()
    X = torch.randn(6, 4, dtype=torch.float64)
    X[0] = X[0].abs() + 1  # sample 0 alone takes branch a
    X[1:] = -X[1:].abs() - 1  # the batch and the others take branch b
    assert ours(model, X) is None
    torch.testing.assert_close(logit_jacobian_gram(model, X), reference(model, X),
                               rtol=1e-10, atol=1e-12)


class _SamePadding(nn.Module):
    """padding="same" with odd and even kernels (torch pads the odd one on the right),
    dilation, and "valid"."""

    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv1d(2, 3, 4, padding="same", dilation=2)
        self.c2 = nn.Conv2d(3, 3, (2, 3), padding="same")
        self.c3 = nn.Conv2d(3, 2, 3, padding="valid", bias=False)
        self.out = nn.Linear(2 * 3 * 4, 3)

    def forward(self, x):  # x (N, 2, 30) -> (N, 3, 30) -> (N, 3, 5, 6)
        h = torch.tanh(self.c1(x)).reshape(-1, 3, 5, 6)
        h = torch.tanh(self.c2(h))
        return self.out(torch.tanh(self.c3(h)).flatten(1))


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel lengths")
def test_same_and_valid_padding_are_exact():
    """Before: refused (the vmap(jacrev) path)."""
    torch.manual_seed(16)
    model, X = _SamePadding().double(), torch.randn(5, 2, 30, dtype=torch.float64)
    gram = ours(model, X)
    assert gram is not None
    torch.testing.assert_close(gram, reference(model, X), rtol=1e-10, atol=1e-12)


def test_rms_norm_is_exact():
    """nn.RMSNorm (F.rms_norm) with its scale. Before: refused (the vmap(jacrev) path)."""
    torch.manual_seed(17)
    model = nn.Sequential(nn.Linear(4, 5), nn.RMSNorm(5, eps=1e-4), nn.Tanh(), nn.Linear(5, 3))
    model, X = model.double(), torch.randn(6, 4, dtype=torch.float64)
    with torch.no_grad():
        model[1].weight.uniform_(0.5, 1.5)
    gram = ours(model, X)
    assert gram is not None
    torch.testing.assert_close(gram, reference(model, X), rtol=1e-10, atol=1e-12)
