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
``os.replace``), so an interrupted save leaves the previous version intact.

A run folder may come from an upload, so reading is bounded before anything is read:
each ``.npz`` is a zip whose members' npy headers (dtype, shape) are checked against the
member's size and against ``MAX_NPZ_BYTES`` / the format's shapes, compression ratios
above ``MAX_RATIO`` are refused, and arrays are read with our own bounded reads (never
``np.load``, never unpickled); ``run.json`` is at most ``MAX_JSON_BYTES``. A damaged or
oversized folder raises :class:`RunFormatError` naming the file and what is wrong with
it, whatever the damage (deep JSON, huge shapes, wrong types).
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
# Reading limits (an uploaded folder must not exhaust the server; see config.LIMITS).
MAX_NPZ_BYTES = 512 * 2**20  # declared uncompressed size of a run's three .npz files
MAX_NPZ_MEMBERS = 512
MAX_RATIO = 100  # uncompressed / compressed size of a member larger than 1 MiB
MAX_JSON_BYTES = 8 * 2**20
MAX_SCALAR_VALUES = 10_000_000  # probes × metrics of scalars.npz (kept as Python floats)
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

    @property
    def probe_steps(self) -> np.ndarray:
        """Steps that hold a probe (a finite sharpness); the other rows hold only scalars
        logged between probes (:meth:`RunWriter.log`) or the step where a run diverged."""
        s = self.scalars
        sharp = s.get("sharpness")
        if sharp is None:
            return np.zeros(0, dtype=np.int64)
        return np.asarray(s["step"][np.isfinite(sharp)], dtype=np.int64)

    @property
    def logged_scalars(self) -> list[str]:
        """Names of the scalars a user's loop logged with :meth:`RunWriter.log`."""
        names = self.meta.get("logged_scalars") or []
        return [n for n in names if isinstance(n, str) and n in self.scalars]

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
        _remove_orphan_tmp(out)
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
            "writer": {"pid": os.getpid(), "host": _host()},
            "meta": meta,
        }

    def __repr__(self) -> str:
        c = len(self._sample_steps)
        return f"Run(status={self.status!r}, step={self.step}, probes={len(self)}, checkpoints={c})"


def _host() -> str:
    import socket

    return socket.gethostname()


def _pid_alive(pid: Any) -> bool:
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, OSError):
        return True  # exists (another user's), or cannot tell: assume alive
    return True


def writer_alive(doc: Mapping[str, Any]) -> bool | None:
    """Whether the process that last saved this run.json document still runs: True or
    False when it saved on this machine, None when that cannot be told (another machine,
    or a run saved before runs recorded their writer). A "running" run whose writer is
    gone was interrupted (killed) and will never finish."""
    writer = doc.get("writer")
    if not isinstance(writer, dict) or writer.get("host") != _host():
        return None
    return _pid_alive(writer.get("pid"))


def shown_status(doc: Mapping[str, Any]) -> str:
    """The status of a run.json document for listings: "running" or "paused" become
    "interrupted" when the process that wrote it is gone (see :func:`writer_alive`)."""
    status = str(doc.get("status"))
    if status in ("running", "paused") and writer_alive(doc) is False:
        return "interrupted"
    return status


