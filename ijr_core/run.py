"""Run: the recorded history of one training run, in memory and on disk.

A run is columnar. ``scalars`` holds one 1-D array per metric over the probe steps
(``scalars["step"]`` is the step axis, int64; every other array is float64, NaN where a
metric was not recorded at that step). ``samples`` holds per-sample arrays of shape
(checkpoints × samples), float32, at the steps ``sample_steps``; ``params`` holds one
parameter snapshot (name -> array) per checkpoint at the same steps.

On disk a run is one folder (see DESIGN.md)::

    run.json      schema_version, config, status, step, meta
    scalars.npz   step + one float64 array per metric
    samples.npz   step (C,), sample_ids / labels / noisy (S,), one (C, S) float32 array per metric
    params.npz    step (C,), one (C, *shape) array per parameter name

Every file is written atomically (temporary file in the same folder, flush, fsync,
``os.replace``), so an interrupted save leaves the previous version intact. Files are
read with ``allow_pickle=False``; a damaged folder raises :class:`RunFormatError`
naming the file and what is wrong with it.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import threading
import uuid
import zipfile
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from ijr_core.phases import PHASES as PHASES  # re-exported: the phase labels
from ijr_core.phases import PhaseAnalysis, PhaseRules, analyse_phases
from ijr_core.phases import phase_spans as _phase_spans

SCHEMA_VERSION = 1
STATUSES = ("running", "paused", "finished", "stopped", "diverged", "failed")
SAMPLE_KEYS = ("m_norm", "lambda_star", "jac_spectral_sq", "jac_frobenius_sq", "p_max", "correct")
RUN_FILES = ("run.json", "scalars.npz", "samples.npz", "params.npz")


class RunFormatError(ValueError):
    """A run folder is missing, damaged or of an unknown format; the message says which."""


def now_iso() -> str:
    """Current UTC time as an ISO-8601 string (seconds)."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def library_versions() -> dict[str, str]:
    """Versions of the libraries a run depends on, recorded in its metadata."""
    import platform

    import torch

    versions = {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "torch": torch.__version__,
    }
    with contextlib.suppress(Exception):
        import sklearn

        versions["scikit-learn"] = sklearn.__version__
    return versions


# --------------------------------------------------------------------------- atomic writes


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], None]) -> None:
    """Write ``path`` atomically: ``write(f)`` fills a temporary file in the same folder,
    which is flushed, fsynced and renamed over ``path``. If ``write`` raises, the old file
    is left untouched and the temporary file is removed."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    _fsync_dir(path.parent)


def _fsync_dir(folder: Path) -> None:
    # Makes the rename itself durable; not supported on every platform/filesystem.
    with contextlib.suppress(OSError, AttributeError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Atomically write UTF-8 text to ``path``."""
    atomic_write(path, lambda f: f.write(text.encode("utf-8")))


def atomic_write_npz(path: str | os.PathLike, arrays: Mapping[str, np.ndarray]) -> None:
    """Atomically write a (non-pickled) ``.npz`` archive of ``arrays``."""
    arrays = {k: np.asarray(v) for k, v in arrays.items()}
    for k, v in arrays.items():
        if v.dtype == object:
            raise TypeError(f"array {k!r} has dtype object; runs never store pickled data")
    atomic_write(path, lambda f: np.savez(f, **arrays))


# --------------------------------------------------------------------------- the Run


