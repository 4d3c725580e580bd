"""Managing the runs folder: list, rename, delete runs and groups; zip export and import.

A runs folder holds, directly under it, run folders (``run.json``), sweep folders
(``sweep.json``, written by :mod:`ijr_core.sweep`) and optimizer-comparison groups
(``group.json``, written by :func:`write_group`); groups hold run folders. Nothing here
touches anything outside the folder it was given: every path is resolved and checked to
lie strictly inside it before it is renamed or removed.

Zip import is defensive: the upload is size-capped, every member name is checked (no
absolute paths, no ``..``, no links, only the files of the run format), the uncompressed
size is capped before anything is extracted, and the result is validated by
:func:`ijr_core.run.load_run` / :func:`ijr_core.sweep.load_sweep`, which read ``.npz``
files with ``allow_pickle=False``; nothing is ever unpickled. A bad upload raises
:class:`UploadError` with a message for the user and leaves no trace in the folder.
"""

from __future__ import annotations

import io
import re
import shutil
import stat
import tempfile
import uuid
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np

from app.store import demo_groups, demo_runs, demo_sweeps, run_label
from ijr_core.group import GROUP_SCHEMA_VERSION, load_group, write_group  # noqa: F401
from ijr_core.group import inside_folder as _inside
from ijr_core.protocol import RunLike
from ijr_core.run import (
    RunFormatError,
    load_run,
    read_json_object,
)

MAX_ZIP_BYTES = 200 * 1024 * 1024
MAX_UNZIPPED_BYTES = 1024 * 1024 * 1024
MAX_MEMBERS = 2000
ALLOWED_FILES = (
    "run.json", "scalars.npz", "samples.npz", "params.npz", "sweep.json", "group.json", "grid.json",
)
KINDS = ("run", "sweep", "group", "grid")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.=+-]{0,119}$")


class UploadError(ValueError):
    """An uploaded file is too large, not a zip, unsafe, or not a valid run; says which."""


class StoreError(ValueError):
    """A rename or delete that is not allowed (bad name, name taken, outside the folder)."""


@dataclass(frozen=True)
class Entry:
    """One item of a runs folder: ``kind`` "run", "sweep" or "group"; ``members`` are the
    run folders inside a sweep or group (empty for a run)."""

    path: Path
    kind: str
    label: str
    members: tuple[Path, ...] = ()

    @property
    def name(self) -> str:
        return self.path.name


# --------------------------------------------------------------------------- listing


def kind_of(folder: Path) -> str | None:
    """ "run", "sweep", "group" or None for a folder that is none of them."""
    folder = Path(folder)
    if (folder / "sweep.json").is_file():
        return "sweep"
    if (folder / "grid.json").is_file():  # a grid of runs (ijr_core.grid)
        return "grid"
    if (folder / "group.json").is_file():
        return "group"
    if (folder / "run.json").is_file():
        return "run"
    return None


def _read_json(path: Path) -> dict:
    """The JSON object in ``path`` ({} when missing, damaged, too large or too deep)."""
    try:
        return read_json_object(path)
    except RunFormatError:
        return {}


def group_members(folder: Path) -> tuple[Path, ...]:
    """Run folders of a sweep or group, in the order its json lists them (missing skipped)."""
    folder = Path(folder)
    kind = kind_of(folder)
    doc = _read_json(folder / (f"{kind}.json" if kind in ("sweep", "grid") else "group.json"))
    names = doc.get("runs") or []
    out = []
    for name in names:
        if isinstance(name, str) and _inside(folder / name, folder):
            if (folder / name / "run.json").is_file():
                out.append(folder / name)
    return tuple(out)