def _remove_orphan_tmp(folder: Path) -> None:
    """Remove temporary files of atomic writes whose writing process is gone (a save
    killed half-way leaves one; the name holds the pid, see :func:`atomic_write`)."""
    for tmp in folder.glob(".*.tmp"):
        parts = tmp.name.rsplit(".", 3)  # .<name>.<pid>.<id>.tmp
        if len(parts) == 4 and parts[1].isdigit() and not _pid_alive(int(parts[1])):
            with contextlib.suppress(OSError):
                tmp.unlink()


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
    which file is missing or damaged and how (also for damage no check foresaw: any
    ValueError, TypeError, KeyError, IndexError, RecursionError, MemoryError, OSError)."""
    try:
        return _load_run(Path(run_dir))
    except RunFormatError:
        raise
    except (ValueError, TypeError, KeyError, IndexError, RecursionError, MemoryError,
            OverflowError, OSError) as exc:
        raise RunFormatError(f"{run_dir}: damaged run ({type(exc).__name__})") from None


def check_run_json(path: str | os.PathLike) -> dict[str, Any]:
    """The run.json document at ``path`` after every check :func:`load_run` makes on it
    (schema, status, config, the metadata the views trust); RunFormatError otherwise.
    Cheap (no arrays are read): for listings that must say which runs are damaged."""
    path = Path(path)
    try:
        doc = _read_json(path)
        _parse_config(doc, path)
        _check_meta(doc.get("meta") or {}, path)
    except RunFormatError:
        raise
    except (ValueError, TypeError, KeyError, RecursionError, MemoryError) as exc:
        raise RunFormatError(f"{path}: damaged run ({type(exc).__name__})") from None
    return doc


def _load_run(folder: Path) -> Run:
    if not folder.exists():
        raise RunFormatError(f"run folder {folder} does not exist")
    if not folder.is_dir():
        raise RunFormatError(
            f"{folder} is not a folder (a run is a folder holding {', '.join(RUN_FILES)})"
        )
    doc = _read_json(folder / "run.json")
    config = _parse_config(doc, folder / "run.json")
    budget = MAX_NPZ_BYTES  # for the three files together
    arrays = {}
    for name in ("scalars", "samples", "params"):
        arrays[name] = _read_npz(folder / f"{name}.npz", budget)
        budget -= sum(a.nbytes for a in arrays[name].values())
    scalars, samples, params = arrays["scalars"], arrays["samples"], arrays["params"]
    _check_scalars(scalars, folder / "scalars.npz")
    _check_samples(samples, folder / "samples.npz")
    param_list = _check_params(params, folder / "params.npz")

    meta = _check_meta(doc.get("meta") or {}, folder / "run.json")
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
    if shown_status(doc) == "interrupted":
        run.meta["interrupted"] = "its writer is gone: it was killed and will not continue"
    return run


def read_json_object(path: str | os.PathLike, max_bytes: int = MAX_JSON_BYTES) -> dict:
    """The JSON object in ``path``, bounded: a regular file of at most ``max_bytes``, any
    nesting depth (too deep is an error, not a RecursionError). RunFormatError otherwise."""
    path = Path(path)
    if not path.exists():
        raise RunFormatError(f"{path} is missing (not a run folder, or the run was never saved)")
    if not path.is_file():
        raise RunFormatError(f"{path} is not a regular file")
    try:
        with open(path, "rb") as f:
            raw = f.read(max_bytes + 1)
    except OSError as exc:
        raise RunFormatError(f"{path} cannot be read ({type(exc).__name__})") from None
    if len(raw) > max_bytes:
        raise RunFormatError(f"{path} is larger than {max_bytes // 2**20} MiB")
    try:
        doc = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise RunFormatError(f"{path} is not UTF-8 text (byte {exc.start})") from None
    except json.JSONDecodeError as exc:
        raise RunFormatError(
            f"{path} is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})"
        ) from None
    except RecursionError:
        raise RunFormatError(f"{path} nests its JSON too deep") from None
    except (ValueError, MemoryError) as exc:  # e.g. an integer of 100 000 digits
        raise RunFormatError(f"{path} is not a usable JSON file ({type(exc).__name__})") from None
    if not isinstance(doc, dict):
        raise RunFormatError(f"{path} must hold a JSON object, got {type(doc).__name__}")
    return doc


def _check_meta(meta: Any, path: Path) -> dict[str, Any]:
    """The run's metadata, with the entries the views trust checked (n_classes, shapes)."""
    from ijr_core.config import MAX_CLASSES, MAX_FEATURES

    if not isinstance(meta, dict):
        raise RunFormatError(f"{path}: 'meta' must be an object, got {type(meta).__name__}")
    k = meta.get("n_classes")
    if k is not None and (not _is_int(k) or not 2 <= k <= MAX_CLASSES):
        raise RunFormatError(f"{path}: meta 'n_classes' must be an integer in 2..{MAX_CLASSES}")
    for key in ("input_shape", "image_shape"):
        shape = meta.get(key)
        if shape is None:
            continue
        if (not isinstance(shape, list) or not 1 <= len(shape) <= 3
                or not all(_is_int(n) and 1 <= n <= MAX_FEATURES for n in shape)
                or math.prod(shape) > MAX_FEATURES):
            raise RunFormatError(f"{path}: meta {key!r} must be a list of 1-3 positive sizes")
    names = meta.get("class_names")
    if names is not None and (not isinstance(names, list) or len(names) > MAX_CLASSES):
        raise RunFormatError(f"{path}: meta 'class_names' must be a list of at most "
                             f"{MAX_CLASSES} names")
    return meta


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _read_json(path: Path) -> dict[str, Any]:
    doc = read_json_object(path)
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