class Run:
    """History of one run, built incrementally by the trainer (or :class:`RunWriter`) and
    read by the app. Appends and :meth:`copy` hold an internal lock, so a UI thread can take
    a consistent :meth:`copy` while training appends."""

    def __init__(
        self,
        config: Any = None,
        *,
        status: str = "running",
        meta: Mapping[str, Any] | None = None,
        sample_ids: Iterable[int] = (),
        sample_labels: Iterable[int] = (),
        sample_noisy: Iterable[bool] | None = None,
        checkpoint_limit: int | None = None,
    ) -> None:
        if status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, got {status!r}")
        self.config = config
        self.status = status
        self.step = 0
        self.meta: dict[str, Any] = dict(meta or {})
        self.sample_ids = np.asarray(list(sample_ids), dtype=np.int64)
        self.sample_labels = np.asarray(list(sample_labels), dtype=np.int64)
        n = len(self.sample_ids)
        noisy = (
            np.zeros(n, dtype=bool)
            if sample_noisy is None
            else np.asarray(list(sample_noisy), dtype=bool)
        )
        self.sample_noisy = noisy
        if not (len(self.sample_labels) == n == len(noisy)):
            raise ValueError(
                f"sample_ids ({n}), sample_labels ({len(self.sample_labels)}) and sample_noisy "
                f"({len(noisy)}) must have the same length"
            )
        if checkpoint_limit is None:
            checkpoint_limit = getattr(config, "checkpoint_limit", 200)
        self.checkpoint_limit = int(checkpoint_limit)
        self._lock = threading.RLock()
        self._steps: list[int] = []
        self._cols: dict[str, list[float]] = {}
        self._sample_steps: list[int] = []
        self._sample_rows: dict[str, list[np.ndarray]] = {k: [] for k in SAMPLE_KEYS}
        self._params: list[dict[str, np.ndarray]] = []
        self._cache: dict[str, Any] = {}

    # ---- incremental building

    def append_scalars(self, step: int, **values: float) -> None:
        """Record scalar metrics at ``step``. Steps are non-decreasing; values at the step of
        the last row are merged into it. A metric missing from a row is NaN there."""
        step = int(step)
        with self._lock:
            if self._steps and step < self._steps[-1]:
                raise ValueError(
                    f"steps must be non-decreasing: got {step} after {self._steps[-1]}"
                )
            if not self._steps or step != self._steps[-1]:
                self._steps.append(step)
                for col in self._cols.values():
                    col.append(math.nan)
            n = len(self._steps)
            for key, value in values.items():
                if key == "step":
                    continue
                col = self._cols.get(key)
                if col is None:
                    col = self._cols[key] = [math.nan] * n
                col[-1] = float(value)
            self.step = max(self.step, step)
            self._cache.pop("scalars", None)

    def append_checkpoint(
        self,
        step: int,
        samples: Mapping[str, np.ndarray],
        params: Mapping[str, np.ndarray] | None = None,
    ) -> None:
        """Record per-sample arrays (each (S,)) and optionally a parameter snapshot at ``step``.
        Older checkpoints are thinned when there are more than ``checkpoint_limit``."""
        step = int(step)
        n = len(self.sample_ids)
        rows = {}
        for key in SAMPLE_KEYS:
            if key not in samples:
                raise ValueError(f"checkpoint at step {step} lacks per-sample array {key!r}")
            row = np.asarray(samples[key], dtype=np.float32).reshape(-1)
            if row.shape != (n,):
                raise ValueError(f"per-sample array {key!r} has shape {row.shape}, expected ({n},)")
            rows[key] = row
        with self._lock:
            if self._sample_steps and step <= self._sample_steps[-1]:
                if step < self._sample_steps[-1]:
                    raise ValueError(
                        f"checkpoint steps must increase: got {step} after {self._sample_steps[-1]}"
                    )
                self._drop_checkpoints([len(self._sample_steps) - 1])
            if self._params and params is None:
                raise ValueError("a run that stores parameters needs them at every checkpoint")
            if self._sample_steps and not self._params and params is not None:
                params = None  # keeps params aligned with sample_steps: all or none
            self._sample_steps.append(step)
            for key in SAMPLE_KEYS:
                self._sample_rows[key].append(rows[key])
            if params is not None:
                self._params.append({k: np.array(v, copy=True) for k, v in params.items()})
            self.step = max(self.step, step)
            if len(self._sample_steps) > max(self.checkpoint_limit, 2):
                self._thin()
            self._cache.pop("samples", None)

    def append_snapshot(self, snapshot) -> None:
        """Record a :class:`~ijr_core.probe.Snapshot`: its scalars, per-sample arrays and
        (when it has them) parameters, at its step."""
        with self._lock:
            self.append_scalars(snapshot.step, **snapshot.scalars)
            self.append_checkpoint(snapshot.step, snapshot.samples, snapshot.params)

    def _thin(self) -> None:
        """Drop every other checkpoint, keeping the first and the last."""
        c = len(self._sample_steps)
        drop = [i for i in range(1, c - 1) if i % 2 == 1]
        self._drop_checkpoints(drop)

    def _drop_checkpoints(self, indices: list[int]) -> None:
        gone = set(indices)
        keep = [i for i in range(len(self._sample_steps)) if i not in gone]
        self._sample_steps = [self._sample_steps[i] for i in keep]
        for key in SAMPLE_KEYS:
            self._sample_rows[key] = [self._sample_rows[key][i] for i in keep]
        if self._params:
            self._params = [self._params[i] for i in keep]
        self._cache.pop("samples", None)

    def set_status(self, status: str, **meta: Any) -> None:
        """Set the status (one of STATUSES) and update metadata."""
        if status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, got {status!r}")
        with self._lock:
            self.status = status
            self.meta.update(meta)

    # ---- read access

    @property
    def lock(self) -> threading.RLock:
        """The lock that guards appends (hold it to read several fields consistently)."""
        return self._lock

    @property
    def scalars(self) -> dict[str, np.ndarray]:
        """Metric name -> 1-D array over recorded steps; "step" is int64, the rest float64.
        The arrays are read-only (shared with copies); ``.copy()`` one to modify it."""
        with self._lock:
            cached = self._cache.get("scalars")
            if cached is None:
                cached = {"step": np.asarray(self._steps, dtype=np.int64)}
                for key, col in self._cols.items():
                    cached[key] = np.asarray(col, dtype=np.float64)
                _read_only(cached)
                self._cache["scalars"] = cached
            return dict(cached)

    @property
    def samples(self) -> dict[str, np.ndarray]:
        """Per-sample metric name -> (checkpoints × samples) float32 array."""
        with self._lock:
            cached = self._cache.get("samples")
            if cached is None:
                n = len(self.sample_ids)
                cached = {
                    key: (np.stack(rows) if rows else np.zeros((0, n), np.float32)).astype(
                        np.float32
                    )
                    for key, rows in self._sample_rows.items()
                }
                _read_only(cached)
                self._cache["samples"] = cached
            return dict(cached)

    @property
    def sample_steps(self) -> np.ndarray:
        """Steps of the per-sample checkpoints, (C,) int64."""
        with self._lock:
            return np.asarray(self._sample_steps, dtype=np.int64)

    @property
    def params(self) -> list[dict[str, np.ndarray]]:
        """Parameter snapshots, one dict per checkpoint (same steps as ``sample_steps``),
        or an empty list when the run stores none."""
        with self._lock:
            return list(self._params)

    def __len__(self) -> int:
        return len(self._steps)

    def scalar(self, name: str) -> np.ndarray:
        """One scalar series; an all-NaN array when the metric was never recorded."""
        s = self.scalars
        return s[name] if name in s else np.full(len(s["step"]), np.nan)

    def last(self, name: str, default: float = math.nan) -> float:
        """Last finite value of a scalar metric (or ``default``)."""
        values = self.scalar(name)
        finite = values[np.isfinite(values)]
        return float(finite[-1]) if len(finite) else default

    def copy(self) -> Run:
        """A consistent snapshot for another thread: later appends do not change it."""
        with self._lock:
            other = Run.__new__(Run)
            other.__dict__.update(self.__dict__)
            other._lock = threading.RLock()
            other.meta = json.loads(json.dumps(self.meta, default=str))
            other._steps = list(self._steps)
            other._cols = {k: list(v) for k, v in self._cols.items()}
            other._sample_steps = list(self._sample_steps)
            other._sample_rows = {k: list(v) for k, v in self._sample_rows.items()}
            other._params = list(self._params)
            other._cache = dict(self._cache)
            return other

    # ---- phases

    def phase_analysis(self, **overrides: Any) -> PhaseAnalysis:
        """Phase labels and events under the run's config rules (see :mod:`ijr_core.phases`);
        ``overrides`` (eos_fraction, arp_fraction, phase_sustain, unstable_factor,
        arp_smoothing) that are not None replace the config's values."""
        return analyse_phases(
            self.scalar("sharpness"),
            self.scalar("two_over_eta"),
            self.scalar("m_norm_mean"),
            PhaseRules.from_config(self.config, **overrides),
        )

    def phases(
        self, eos_fraction: float | None = None, arp_fraction: float | None = None
    ) -> np.ndarray:
        """Phase ("I", "II", "III" or "U") at each recorded step: the project's operational
        definition of SCIENCE.md's phases (see :mod:`ijr_core.phases`). Thresholds default
        to the run's config (RunConfig's defaults when it has none)."""
        return self.phase_analysis(eos_fraction=eos_fraction, arp_fraction=arp_fraction).labels

    def phase_spans(
        self, eos_fraction: float | None = None, arp_fraction: float | None = None
    ) -> list:
        """Consecutive phases as (phase, start_step, end_step); a span ends where the next
        begins, the last one at the last recorded step."""
        return _phase_spans(self.phases(eos_fraction, arp_fraction), self.scalars["step"])

    # ---- disk

    def save(self, out_dir: str | os.PathLike) -> Path:
        """Write the run folder (created if needed); each file atomically. Parameters and
        samples go first and run.json last, so run.json never describes data not yet written."""
        out = Path(out_dir)
        if not out.is_dir():
            out.mkdir(parents=True, exist_ok=True)
            _fsync_dir(out.parent)  # the new folder's own entry survives a crash too
        with self._lock:
            scalars = self.scalars
            samples = self.samples
            sample_steps = self.sample_steps
            params = self.params
            doc = self._json_doc()
            sample_ids, labels, noisy = self.sample_ids, self.sample_labels, self.sample_noisy
        if params:
            stacked = {name: np.stack([p[name] for p in params]) for name in params[0]}
            atomic_write_npz(
                out / "params.npz",
                {"step": sample_steps, **{f"param:{k}": v for k, v in stacked.items()}},
            )
        else:
            atomic_write_npz(out / "params.npz", {"step": np.zeros(0, np.int64)})
        atomic_write_npz(
            out / "samples.npz",
            {
                "step": sample_steps,
                "sample_ids": sample_ids,
                "labels": labels,
                "noisy": noisy,
                **samples,
            },
        )
        atomic_write_npz(out / "scalars.npz", scalars)
        atomic_write_text(out / "run.json", json.dumps(doc, indent=2, default=_json_default) + "\n")
        return out

    def _json_doc(self) -> dict[str, Any]:
        cfg = self.config
        if cfg is None:
            cfg_dict = None
        elif hasattr(cfg, "to_dict"):
            cfg_dict = cfg.to_dict()
        else:
            cfg_dict = dict(cfg)
        meta = dict(self.meta)
        meta.setdefault("created", now_iso())
        meta["updated"] = now_iso()
        self.meta.setdefault("created", meta["created"])
        return {
            "schema_version": SCHEMA_VERSION,
            "status": self.status,
            "step": int(self.step),
            "device": meta.get("device"),
            "versions": meta.get("versions"),
            "created": meta["created"],
            "updated": meta["updated"],
            "config": cfg_dict,
            "checkpoint_limit": self.checkpoint_limit,
            "meta": meta,
        }

    def __repr__(self) -> str:
        c = len(self._sample_steps)
        return f"Run(status={self.status!r}, step={self.step}, probes={len(self)}, checkpoints={c})"