def list_entries(root: Path) -> list[Entry]:
    """Runs, sweeps and groups directly under ``root``, newest (by name) first."""
    root = Path(root)
    if not root.is_dir():
        return []
    out = []
    for folder in sorted(root.iterdir(), key=lambda p: p.name, reverse=True):
        if not folder.is_dir() or folder.name.startswith((".", "_")):
            continue
        kind = kind_of(folder)
        if kind == "run":
            out.append(Entry(folder, "run", run_label(folder)))
        elif kind in ("sweep", "group", "grid"):
            members = group_members(folder)
            doc = _read_json(folder / f"{kind}.json")
            what = {"sweep": "η sweep", "grid": _grid_label(doc)}.get(kind) or doc.get(
                "title", "group")
            out.append(
                Entry(folder, kind, f"{folder.name} · {what} · {len(members)} runs", members)
            )
    return out


def _grid_label(doc: dict) -> str:
    """ "grid lr × seed" from a grid.json (axis names only)."""
    axes = doc.get("axes") if isinstance(doc.get("axes"), dict) else {}
    return "grid " + " × ".join(str(a)[:20] for a in list(axes)[:6])


def all_run_folders(root: Path) -> dict[str, Path]:
    """Label -> run folder for every run under ``root``, runs inside groups included
    (labelled "<group>/<run>")."""
    out: dict[str, Path] = {}
    for entry in list_entries(root):
        if entry.kind == "run":
            out[entry.name] = entry.path
        else:
            for member in entry.members:
                out[f"{entry.name}/{member.name}"] = member
    return out


def demo_entries(kind: str) -> list[Entry]:
    """The demos of ``kind`` shipped in assets/demo_runs, as read-only entries: runs, η
    sweeps or (kind "group") optimizer comparisons; no demo grids are shipped."""
    if kind == "run":
        return [Entry(p, "run", f"{p.name} · demo (read-only)") for p in demo_runs()]
    if kind not in ("sweep", "group"):
        return []
    paths = demo_sweeps() if kind == "sweep" else demo_groups()
    what = "η sweep" if kind == "sweep" else "optimizers"
    out = []
    for path in paths:
        members = group_members(path)
        label = f"{path.name} · {what} · {len(members)} runs · demo (read-only)"
        out.append(Entry(path, kind, label, members))
    return out


CURRENT = "current"
CURRENT_LABEL = "● current · this session's run"


@dataclass(frozen=True)
class RunOption:
    """One run a page can open. ``key``: its folder (or :data:`CURRENT`, the session's live
    run); ``source``: "current", "saved" or "demo"; ``name``: the short name a legend shows
    (the folder's, "<group>/<run>" for a member of a sweep, grid or comparison); ``label``:
    the description a picker shows (with the run's optimizer, dataset, η, status, step
    when described)."""

    key: str
    source: str
    name: str
    label: str

    @property
    def short(self) -> str:
        """ "saved · <name>" / "demo · <name>"; the live run's label."""
        return self.label if self.source == CURRENT else f"{self.source} · {self.name}"


def run_options(
    root: Path, *, current: bool = False, demos: bool = True, describe: bool = True
) -> list[RunOption]:
    """Every run the pages offer, in one order: this session's live run (when ``current``),
    the runs saved under ``root`` newest first (the members of a sweep, grid or comparison
    after it), then the demo runs (when ``demos``). ``describe`` reads each run.json for its
    label; without it the label is the short one."""
    out = [RunOption(CURRENT, CURRENT, "current run", CURRENT_LABEL)] if current else []
    found = [("saved", name, path) for name, path in all_run_folders(root).items()]
    if demos:
        found += [("demo", path.name, path) for path in demo_runs()]
    for source, name, path in found:
        label = f"{source} · {run_label(path, name) if describe else name}"
        out.append(RunOption(str(path), source, name, label))
    return out


# --------------------------------------------------------------------------- groups


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


# --------------------------------------------------------------------------- rename / delete


def check_name(name: str) -> str:
    """A folder name that is safe to create: letters, digits and ``_.=+-``, at most 120
    characters, not starting with a dot; raises StoreError otherwise."""
    name = name.strip()
    if not _NAME.match(name):
        raise StoreError(
            f"{name!r} is not a valid name: use letters, digits and _ . = + - "
            "(at most 120 characters, starting with a letter or digit)"
        )
    return name


