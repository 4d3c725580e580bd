"""Fixtures of the app tests: a private runs folder, a tiny, fast config, and for the
browser tests a `streamlit run` server and Debian's chromium driven by Playwright."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import torch
from app_constants import CHROMIUM, CHROMIUM_ARGS, ROOT, TINY

from app import session
from ijr_core.config import RunConfig

# IJR_TEST_THREADS: the suite must pass with any thread count (run it with 1 and 2)
torch.set_num_threads(int(os.environ.get("IJR_TEST_THREADS", "1")))


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


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_healthy(url: str, proc: subprocess.Popen, timeout: float = 90) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"streamlit exited early:\n{proc.stdout.read()}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise TimeoutError("streamlit did not become healthy")


@pytest.fixture
def server(tmp_path):
    """`streamlit run app/main.py` on a free localhost port with its own runs folder;
    yields (url, runs folder) once the server answers its health check."""
    port = _free_port()
    env = dict(os.environ, IJR_RUNS_DIR=str(tmp_path / "runs"), IJR_TORCH_THREADS="1")
    cmd = [
        sys.executable, "-m", "streamlit", "run", "app/main.py",
        "--server.headless", "true", "--server.port", str(port),
        "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false",
        "--server.fileWatcherType", "none",
    ]  # fmt: skip
    proc = subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url, proc)
        yield url, tmp_path / "runs"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture
def chromium():
    """Debian's /usr/bin/chromium launched by Playwright (never a downloaded build); closed
    at the end unless the test closed it."""
    from playwright.sync_api import sync_playwright

    assert Path(CHROMIUM).exists(), "install Debian's chromium: apt-get install -y chromium"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            if browser.is_connected():
                browser.close()