def _read_only(arrays: dict[str, np.ndarray]) -> None:
    # The cached arrays are shared with copies handed to other threads: never mutate them.
    for arr in arrays.values():
        arr.flags.writeable = False


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, (tuple, set)):
        return list(obj)
    return str(obj)


def phases_from_scalars(
    sharpness: np.ndarray,
    two_over_eta: np.ndarray,
    m_norm_mean: np.ndarray,
    eos_fraction: float,
    arp_fraction: float,
    **rules: Any,
) -> np.ndarray:
    """Phases I/II/III/U of SCIENCE.md from the three scalar series (one entry per probe):
    the labels of :func:`ijr_core.phases.analyse_phases`; ``rules`` are the other
    :class:`~ijr_core.phases.PhaseRules` fields (phase_sustain, unstable_factor,
    arp_smoothing; RunConfig's defaults when left out)."""
    return analyse_phases(
        sharpness, two_over_eta, m_norm_mean,
        PhaseRules(eos_fraction=eos_fraction, arp_fraction=arp_fraction, **rules),
    ).labels


# --------------------------------------------------------------------------- loading


def load_run(run_dir: str | os.PathLike) -> Run:
    """Load a run folder written by :meth:`Run.save`. Raises :class:`RunFormatError` saying
    which file is missing or damaged and how."""
    folder = Path(run_dir)
    if not folder.exists():
        raise RunFormatError(f"run folder {folder} does not exist")
    if not folder.is_dir():
        raise RunFormatError(
            f"{folder} is not a folder (a run is a folder holding {', '.join(RUN_FILES)})"
        )
    doc = _read_json(folder / "run.json")
    config = _parse_config(doc, folder / "run.json")
    scalars = _read_npz(folder / "scalars.npz")
    samples = _read_npz(folder / "samples.npz")
    params = _read_npz(folder / "params.npz")
    _check_scalars(scalars, folder / "scalars.npz")
    _check_samples(samples, folder / "samples.npz")
    param_list = _check_params(params, folder / "params.npz")

    meta = doc.get("meta") or {}
    if not isinstance(meta, dict):
        raise RunFormatError(
            f"{folder / 'run.json'}: 'meta' must be an object, got {type(meta).__name__}"
        )
    run = Run(
        config,
        status=doc["status"],
        meta=meta,
        sample_ids=samples["sample_ids"],
        sample_labels=samples["labels"],
        sample_noisy=samples["noisy"],
        checkpoint_limit=int(doc.get("checkpoint_limit", getattr(config, "checkpoint_limit", 200))),
    )
    steps = scalars["step"].astype(np.int64)
    run._steps = [int(s) for s in steps]
    run._cols = {k: [float(x) for x in v] for k, v in scalars.items() if k != "step"}
    sample_steps = [int(s) for s in samples["step"]]
    if param_list and [int(s) for s in params["step"]] != sample_steps:
        # An interrupted autosave can leave params.npz one save ahead of samples.npz;
        # keep the checkpoints present in both.
        p_steps = [int(s) for s in params["step"]]
        common = sorted(set(p_steps) & set(sample_steps))
        keep_s = [sample_steps.index(s) for s in common]
        param_list = [param_list[p_steps.index(s)] for s in common]
        samples = {k: (v[keep_s] if k in SAMPLE_KEYS else v) for k, v in samples.items()}
        sample_steps = common
        run.meta["load_warning"] = (
            "params.npz and samples.npz had different checkpoints; kept the common ones"
        )
    run._sample_steps = sample_steps
    run._sample_rows = {k: [row for row in samples[k]] for k in SAMPLE_KEYS}
    run._params = param_list
    run.step = int(doc.get("step", int(steps[-1]) if len(steps) else 0))
    return run