_NPY_MAGIC = b"\x93NUMPY"


def _read_npz(path: Path, max_bytes: int = MAX_NPZ_BYTES) -> dict[str, np.ndarray]:
    """Arrays of the ``.npz`` at ``path``, bounded: every member's npy header is read and
    checked (numeric dtype, shape × itemsize = the member's size, the sum at most
    ``max_bytes``, compression ratio at most MAX_RATIO) before any array data is read."""
    if not path.exists():
        raise RunFormatError(f"{path} is missing")
    if not path.is_file():
        raise RunFormatError(f"{path} is not a regular file")
    try:
        with open(path, "rb") as f:
            head = f.read(len(_NPY_MAGIC))
        if head == _NPY_MAGIC:
            raise RunFormatError(f"{path} is a single .npy array, not an .npz archive")
        with zipfile.ZipFile(path) as zf:
            members = _npz_members(zf, path, max_bytes)
            return {key: _read_member(zf, info, header, path) for key, info, header in members}
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError,
            KeyError, NotImplementedError, RuntimeError) as exc:
        if isinstance(exc, RunFormatError):
            raise
        reason = (
            "its bytes are neither a zip archive nor a .npy array"
            if isinstance(exc, zipfile.BadZipFile)
            else type(exc).__name__
        )
        raise RunFormatError(f"{path} is not a readable .npz archive ({reason})") from None


def _npz_members(zf: zipfile.ZipFile, path: Path, max_bytes: int) -> list:
    """(key, ZipInfo, (shape, fortran_order, dtype, header length)) of every member,
    after checking all of them (nothing is read beyond the npy headers)."""
    infos = zf.infolist()
    if len(infos) > MAX_NPZ_MEMBERS:
        raise RunFormatError(f"{path} holds {len(infos)} arrays; at most {MAX_NPZ_MEMBERS}")
    total, out = 0, []
    for info in infos:
        name = info.filename
        if not name.endswith(".npy") or info.is_dir():
            raise RunFormatError(f"{path}: member {name[:80]!r} is not a .npy array")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise RunFormatError(f"{path}: member {name[:80]!r} uses an unsupported compression")
        total += info.file_size
        if total > max_bytes:
            raise RunFormatError(
                f"{path} unpacks to more than {max_bytes // 2**20} MiB; not read"
            )
        if info.file_size > 2**20 and info.file_size > MAX_RATIO * max(info.compress_size, 1):
            raise RunFormatError(
                f"{path}: member {name[:80]!r} is compressed more than {MAX_RATIO}:1 "
                "(a compression bomb?); not read"
            )
        with zf.open(info) as f:
            header = _npy_header(f, path, name)
        shape, _, dtype, offset = header
        nbytes = math.prod(shape) * dtype.itemsize
        if offset + nbytes != info.file_size:
            raise RunFormatError(
                f"{path}: array {name[:-4][:80]!r} declares shape {shape} of {dtype} "
                f"({nbytes} bytes) but holds {info.file_size - offset} bytes"
            )
        out.append((name[:-4], info, header))
    return out


