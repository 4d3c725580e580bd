"""RunWriter: the probes and the run format for a training loop you wrote yourself.

Works like a TensorBoard writer::

    with RunWriter("runs/mine", model, X[:500], y[:500], lr=0.1) as writer:
        for step in range(1000):
            loss = train_step(model, X, y)             # your code
            writer.log(step, batch_loss=loss)          # any scalars you like
            if step % 25 == 0:
                writer.probe(step)                     # ‖H‖, ‖G‖, λ*, ‖M‖, ‖J‖², ... (probe.py)

The folder has the same format as the trainer's (run.json + .npz, atomic writes) and opens
with :func:`ijr_core.run.load_run`, the CLI and the app. ``meta["source"] == "writer"``; the
run's config records only what the writer knows (lr, loss, n_eigs, eig_tol), the other
config fields keep their defaults and do not describe your model or data.

Scalars logged at a step that is not probed get their own row, where the probe metrics are
NaN (and the other way round).
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ijr_core.model_view import (
    PROBE_MODES,
    ModelError,
    check_inputs,
    check_labels,
    probe_view,
)
from ijr_core.probe import ProbeState, Snapshot, probe
from ijr_core.run import Run, library_versions, now_iso


class RunWriter:
    """Record probes of ``model`` on (probe_X, probe_y) into the run folder ``out_dir``.

    ``lr`` (η, for the 2/η line; update it with :meth:`set_lr` or ``probe(step, lr=...)``),
    ``loss`` ("ce" or "mse"), ``n_eigs`` (top Hessian eigenvalues), ``test_X``/``test_y``
    (optional test set), ``sample_ids`` (indices of the probe samples in your training set;
    default 0..S-1), ``sample_noisy`` (bool per probe sample), ``save_params`` (store a
    parameter snapshot at each probe), ``probe_mode`` ("train", the default: the function
    your training steps descend, batch normalisation on the probe batch's statistics and
    dropout off; "eval": the model in eval mode; see :mod:`ijr_core.model_view`). Any other
    keyword goes into ``run.meta``.

    The probe measures a private copy of ``model``: your model's parameters, buffers,
    ``.grad``, train/eval mode and hooks are exactly as before every probe. ``probe_X`` is one
    tensor with the samples along dimension 0 (a model with several inputs: probe a wrapper
    whose forward takes one stacked tensor).
    """

    def __init__(
        self,
        out_dir: str | os.PathLike,
        model: nn.Module,
        probe_X: torch.Tensor,
        probe_y: torch.Tensor,
        lr: float | None = None,
        loss: str = "ce",
        n_eigs: int = 1,
        test_X: torch.Tensor | None = None,
        test_y: torch.Tensor | None = None,
        *,
        eig_tol: float = 1e-3,
        sample_ids=None,
        sample_noisy=None,
        save_params: bool = True,
        checkpoint_limit: int = 200,
        probe_mode: str = "train",
        **meta: Any,
    ) -> None:
        from ijr_core.config import RunConfig

        if loss not in ("ce", "mse"):
            raise ValueError(f"loss must be 'ce' or 'mse', got {loss!r}")
        if probe_mode not in PROBE_MODES:
            raise ModelError(f"probe_mode must be one of {', '.join(PROBE_MODES)}, "
                             f"got {probe_mode!r}")
        probe_X = check_inputs(probe_X)
        probe_y = check_labels(probe_y, len(probe_X), name="probe_y")
        if (test_X is None) != (test_y is None):
            raise ModelError("pass both test_X and test_y (or neither)")
        if test_X is not None:
            test_X = check_inputs(test_X)
            test_y = check_labels(test_y, len(test_X), name="test_y")
        self.out_dir = Path(out_dir)
        self.model = model
        self.probe_X, self.probe_y = probe_X, probe_y
        self.test_X, self.test_y = test_X, test_y
        self.lr = None
        if lr is not None:
            self.set_lr(lr)
        self.loss, self.n_eigs, self.eig_tol = loss, int(n_eigs), float(eig_tol)
        self.save_params = save_params
        self.probe_mode = probe_mode
        self.state = ProbeState()
        self.closed = False
        config = RunConfig(
            lr=self.lr if self.lr is not None else RunConfig().lr, loss=loss, n_eigs=self.n_eigs,
            eig_tol=self.eig_tol, checkpoint_limit=checkpoint_limit, n_train=len(probe_X),
            probe_size=len(probe_X), name=str(meta.get("name", "RunWriter")),
            probe_mode=probe_mode,
        )
        n = len(probe_X)
        ids = np.arange(n) if sample_ids is None else np.asarray(sample_ids)
        measured = self._meta()
        k = measured["n_classes"]  # the model's, whatever **meta says
        meta = {**measured, **meta}
        check_labels(probe_y, len(probe_X), k, name="probe_y")
        if test_X is not None:
            self._forward(test_X[:1], "test_X")
            check_labels(test_y, len(test_X), k, name="test_y")
        self.run = Run(
            config,
            sample_ids=ids,
            sample_labels=probe_y.detach().cpu().numpy(),
            sample_noisy=sample_noisy,
            meta=meta,
            checkpoint_limit=checkpoint_limit,
        )
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.run.save(self.out_dir)

    def _forward(self, x1: torch.Tensor, name: str) -> tuple[torch.Tensor, torch.nn.Parameter]:
        """The model's output on one sample of ``name`` (and a parameter), or a clear error
        when the model cannot run on it."""
        view = probe_view(self.model, "eval")  # one sample through BN needs eval mode
        param = next(view.parameters())
        x1 = x1.to(param.device)
        try:
            with torch.no_grad():
                out = view(x1.to(param.dtype) if x1.is_floating_point() else x1)
        except Exception as exc:  # the user's forward: any error means these inputs don't fit
            raise ModelError(f"the model cannot run on {name} (one sample of shape "
                             f"{tuple(x1.shape)}, dtype {x1.dtype}): {type(exc).__name__}: "
                             f"{str(exc)[:200]}") from None
        return out, param

    def _meta(self) -> dict[str, Any]:
        out, param = self._forward(self.probe_X[:1], "probe_X")
        if not isinstance(out, torch.Tensor) or out.ndim != 2:
            raise ModelError("the model must return one tensor of logits of shape (N, K), got "
                             + (f"shape {tuple(out.shape)}" if isinstance(out, torch.Tensor)
                                else type(out).__name__))
        k = out.shape[-1]
        return {
            "source": "writer",
            "device": str(param.device),
            "versions": library_versions(),
            "created": now_iso(),
            "n_classes": int(k),
            "input_shape": list(self.probe_X.shape[1:]),
            "n_params": int(sum(p.numel() for p in self.model.parameters() if p.requires_grad)),
            "model": type(self.model).__name__,
            "probe_mode": self.probe_mode,
            "logged_scalars": [],
            "diverged_at": None,
        }

    def set_lr(self, lr: float) -> None:
        """The learning rate used for lr / 2/η from the next probe on."""
        lr = float(lr)
        if not (math.isfinite(lr) and lr > 0):
            raise ValueError(f"lr must be a finite number > 0, got {lr}")
        self.lr = lr

    def probe(self, step: int, lr: float | None = None) -> Snapshot:
        """Measure every metric at the model's current parameters, record it at ``step``
        and save the folder (atomically). Returns the :class:`Snapshot`."""
        self._check_open()
        if lr is not None:
            self.set_lr(lr)
        snap = probe(self.model, self.probe_X, self.probe_y, self.test_X, self.test_y,
                     loss=self.loss, n_eigs=self.n_eigs, eig_tol=self.eig_tol, state=self.state,
                     step=step, lr=self.lr, with_params=self.save_params, mode=self.probe_mode)
        self.run.append_snapshot(snap)
        self.run.save(self.out_dir)
        return snap

    def log(self, step: int, **scalars: float) -> None:
        """Record extra scalars at ``step`` (saved with the next probe or on close)."""
        self._check_open()
        bad = [k for k, v in scalars.items() if not isinstance(v, (int, float, np.number))
               and not (isinstance(v, torch.Tensor) and v.numel() == 1)]
        if bad:
            raise TypeError(f"log() takes numbers; {bad[0]!r} is {type(scalars[bad[0]]).__name__}")
        names = self.run.meta["logged_scalars"]
        names.extend(k for k in scalars if k not in names)
        self.run.append_scalars(step, **{k: float(v) for k, v in scalars.items()})

    def flush(self) -> None:
        """Save everything recorded so far."""
        self.run.save(self.out_dir)

    def close(self, status: str = "finished", **meta: Any) -> Run:
        """Mark the run ``status`` (finished, stopped, diverged, failed), save, return it."""
        if not self.closed:
            self.run.set_status(status, **meta)
            self.run.save(self.out_dir)
            self.closed = True
        return self.run

    def _check_open(self) -> None:
        if self.closed:
            raise RuntimeError(f"RunWriter for {self.out_dir} is closed")

    def __enter__(self) -> RunWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close("finished")
        elif issubclass(exc_type, KeyboardInterrupt):
            self.close("stopped", error="interrupted (KeyboardInterrupt)")
        else:
            self.close("failed", error=f"{exc_type.__name__}: {exc}")

    def __repr__(self) -> str:
        return f"RunWriter({str(self.out_dir)!r}, probes={len(self.run)}, closed={self.closed})"