def _read_json(path: Path) -> dict[str, Any]:
    if not path.exists():
        raise RunFormatError(f"{path} is missing (not a run folder, or the run was never saved)")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise RunFormatError(f"{path} is not UTF-8 text: {exc}") from None
    except json.JSONDecodeError as exc:
        raise RunFormatError(
            f"{path} is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})"
        ) from None
    if not isinstance(doc, dict):
        raise RunFormatError(f"{path} must hold a JSON object, got {type(doc).__name__}")
    version = doc.get("schema_version")
    if version is None:
        raise RunFormatError(f"{path} has no 'schema_version'")
    if not isinstance(version, int) or version < 1 or version > SCHEMA_VERSION:
        raise RunFormatError(
            f"{path} has schema_version {version!r}; "
            f"this version of ijr_core reads 1..{SCHEMA_VERSION}"
        )
    status = doc.get("status")
    if status not in STATUSES:
        raise RunFormatError(f"{path} has status {status!r}; expected one of {', '.join(STATUSES)}")
    for key, least in (("step", 0), ("checkpoint_limit", 2)):
        value = doc.get(key, least)
        if not isinstance(value, int) or isinstance(value, bool) or value < least:
            raise RunFormatError(f"{path}: {key!r} must be an integer >= {least}, got {value!r}")
    return doc