def _npy_header(f, path: Path, name: str) -> tuple:
    """(shape, fortran_order, dtype, header length) from the start of a .npy member."""
    fmt = np.lib.format
    try:
        version = fmt.read_magic(f)
        if version == (1, 0):
            shape, fortran, dtype = fmt.read_array_header_1_0(f, max_header_size=10000)
        elif version in ((2, 0), (3, 0)):
            shape, fortran, dtype = fmt.read_array_header_2_0(f, max_header_size=10000)
        else:
            raise ValueError(version)
    except (ValueError, EOFError, TypeError, SyntaxError) as exc:
        raise RunFormatError(
            f"{path}: member {name[:80]!r} has no valid .npy header ({type(exc).__name__})"
        ) from None
    if dtype.hasobject or dtype.kind not in "biuf" or dtype.itemsize > 8:
        raise RunFormatError(
            f"{path}: array {name[:-4][:80]!r} has dtype {dtype}; runs hold only numbers"
        )
    if len(shape) > 8 or any(n < 0 for n in shape):
        raise RunFormatError(f"{path}: array {name[:-4][:80]!r} has a bad shape")
    return shape, fortran, dtype, f.tell()


def _read_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, header: tuple, path: Path):
    """The array of one checked member: exactly the bytes its header declared."""
    shape, fortran, dtype, offset = header
    nbytes = info.file_size - offset
    buf = bytearray(nbytes)
    view = memoryview(buf)
    with zf.open(info) as f:
        f.read(offset)
        got = 0
        while got < nbytes:
            n = f.readinto(view[got:])
            if not n:
                raise RunFormatError(f"{path}: array {info.filename[:-4][:80]!r} is truncated")
            got += n
    arr = np.frombuffer(buf, dtype=dtype)
    return arr.reshape(shape, order="F" if fortran else "C")


def _need(arrays: dict[str, np.ndarray], key: str, path: Path) -> np.ndarray:
    if key not in arrays:
        have = ", ".join(sorted(arrays)) or "nothing"
        raise RunFormatError(f"{path} has no array {key!r} (it holds: {have})")
    return arrays[key]


def _check_scalars(scalars: dict[str, np.ndarray], path: Path) -> None:
    step = _need(scalars, "step", path)
    if step.ndim != 1:
        raise RunFormatError(f"{path}: 'step' must be 1-D, has shape {step.shape}")
    if len(step) * len(scalars) > MAX_SCALAR_VALUES:
        raise RunFormatError(f"{path}: {len(step)} rows × {len(scalars)} metrics; at most "
                             f"{MAX_SCALAR_VALUES:,} values")
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
    from ijr_core.config import MAX_CHECKPOINTS, MAX_SAMPLES

    if c > MAX_CHECKPOINTS + 1 or n > MAX_SAMPLES:
        raise RunFormatError(f"{path}: {c} checkpoints × {n} samples; at most "
                             f"{MAX_CHECKPOINTS + 1} × {MAX_SAMPLES}")
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
                f"{path}: array {key[:80]!r} has shape {arr.shape}, expected {c} checkpoints first"
            )
        # floats for parameters, integers or booleans for buffers (e.g. num_batches_tracked)
        if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool) \
                or np.issubdtype(arr.dtype, np.complexfloating):
            raise RunFormatError(f"{path}: array {key[:80]!r} has dtype {arr.dtype}, "
                                 f"not a real number type")
        for i in range(c):
            out[i][key[len("param:") :]] = arr[i]
    if c and not out[0]:
        raise RunFormatError(f"{path}: has {c} checkpoint steps but no parameter arrays")
    return out if c else []
