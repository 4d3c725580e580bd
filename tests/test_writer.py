"""RunWriter instrumenting a plain hand-written PyTorch loop."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from ijr_core.probe import ProbeState, probe
from ijr_core.run import SAMPLE_KEYS, load_run
from ijr_core.writer import RunWriter


def _problem(seed=0):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(80, 5, generator=g)
    y = (X[:, 0] + 0.5 * X[:, 1] > 0).long() + (X[:, 2] > 1).long()
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(5, 16), nn.Tanh(), nn.Linear(16, 3))
    return model, X, y


def test_writer_with_a_hand_written_loop(tmp_path):
    model, X, y = _problem()
    opt = torch.optim.SGD(model.parameters(), lr=0.3)
    with RunWriter(tmp_path / "mine", model, X[:40], y[:40], lr=0.3, test_X=X[40:],
                   test_y=y[40:], n_eigs=2, note="hello") as writer:
        for step in range(31):
            loss = nn.functional.cross_entropy(model(X), y)
            opt.zero_grad()
            loss.backward()
            writer.log(step, batch_loss=loss.item())
            if step % 10 == 0:
                snap = writer.probe(step)
                assert snap.step == step
            opt.step()
    run = load_run(tmp_path / "mine")
    assert run.status == "finished" and run.step == 30
    assert run.meta["source"] == "writer" and run.meta["note"] == "hello"
    assert run.meta["n_classes"] == 3 and run.meta["input_shape"] == [5]
    s = run.scalars
    np.testing.assert_array_equal(s["step"], np.arange(31))
    probed = np.isfinite(s["sharpness"])
    np.testing.assert_array_equal(s["step"][probed], [0, 10, 20, 30])
    assert np.isfinite(s["batch_loss"]).all()
    assert np.isfinite(s["sharpness_2"][probed]).all()
    np.testing.assert_allclose(s["two_over_eta"][probed], 2 / 0.3)
    np.testing.assert_array_equal(run.sample_steps, [0, 10, 20, 30])
    for k in SAMPLE_KEYS:
        assert run.samples[k].shape == (4, 40)
    np.testing.assert_array_equal(run.sample_labels, y[:40].numpy())
    assert len(run.params) == 4
    g, lj = s["gn_sharpness"][probed], s["lambda_star_jac"][probed]
    assert (np.abs(g - lj) / g).max() < 2e-3
    # The step-30 probe equals a direct probe at the parameters it stored.
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.copy_(torch.from_numpy(run.params[-1][name]))
    direct = probe(model, X[:40], y[:40], X[40:], y[40:], n_eigs=2, state=ProbeState())
    np.testing.assert_allclose(s["train_loss"][-1], direct.scalars["train_loss"], rtol=1e-6)
    np.testing.assert_allclose(s["sharpness"][-1], direct.scalars["sharpness"], rtol=1e-3)
    assert len(run.phases()) == 31


def test_writer_saves_while_open_and_records_failures(tmp_path):
    model, X, y = _problem()
    with pytest.raises(RuntimeError, match="my bug"):
        with RunWriter(tmp_path, model, X, y, lr=0.1) as writer:
            writer.probe(0)
            assert load_run(tmp_path).status == "running"
            assert len(load_run(tmp_path)) == 1
            raise RuntimeError("my bug")
    run = load_run(tmp_path)
    assert run.status == "failed" and "my bug" in run.meta["error"]


def test_writer_options_and_errors(tmp_path):
    model, X, y = _problem()
    writer = RunWriter(tmp_path, model, X, y, loss="mse", save_params=False,
                       sample_ids=np.arange(80) + 1000, sample_noisy=np.arange(80) % 2 == 0)
    snap = writer.probe(0)
    assert np.all(snap.samples["m_norm"] == 1.0) and "lr" not in snap.scalars
    writer.probe(5, lr=0.2)
    with pytest.raises(TypeError, match="numbers"):
        writer.log(5, bad="text")
    writer.log(5, loss_t=torch.tensor(0.5))
    run = writer.close()
    assert writer.closed and run.status == "finished"
    with pytest.raises(RuntimeError, match="closed"):
        writer.probe(6)
    loaded = load_run(tmp_path)
    assert loaded.params == [] and loaded.sample_ids[0] == 1000 and loaded.sample_noisy[0]
    assert loaded.scalars["lr"][-1] == 0.2 and loaded.scalars["loss_t"][-1] == 0.5
    with pytest.raises(ValueError, match="loss"):
        RunWriter(tmp_path / "x", model, X, y, loss="hinge")
    with pytest.raises(ValueError, match="probe_y"):
        RunWriter(tmp_path / "y", model, X, y[:3])


def test_writer_lr_is_validated_and_shown_only_when_given(tmp_path):
    from ijr_core.cli import format_run

    model, X, y = _problem()
    for bad in (0, -0.1, float("nan")):
        with pytest.raises(ValueError, match="lr"):
            RunWriter(tmp_path / "bad", model, X, y, lr=bad)
    writer = RunWriter(tmp_path / "none", model, X, y)
    with pytest.raises(ValueError, match="lr must be a finite number > 0, got 0.0"):
        writer.set_lr(0.0)  # would make 2/η infinite
    writer.probe(0)
    assert "η not given" in format_run(writer.close())
    writer = RunWriter(tmp_path / "some", model, X, y, lr=0.25)
    writer.probe(0)
    assert "η=0.25" in format_run(writer.close())