def _parse_config(doc: dict[str, Any], path: Path) -> Any:
    cfg = doc.get("config")
    if cfg is None:
        return None
    if not isinstance(cfg, dict):
        raise RunFormatError(f"{path}: 'config' must be an object, got {type(cfg).__name__}")
    from ijr_core.config import RunConfig

    try:
        return RunConfig.from_dict(cfg)
    except (ValueError, TypeError) as exc:
        raise RunFormatError(f"{path}: invalid config: {exc}") from None


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    if not path.exists():
        raise RunFormatError(f"{path} is missing")
    try:
        data = np.load(path, allow_pickle=False)
    except (OSError, EOFError, ValueError, zipfile.BadZipFile) as exc:
        if "pickle" in str(exc):  # numpy's guess for unknown bytes; its hint must not be taken
            reason = "its bytes are neither a zip archive nor a .npy array"
        else:
            reason = f"{type(exc).__name__}: {exc}"
        raise RunFormatError(f"{path} is not a readable .npz archive ({reason})") from None
    if not isinstance(data, np.lib.npyio.NpzFile):
        raise RunFormatError(f"{path} is a single .npy array, not an .npz archive")
    try:
        with data:
            return {key: data[key] for key in data.files}
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, KeyError) as exc:
        raise RunFormatError(f"{path} is damaged ({type(exc).__name__}: {exc})") from None


