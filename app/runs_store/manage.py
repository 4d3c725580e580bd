"""Renaming and deleting items of a runs folder. Nothing here touches anything outside
the folder it was given: every path is resolved and checked to lie strictly inside it
before it is renamed or removed, and names are letters, digits and ``_.=+-`` only.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from app.runs_store.listing import _inside, kind_of

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.=+-]{0,119}$")


class StoreError(ValueError):
    """A rename or delete that is not allowed (bad name, name taken, outside the folder)."""


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
