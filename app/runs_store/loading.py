"""Loading run folders for the app: runs cached by the modification time of their
run.json (a run still being written reloads when it changes, a finished one loads once),
sweeps read run by run, groups (:func:`ijr_core.group.load_group`), and the demo run
closest to a config.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from app.runs_store.listing import _inside, _read_json, demo_runs
from ijr_core.group import GROUP_SCHEMA_VERSION, load_group, write_group  # noqa: F401
from ijr_core.protocol import RunLike
from ijr_core.record import Run
from ijr_core.run import RunFormatError, load_run, read_json_object

if TYPE_CHECKING:
    from ijr_core.config import RunConfig


@functools.lru_cache(maxsize=16)
def _load(folder: str, mtime: float) -> Run:
    return load_run(folder)


def load_cached(folder: Path) -> Run:
    """load_run with a cache keyed by run.json's modification time; RunFormatError as is."""
    try:
        mtime = (Path(folder) / "run.json").stat().st_mtime
    except OSError as exc:
        raise RunFormatError(f"{folder}: no readable run.json ({exc})") from None
    return _load(str(folder), mtime)


def open_sweep(folder: Path, load: Callable[[Path], RunLike] = load_run):
    """A :class:`ijr_core.sweep.Sweep` from a sweep folder, each run read with ``load``
    (e.g. a cached loader, so reopening is instant). A finished sweep must have every run;
    an unfinished one (still running, or interrupted) holds the runs saved so far.
    Raises RunFormatError saying what is wrong."""
    from ijr_core.config import RunConfig
    from ijr_core.sweep import Sweep

    folder = Path(folder)
    path = folder / "sweep.json"
    doc = _read_json(path)
    if not isinstance(doc.get("runs"), list) or not isinstance(doc.get("lrs"), list):
        raise RunFormatError(f"{path} is missing or not a valid sweep.json")
    if not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in doc["lrs"]):
        raise RunFormatError(f"{path}: 'lrs' must be a list of numbers")
    if not isinstance(doc.get("meta") or {}, dict):
        raise RunFormatError(f"{path}: 'meta' must be an object")
    if len(doc["runs"]) != len(doc["lrs"]):
        raise RunFormatError(
            f"{path}: {len(doc['lrs'])} learning rates but {len(doc['runs'])} runs"
        )
    try:
        config = RunConfig.from_dict(doc.get("config") or {})
    except (ValueError, TypeError) as exc:
        raise RunFormatError(f"{path}: invalid config: {exc}") from None
    finished = doc.get("status") == "finished"
    runs, lrs = [], []
    for name, lr in zip(doc["runs"], doc["lrs"], strict=True):
        if not isinstance(name, str) or not _inside(folder / name, folder):
            raise RunFormatError(f"{path}: bad run name {name!r}")
        try:
            runs.append(load(folder / name))
        except RunFormatError:
            if finished:
                raise
            continue
        lrs.append(float(lr))
    if not runs:
        raise RunFormatError(f"{folder.name}: no run of this sweep is saved yet")
    meta = {**(doc.get("meta") or {}), "status": doc.get("status")}
    return Sweep(config=config, lrs=np.asarray(lrs, dtype=np.float64), runs=runs, meta=meta)


# Fields that change what a run shows; the rest (name, steps, probing, device) do not.
_MATCH_FIELDS = (
    "dataset", "n_train", "label_noise", "noise", "n_classes", "model", "width", "depth",
    "activation", "optimizer", "lr", "batch_size", "momentum", "weight_decay", "rho", "beta",
    "loss", "seed", "data_seed",
)


@functools.lru_cache(maxsize=8)
def _demo_configs(mtimes: tuple) -> list[tuple[Path, dict]]:
    out = []
    for folder, _ in mtimes:
        try:
            cfg = read_json_object(Path(folder) / "run.json")["config"]
        except (RunFormatError, KeyError):
            continue
        if isinstance(cfg, dict):
            out.append((Path(folder), cfg))
    return out


def matching_demo(config: RunConfig) -> tuple[Path, list[str]] | None:
    """The demo run closest to ``config``: same dataset, fewest differing fields among those
    that change what a run shows; (its folder, the fields that differ). None when no demo
    has this dataset."""
    folders = demo_runs()
    stamps = []
    for f in folders:
        try:
            stamps.append((str(f), (f / "run.json").stat().st_mtime))
        except OSError:
            continue
    want = config.to_dict()
    best = None
    for folder, cfg in _demo_configs(tuple(stamps)):
        if cfg.get("dataset") != want["dataset"]:
            continue
        diff = [k for k in _MATCH_FIELDS if k in cfg and cfg[k] != want[k]]
        if best is None or len(diff) < len(best[1]):
            best = (folder, diff)
    return best