def _need(arrays: dict[str, np.ndarray], key: str, path: Path) -> np.ndarray:
    if key not in arrays:
        have = ", ".join(sorted(arrays)) or "nothing"
        raise RunFormatError(f"{path} has no array {key!r} (it holds: {have})")
    return arrays[key]


def _check_scalars(scalars: dict[str, np.ndarray], path: Path) -> None:
    step = _need(scalars, "step", path)
    if step.ndim != 1:
        raise RunFormatError(f"{path}: 'step' must be 1-D, has shape {step.shape}")
    for key, arr in scalars.items():
        if arr.shape != step.shape:
            raise RunFormatError(
                f"{path}: array {key!r} has shape {arr.shape}, "
                f"expected {step.shape} (one value per step)"
            )
        if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
            raise RunFormatError(f"{path}: array {key!r} has non-numeric dtype {arr.dtype}")


def _check_samples(samples: dict[str, np.ndarray], path: Path) -> None:
    step = _need(samples, "step", path)
    ids = _need(samples, "sample_ids", path)
    if step.ndim != 1 or ids.ndim != 1:
        raise RunFormatError(
            f"{path}: 'step' and 'sample_ids' must be 1-D, have shapes {step.shape}, {ids.shape}"
        )
    c, n = len(step), len(ids)
    for key in ("labels", "noisy"):
        arr = _need(samples, key, path)
        if arr.shape != (n,):
            raise RunFormatError(
                f"{path}: array {key!r} has shape {arr.shape}, expected ({n},) (one per sample)"
            )
    for key in SAMPLE_KEYS:
        arr = _need(samples, key, path)
        if arr.shape != (c, n):
            raise RunFormatError(
                f"{path}: array {key!r} has shape {arr.shape}, "
                f"expected ({c}, {n}) (checkpoints × samples)"
            )


def _check_params(params: dict[str, np.ndarray], path: Path) -> list[dict[str, np.ndarray]]:
    step = _need(params, "step", path)
    c = len(step)
    out: list[dict[str, np.ndarray]] = [{} for _ in range(c)]
    for key, arr in params.items():
        if key == "step":
            continue
        if not key.startswith("param:"):
            raise RunFormatError(
                f"{path}: unexpected array {key!r} (parameter arrays are named 'param:<name>')"
            )
        if arr.ndim == 0 or arr.shape[0] != c:
            raise RunFormatError(
                f"{path}: array {key!r} has shape {arr.shape}, expected {c} checkpoints first"
            )
        for i in range(c):
            out[i][key[len("param:") :]] = arr[i]
    if c and not out[0]:
        raise RunFormatError(f"{path}: has {c} checkpoint steps but no parameter arrays")
    return out if c else []
