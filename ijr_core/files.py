"""Files that survive crashes and hostile uploads: atomic writes and bounded readers.

Every file is written atomically (temporary file in the same folder, flush, fsync,
``os.replace``, then fsync of the folder), so an interrupted save leaves the previous
version intact; a save killed half-way leaves a temporary file whose name holds its pid,
removed by :func:`remove_orphan_tmp` once that process is gone.

Anything read may come from an upload, so reading is bounded before anything is read:
a JSON file is at most ``MAX_JSON_BYTES`` (any nesting depth); each ``.npz`` is a zip whose
members' npy headers (dtype, shape) are checked against the member's size and against
``MAX_NPZ_BYTES``, compression ratios above ``MAX_RATIO`` are refused, and arrays are read
with our own bounded reads (never ``np.load``, never unpickled). Damage of any kind raises
:class:`RunFormatError` naming the file and what is wrong with it.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import uuid
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

# Reading limits (an uploaded folder must not exhaust the server; see config.LIMITS).
MAX_NPZ_BYTES = 512 * 2**20  # declared uncompressed size of a run's three .npz files
MAX_NPZ_MEMBERS = 512
MAX_RATIO = 100  # uncompressed / compressed size of a member larger than 1 MiB
MAX_JSON_BYTES = 8 * 2**20


class RunFormatError(ValueError):
    """A run folder is missing, damaged or of an unknown format; the message says which."""


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


def make_dir(folder: str | os.PathLike) -> Path:
    """``folder``, created (with its parents) if needed; a new folder's own entry is
    fsynced into its parent, so that it survives a crash too."""
    folder = Path(folder)
    if not folder.is_dir():
        folder.mkdir(parents=True, exist_ok=True)
        _fsync_dir(folder.parent)
    return folder


def pid_alive(pid: Any) -> bool:
    """Whether process ``pid`` of this machine exists (True when that cannot be told)."""
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, OSError):
        return True  # exists (another user's), or cannot tell: assume alive
    return True


def remove_orphan_tmp(folder: Path) -> None:
    """Remove temporary files of atomic writes whose writing process is gone (a save
    killed half-way leaves one; the name holds the pid, see :func:`atomic_write`)."""
    for tmp in folder.glob(".*.tmp"):
        parts = tmp.name.rsplit(".", 3)  # .<name>.<pid>.<id>.tmp
        if len(parts) == 4 and parts[1].isdigit() and not pid_alive(int(parts[1])):
            with contextlib.suppress(OSError):
                tmp.unlink()


# --------------------------------------------------------------------------- bounded readers


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



_NPY_MAGIC = b"\x93NUMPY"


def read_npz(path: Path, max_bytes: int = MAX_NPZ_BYTES) -> dict[str, np.ndarray]:
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


