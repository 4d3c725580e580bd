"""Finding and loading run folders for the app: saved runs, demo runs and the demo
learning-rate sweep in assets/demo_runs.

Loading is cached by (folder, modification time of run.json), so a run that is still
being written reloads when it changes and a finished one loads once.
"""

from __future__ import annotations

import functools
from pathlib import Path

from ijr_core.run import (
    Run,
    RunFormatError,
    check_run_json,
    load_run,
    read_json_object,
    shown_status,
)

ASSETS = Path(__file__).resolve().parent.parent / "assets"
DEMO_DIR = ASSETS / "demo_runs"


def run_label(folder: Path, shown: str | None = None) -> str:
    """Short description of a run folder from its run.json: the folder's name (or
    ``shown``, e.g. "<group>/<run>"), the run's name, dataset, η, status and step."""
    folder = Path(folder)
    try:
        doc = check_run_json(folder / "run.json")
    except RunFormatError as exc:
        return damaged_label(folder, exc, shown)
    cfg = doc.get("config") or {}
    name = cfg.get("name") or cfg.get("optimizer")
    return (f"{shown or folder.name} · {name} · {cfg.get('dataset')} · η={cfg.get('lr')} · "
            f"{shown_status(doc)} @ {doc.get('step')}")


def damaged_label(folder: Path, exc: Exception, shown: str | None = None) -> str:
    """ "<folder> · damaged: <why>" for a run that cannot be opened (listed, never loaded)."""
    folder = Path(folder)
    why = str(exc).replace(str(folder / "run.json"), "run.json").replace(str(folder), "")
    return f"{shown or folder.name} · damaged: {why[:120]}"


def list_runs(root: Path) -> list[Path]:
    """Run folders (holding a run.json) directly under ``root``, newest first."""
    if not root.is_dir():
        return []
    folders = [p for p in root.iterdir() if (p / "run.json").is_file()]
    return sorted(folders, key=lambda p: p.name, reverse=True)


def demo_runs() -> list[Path]:
    """The demo runs shipped in assets/demo_runs, by name (run folders only: the demo
    sweeps there hold no run.json of their own, see :func:`demo_sweeps`)."""
    return sorted(list_runs(DEMO_DIR), key=lambda p: p.name)


def demo_sweeps(marker: str = "sweep.json") -> list[Path]:
    """The demo learning-rate sweeps shipped in assets/demo_runs (folders holding a
    sweep.json; with ``marker="group.json"`` the demo optimizer comparisons), by name.
    Read-only, like the demo runs."""
    if not DEMO_DIR.is_dir():
        return []
    return sorted((p for p in DEMO_DIR.iterdir() if (p / marker).is_file()),
                  key=lambda p: p.name)


def demo_groups() -> list[Path]:
    """The demo optimizer comparisons shipped in assets/demo_runs (folders with group.json)."""
    return demo_sweeps("group.json")


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


def matching_demo(config) -> tuple[Path, list[str]] | None:
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