def rename(folder: Path, new_name: str, root: Path) -> Path:
    """Rename a run, sweep or group folder directly under ``root``; returns the new path."""
    folder, root = Path(folder), Path(root)
    new_name = check_name(new_name)
    if not _inside(folder, root) or folder.resolve().parent != root.resolve():
        raise StoreError(f"{folder} is not an item of the runs folder {root}")
    if kind_of(folder) is None:
        raise StoreError(f"{folder.name} is not a run, sweep or group")
    target = root / new_name
    if target.exists():
        raise StoreError(f"{new_name!r} already exists")
    folder.rename(target)
    return target


def delete(folder: Path, root: Path) -> None:
    """Remove a run, sweep or group folder directly under ``root`` (and nothing else)."""
    folder, root = Path(folder), Path(root)
    direct = _inside(folder, root) and folder.resolve().parent == root.resolve()
    if folder.is_symlink() or not direct:
        raise StoreError(f"{folder} is not an item of the runs folder {root}")
    if kind_of(folder) is None:
        raise StoreError(f"{folder.name} is not a run, sweep or group; not deleted")
    shutil.rmtree(folder)


# --------------------------------------------------------------------------- zip export


def export_zip(folder: Path) -> bytes:
    """The folder (a run, sweep or group) as zip bytes; members are "<folder name>/<path>",
    only regular files of the run format (no temporary files, no links)."""
    folder = Path(folder)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(folder.rglob("*")):
            if path.is_symlink() or not path.is_file() or path.name not in ALLOWED_FILES:
                continue
            zf.write(path, (PurePosixPath(folder.name) / path.relative_to(folder).as_posix()))
    return buf.getvalue()


# --------------------------------------------------------------------------- zip import


Member = tuple[zipfile.ZipInfo, PurePosixPath]


def _safe_members(zf: zipfile.ZipFile, max_unzipped: int) -> list[Member]:
    infos = zf.infolist()
    if len(infos) > MAX_MEMBERS:
        raise UploadError(f"the zip holds {len(infos)} entries; at most {MAX_MEMBERS} allowed")
    total = 0
    out = []
    for info in infos:
        name = info.filename
        if info.is_dir():
            continue
        mode = info.external_attr >> 16
        if stat.S_ISLNK(mode):
            raise UploadError(f"the zip contains a link ({name!r}); links are not allowed")
        path = PurePosixPath(name.replace("\\", "/"))
        if path.is_absolute() or ".." in path.parts or not path.parts or ":" in path.parts[0]:
            raise UploadError(f"the zip contains an unsafe path {name!r}")
        if path.name.startswith("__MACOSX") or "__MACOSX" in path.parts or path.name == ".DS_Store":
            continue
        if path.name not in ALLOWED_FILES:
            raise UploadError(
                f"the zip contains {name!r}; a run zip holds only {', '.join(ALLOWED_FILES)}"
            )
        if len(path.parts) > 4:
            raise UploadError(f"the zip nests {name!r} too deep")
        total += info.file_size
        if total > max_unzipped:
            raise UploadError(
                f"the zip unpacks to more than {max_unzipped // (1024 * 1024)} MiB; not imported"
            )
        out.append((info, path))
    if not out:
        raise UploadError("the zip is empty (no run.json or sweep.json found)")
    return out


def _common_top(paths: list[PurePosixPath]) -> str | None:
    tops = {p.parts[0] for p in paths}
    if len(tops) == 1 and all(len(p.parts) > 1 for p in paths):
        return tops.pop()
    return None


