"""Fixtures of the app tests: a private runs folder and a tiny, fast config."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from app_constants import TINY

from app import session
from ijr_core.config import RunConfig

torch.set_num_threads(1)


@pytest.fixture
def tiny_config() -> RunConfig:
    return RunConfig.from_dict(TINY)


@pytest.fixture
def runs_dir(tmp_path, monkeypatch) -> Path:
    """Runs of the test go to a temporary folder (via $IJR_RUNS_DIR)."""
    folder = tmp_path / "runs"
    monkeypatch.setenv(session.RUNS_ENV, str(folder))
    session.set_runs_dir(None)
    return folder
