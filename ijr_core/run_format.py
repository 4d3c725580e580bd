"""The on-disk format of a run: one folder, written by :func:`save_run` and read back by
:func:`load_run` with every check it needs (see DESIGN.md)::

    run.json      schema_version, config, status, step, meta
    scalars.npz   step + one float64 array per metric
    samples.npz   step (C,), sample_ids / labels / noisy (S,), one (C, S) float32 array per metric
    params.npz    step (C,), one (C, *shape) array per parameter name

Every file is written atomically (:mod:`ijr_core.files`), so an interrupted save leaves the
previous version intact. A run folder may come from an upload, so it is read with the
bounded readers of :mod:`ijr_core.files` (``MAX_NPZ_BYTES`` for the three ``.npz`` together,
``MAX_JSON_BYTES`` for run.json) and then checked against the format's shapes. A damaged or
oversized folder raises :class:`RunFormatError` naming the file and what is wrong with it,
whatever the damage (deep JSON, huge shapes, wrong types).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ijr_core.files import (
    MAX_NPZ_BYTES,
    RunFormatError,
    atomic_write_npz,
    atomic_write_text,
    make_dir,
    pid_alive,
    read_json_object,
    read_npz,
    remove_orphan_tmp,
)
from ijr_core.record import SAMPLE_KEYS, STATUSES, Run, now_iso

SCHEMA_VERSION = 1
MAX_SCALAR_VALUES = 10_000_000  # probes × metrics of scalars.npz (kept as Python floats)
RUN_FILES = ("run.json", "scalars.npz", "samples.npz", "params.npz")


# --------------------------------------------------------------------------- saving


def save_run(run: Run, out_dir: str | os.PathLike) -> Path:
    """Write the folder of ``run`` (created if needed); each file atomically. Parameters and
    samples go first and run.json last, so run.json never describes data not yet written."""
    out = make_dir(out_dir)
    with run.lock:
        scalars = run.scalars
        samples = run.samples
        sample_steps = run.sample_steps
        params = run.params
        doc = _json_doc(run)
        sample_ids, labels, noisy = run.sample_ids, run.sample_labels, run.sample_noisy
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
    remove_orphan_tmp(out)
    return out


def _json_doc(run: Run) -> dict[str, Any]:
    """The run.json document of ``run`` (stamps its "created" time on first save)."""
    cfg = run.config
    if cfg is None:
        cfg_dict = None
    elif hasattr(cfg, "to_dict"):
        cfg_dict = cfg.to_dict()
    else:
        cfg_dict = dict(cfg)
    meta = dict(run.meta)
    meta.setdefault("created", now_iso())
    meta["updated"] = now_iso()
    run.meta.setdefault("created", meta["created"])
    return {
        "schema_version": SCHEMA_VERSION,
        "status": run.status,
        "step": int(run.step),
        "device": meta.get("device"),
        "versions": meta.get("versions"),
        "created": meta["created"],
        "updated": meta["updated"],
        "config": cfg_dict,
        "checkpoint_limit": run.checkpoint_limit,
        "writer": {"pid": os.getpid(), "host": _host()},
        "meta": meta,
    }


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, (tuple, set)):
        return list(obj)
    return str(obj)


def _host() -> str:
    import socket

    return socket.gethostname()


def writer_alive(doc: Mapping[str, Any]) -> bool | None:
    """Whether the process that last saved this run.json document still runs: True or
    False when it saved on this machine, None when that cannot be told (another machine,
    or a run saved before runs recorded their writer). A "running" run whose writer is
    gone was interrupted (killed) and will never finish."""
    writer = doc.get("writer")
    if not isinstance(writer, dict) or writer.get("host") != _host():
        return None
    return pid_alive(writer.get("pid"))


def shown_status(doc: Mapping[str, Any]) -> str:
    """The status of a run.json document for listings: "running" or "paused" become
    "interrupted" when the process that wrote it is gone (see :func:`writer_alive`)."""
    status = str(doc.get("status"))
    if status in ("running", "paused") and writer_alive(doc) is False:
        return "interrupted"
    return status


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
        arrays[name] = read_npz(folder / f"{name}.npz", budget)
        budget -= sum(a.nbytes for a in arrays[name].values())
    scalars, samples, params = arrays["scalars"], arrays["samples"], arrays["params"]
    _check_scalars(scalars, folder / "scalars.npz")
    _check_samples(samples, folder / "samples.npz")
    param_list = _check_params(params, folder / "params.npz")

    meta = dict(_check_meta(doc.get("meta") or {}, folder / "run.json"))
    steps = scalars["step"].astype(np.int64)
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
        meta["load_warning"] = (
            "params.npz and samples.npz had different checkpoints; kept the common ones"
        )
    run = Run.from_columns(
        config,
        status=doc["status"],
        meta=meta,
        step=int(doc.get("step", int(steps[-1]) if len(steps) else 0)),
        checkpoint_limit=int(doc.get("checkpoint_limit", getattr(config, "checkpoint_limit", 200))),
        scalars=scalars,
        sample_steps=sample_steps,
        samples=samples,
        sample_ids=samples["sample_ids"],
        sample_labels=samples["labels"],
        sample_noisy=samples["noisy"],
        params=param_list,
    )
    if shown_status(doc) == "interrupted":
        run.meta["interrupted"] = "its writer is gone: it was killed and will not continue"
    return run


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
