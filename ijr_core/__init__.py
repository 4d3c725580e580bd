"""ijr_core: the math and the trainers behind the IJR explorer.

A pure library (torch, numpy, scikit-learn; never streamlit or altair). The names below are
the public API (DESIGN.md); everything else is an implementation detail.
"""

from ijr_core.config import PRESETS, ConfigError, RunConfig, resolve_device
from ijr_core.curvature import (
    JacobianNorms,
    ggn_operator,
    gn_sharpness,
    hessian_operator,
    jacobian_norms,
    lambda_star,
    logit_jacobian_gram,
    loss_fn,
    m_norm,
    sharpness,
    softmax_hessian,
    top_eigenpairs,
)
from ijr_core.data import DATASETS, Dataset, DatasetError, load_dataset
from ijr_core.grid import Grid, load_grid, run_grid
from ijr_core.models import MODELS, build_model
from ijr_core.optimizers import OPTIMIZERS, build_optimizer
from ijr_core.probe import ProbeState, Snapshot, probe
from ijr_core.protocol import RunLike
from ijr_core.run import Run, RunFormatError, load_run
from ijr_core.sweep import Sweep, SweepControl, load_sweep, sweep_lr
from ijr_core.trainer import TrainingControl, train
from ijr_core.writer import RunWriter

__all__ = [
    # the math of SCIENCE.md
    "softmax_hessian", "m_norm", "logit_jacobian_gram", "jacobian_norms", "JacobianNorms",
    "hessian_operator", "ggn_operator", "top_eigenpairs", "sharpness", "gn_sharpness",
    "lambda_star", "loss_fn",
    # configuration and registries
    "RunConfig", "PRESETS", "ConfigError", "resolve_device",
    "load_dataset", "Dataset", "DatasetError", "DATASETS", "build_model", "MODELS",
    "build_optimizer", "OPTIMIZERS",
    # training, probes and runs on disk
    "train", "TrainingControl", "probe", "ProbeState", "Snapshot",
    "Run", "RunLike", "load_run", "RunFormatError", "RunWriter",
    # sweeps
    "sweep_lr", "Sweep", "SweepControl", "load_sweep",
    # grids (threads or Ray: ijr_core.executors)
    "run_grid", "Grid", "load_grid",
]
