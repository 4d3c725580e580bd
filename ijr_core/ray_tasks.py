"""The Ray side of :class:`ijr_core.executors.RayExecutor` (this module imports Ray).

One run is one task, :func:`train_task`: it trains into a temporary folder of its worker
and returns the run's files as bytes. The driver writes them into the run's folder, so
the workers need no shared filesystem (with a shared one the bytes still travel through
Ray's object store; they are a few MB per run). Steps reach the driver through a small
actor, :class:`ProgressBoard`, kept on the driver's node.

Faults: a worker process or node that dies mid-run is a system failure: Ray runs the task
again elsewhere (``max_retries``), from the start (runs are deterministic given their
config, so the retried run equals the one that was lost). An exception inside the task
(e.g. a data file missing on that node) is not retried: the run is reported as failed.
"""

from __future__ import annotations

import contextlib
import tempfile
import time
from pathlib import Path

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from ijr_core.run import RUN_FILES, atomic_write, load_run

PROJECT_ROOT = Path(__file__).resolve().parent.parent
MAX_RUN_BYTES = 2 * 1024**3  # the most a returned run may hold, checked before writing
POLL_S = 0.5


def connect(address: str | None = None) -> None:
    """Join the Ray cluster at ``address`` ("auto", "host:port"), or start a new local Ray
    of this process when None (never someone else's cluster: when that one ends, Ray ends
    its drivers), unless this process is connected already. Workers find ``ijr_core`` on the
    path of this project (each node needs the project at the same path, or installed)."""
    if ray.is_initialized():
        return
    job = ray.job_config.JobConfig(code_search_path=[str(PROJECT_ROOT)])
    kwargs = {"include_dashboard": False} if address is None else {}
    ray.init(address=address or "local", job_config=job, log_to_driver=False,
             configure_logging=False, **kwargs)


@ray.remote(num_cpus=0)
class ProgressBoard:
    """Where tasks say that they started (and on which node) and how far they are."""

    def __init__(self) -> None:
        self.steps: dict[int, int] = {}
        self.starts: dict[int, int] = {}
        self.nodes: dict[int, str] = {}

    def started(self, i: int, node: str) -> None:
        self.starts[i] = self.starts.get(i, 0) + 1
        self.nodes[i] = node
        self.steps[i] = 0

    def step(self, i: int, step: int) -> None:
        self.steps[i] = step

    def snapshot(self) -> dict:
        return {"steps": dict(self.steps), "starts": dict(self.starts),
                "nodes": dict(self.nodes)}


@ray.remote
def train_task(i: int, config: dict, threads: int | None, cuda: bool, board) -> dict:
    """Train one run on this worker; returns {file name: bytes} of its folder."""
    from ijr_core.config import RunConfig
    from ijr_core.executors import torch_threads
    from ijr_core.trainer import train

    cfg = RunConfig.from_dict(config)
    if cuda:
        cfg = cfg.replace(device="cuda")
    board.started.remote(i, ray.get_runtime_context().get_node_id())
    with tempfile.TemporaryDirectory(prefix="ijr-run-") as tmp, torch_threads(threads):
        train(cfg, out_dir=tmp, callbacks=[lambda snap: board.step.remote(i, snap.step)])
        return {name: (Path(tmp) / name).read_bytes() for name in RUN_FILES}


def write_run_files(files: dict, folder: Path) -> None:
    """Write a run returned by a task into ``folder`` (run.json last), accepting only the
    files of the run format and at most MAX_RUN_BYTES."""
    if not isinstance(files, dict) or set(files) != set(RUN_FILES):
        raise ValueError("a task returned something other than a run's files")
    if any(not isinstance(v, bytes) for v in files.values()):
        raise ValueError("a task returned a run file that is not bytes")
    if sum(len(v) for v in files.values()) > MAX_RUN_BYTES:
        raise ValueError("a task returned a run larger than allowed")
    folder.mkdir(parents=True, exist_ok=True)
    for name in (*[n for n in RUN_FILES if n != "run.json"], "run.json"):
        atomic_write(folder / name, lambda f, data=files[name]: f.write(data))


def _resources(executor, config) -> tuple[float, float]:
    """(CPUs, GPUs) one run declares."""
    gpus = 0.0
    if config.device == "auto" or config.device.startswith("cuda"):
        has_gpus = ray.cluster_resources().get("GPU", 0) > 0
        if has_gpus:
            gpus = 0.25 if executor.gpus_per_run is None else float(executor.gpus_per_run)
    return float(executor.cpus_per_run), gpus


def run_jobs(executor, jobs, sink, control) -> None:
    """Submit every job as a task and take the runs as they come back (any order)."""
    from ijr_core.executors import run_threads

    if not jobs:
        return
    connect(executor.address)
    here = ray.get_runtime_context().get_node_id()
    board = ProgressBoard.options(
        scheduling_strategy=NodeAffinitySchedulingStrategy(here, soft=False)
    ).remote()
    cpus, gpus = _resources(executor, jobs[0][1])
    threads = run_threads(1, cpus)
    task = train_task.options(num_cpus=cpus, num_gpus=gpus, max_retries=executor.max_retries,
                              retry_exceptions=False)
    refs = {task.remote(i, cfg.to_dict(), threads, gpus > 0, board): (i, folder)
            for i, cfg, folder in jobs}
    pending = list(refs)
    try:
        while pending and not control.stopped:
            ready, pending = ray.wait(pending, num_returns=1, timeout=POLL_S)
            _report(board, sink)
            for ref in ready:
                i, folder = refs.pop(ref)  # dropping the ref frees the run in the object store
                if _collect(ref, i, folder, sink):
                    control.stop()
            del ready
        _report(board, sink)
    finally:
        for ref in pending:  # stopped, failed or interrupted: cancel what has not come back
            with contextlib.suppress(Exception):
                ray.cancel(ref, force=True)
        with contextlib.suppress(Exception):
            ray.kill(board)


def _report(board, sink) -> None:
    """Pass the tasks' starts, retries and steps on to the sink."""
    try:
        snap = ray.get(board.snapshot.remote(), timeout=10)
    except (ray.exceptions.GetTimeoutError, ray.exceptions.RayError):
        return
    for i, starts in snap["starts"].items():
        sink.started(i, attempt=starts, node=snap["nodes"].get(i))
    for i, step in snap["steps"].items():
        sink.step(i, step)


def _collect(ref, i: int, folder: Path | None, sink) -> bool:
    """Write and report a run that came back; True when the grid should stop."""
    try:
        files = ray.get(ref)
    except ray.exceptions.RayTaskError as exc:  # raised inside the task: not retried
        cause = getattr(exc, "cause", None)  # the original exception, without Ray's traceback
        return bool(sink.failed(i, cause if isinstance(cause, Exception) else exc))
    except ray.exceptions.RayError as exc:  # retries used up (worker or node lost)
        return bool(sink.failed(i, exc))
    with contextlib.ExitStack() as stack:
        if folder is None:
            folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="ijr-run-")))
        write_run_files(files, folder)
        run = load_run(folder)
    sink.done(i, run)
    return False


def wait_for_cpus(n: float, timeout: float = 60.0) -> None:
    """Block until the cluster offers ``n`` CPUs (for tests and benchmarks)."""
    t0 = time.monotonic()
    while ray.cluster_resources().get("CPU", 0) < n and time.monotonic() - t0 < timeout:
        time.sleep(0.2)