def _extract(zf: zipfile.ZipFile, members, dest: Path, max_unzipped: int) -> None:
    """Copy members into ``dest`` by our own path join (never zipfile.extract), counting
    the bytes actually written against ``max_unzipped``."""
    written = 0
    for info, path in members:
        target = dest.joinpath(*path.parts)
        if not _inside(target, dest):
            raise UploadError(f"the zip contains an unsafe path {info.filename!r}")
        target.parent.mkdir(parents=True, exist_ok=True)
        with zf.open(info) as src, open(target, "wb") as out:
            while chunk := src.read(1 << 20):
                written += len(chunk)
                if written > max_unzipped:
                    raise UploadError("the zip unpacks to more than allowed; not imported")
                out.write(chunk)


def _validate(folder: Path) -> str:
    """Kind of an extracted folder after loading it fully; UploadError when invalid."""
    kind = kind_of(folder)
    try:
        if kind == "sweep":
            from ijr_core.sweep import load_sweep

            load_sweep(folder)
        elif kind == "group":
            load_group(folder)
        elif kind == "grid":
            from ijr_core.grid import load_grid

            load_grid(folder)
        elif kind == "run":
            load_run(folder)
        else:
            raise UploadError(
                "the zip holds no run.json, sweep.json, grid.json or group.json at its top"
            )
    except RunFormatError as exc:
        raise UploadError(f"not a valid run: {_strip(str(exc), folder)}") from None
    except (ValueError, TypeError, KeyError, OSError, RecursionError, MemoryError) as exc:
        raise UploadError(f"not a valid run ({type(exc).__name__})") from None
    return kind


def _strip(message: str, folder: Path) -> str:
    """The message without the temporary folder's path (users see file names only)."""
    return message.replace(str(folder) + "/", "").replace(str(folder), "<upload>")


def import_zip(
    data: bytes,
    root: Path,
    name: str | None = None,
    max_bytes: int = MAX_ZIP_BYTES,
    max_unzipped: int = MAX_UNZIPPED_BYTES,
) -> Path:
    """Import a run (or sweep / group) zip into ``root``; returns the new folder.

    The zip may hold the files at its top or inside one folder. The new folder is named
    ``name`` (default: the zip's folder name, else "upload"), made unique with a suffix."""
    if len(data) > max_bytes:
        raise UploadError(
            f"the file is {len(data) / 2**20:.1f} MiB; at most {max_bytes / 2**20:.0f} MiB allowed"
        )
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, OSError, ValueError):
        raise UploadError("the file is not a zip archive") from None
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    remove_stale_uploads(root)
    with zf, tempfile.TemporaryDirectory(prefix=".upload-", dir=root) as tmp:
        members = _safe_members(zf, max_unzipped)
        top = _common_top([p for _, p in members])
        if top is not None:
            members = [(i, PurePosixPath(*p.parts[1:])) for i, p in members]
        staging = Path(tmp) / "run"
        staging.mkdir()
        try:
            _extract(zf, members, staging, max_unzipped)
        except (zipfile.BadZipFile, OSError, EOFError, RuntimeError) as exc:
            raise UploadError(f"the zip is damaged ({type(exc).__name__})") from None
        _validate(staging)
        base = name or top or "upload"
        try:
            base = check_name(base)
        except StoreError:
            base = "upload"
        target = _unique(root, base)
        staging.rename(target)
    return target


STALE_UPLOAD_SECONDS = 3600


def remove_stale_uploads(root: Path, age: float = STALE_UPLOAD_SECONDS) -> list[Path]:
    """Remove ``.upload-*`` staging folders older than ``age`` seconds left under ``root``
    by an import that was killed (an import takes seconds); returns them."""
    import time

    gone = []
    for folder in Path(root).glob(".upload-*"):
        try:
            old = time.time() - folder.lstat().st_mtime > age
        except OSError:
            continue
        if old and folder.is_dir() and not folder.is_symlink():
            shutil.rmtree(folder, ignore_errors=True)
            gone.append(folder)
    return gone


def _unique(root: Path, base: str) -> Path:
    target = root / base
    if not target.exists():
        return target
    return root / f"{base}-{uuid.uuid4().hex[:6]}"
