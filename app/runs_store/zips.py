"""Zip export and import of runs, sweeps, grids and groups.

Import is defensive: the upload is size-capped, every member name is checked (no absolute
paths, no ``..``, no links, only the files of the run format), the uncompressed size is
capped before anything is extracted, and the result is validated by
:func:`ijr_core.run.load_run` / :func:`ijr_core.sweep.load_sweep`, which read ``.npz``
files with ``allow_pickle=False``; nothing is ever unpickled. A bad upload raises
:class:`UploadError` with a message for the user and leaves no trace in the folder.
"""

from __future__ import annotations

import io
import shutil
import stat
import tempfile
import uuid
import zipfile
from pathlib import Path, PurePosixPath

from app.runs_store.listing import _inside, kind_of
from app.runs_store.manage import StoreError, check_name
from ijr_core.group import load_group
from ijr_core.run import RunFormatError, load_run

MAX_ZIP_BYTES = 200 * 1024 * 1024


MAX_UNZIPPED_BYTES = 1024 * 1024 * 1024


MAX_MEMBERS = 2000


ALLOWED_FILES = (
    "run.json", "scalars.npz", "samples.npz", "params.npz", "sweep.json", "group.json", "grid.json",
)


class UploadError(ValueError):
    """An uploaded file is too large, not a zip, unsafe, or not a valid run; says which."""


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


_Member = tuple[zipfile.ZipInfo, PurePosixPath]


def _safe_members(zf: zipfile.ZipFile, max_unzipped: int) -> list[_Member]:
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
