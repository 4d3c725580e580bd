"""Groups of runs (an optimizer comparison): a folder holding ``group.json`` and run folders.

``group.json``: schema_version, kind "group", title, the run folder names, the base config and
meta (status, …). Written by the app's optimizer jobs, read by the app, the HTML report and
``python -m ijr_core show``. Run names are plain sub-folder names: a name that leaves the
folder makes the whole group damaged, checked before any run is opened.
"""

from __future__ import annotations

import json
from pathlib import Path

from ijr_core.run import Run, RunFormatError, atomic_write_text, load_run, now_iso, read_json_object

GROUP_SCHEMA_VERSION = 1


def is_group_folder(folder) -> bool:
    return (Path(folder) / "group.json").is_file()


def write_group(
    folder: Path, runs: list[str], title: str, config: dict | None = None, **meta
) -> Path:
    """Write ``group.json`` into ``folder``, atomically."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    doc = {
        "schema_version": GROUP_SCHEMA_VERSION,
        "kind": "group",
        "title": title,
        "runs": list(runs),
        "config": config,
        "meta": {**meta, "updated": now_iso()},
    }
    atomic_write_text(folder / "group.json", json.dumps(doc, indent=2, default=str) + "\n")
    return folder


def load_group(folder: Path) -> dict:
    """{"title", "runs": {name: Run}, "doc"} of a group folder; RunFormatError if damaged."""
    folder = Path(folder)
    path = folder / "group.json"
    if not path.is_file():
        raise RunFormatError(f"{path} is missing (not a group folder)")
    doc = read_json_object(path)
    if doc.get("schema_version") != GROUP_SCHEMA_VERSION or not isinstance(doc.get("runs"), list):
        raise RunFormatError(f"{path} is not a valid group.json")
    names = doc["runs"]
    for name in names:
        if not isinstance(name, str) or not inside_folder(folder / name, folder):
            raise RunFormatError(f"{path}: bad run name {str(name)[:80]!r}")
    runs: dict[str, Run] = {name: load_run(folder / name) for name in names}
    return {"title": doc.get("title", folder.name), "runs": runs, "doc": doc}


def inside_folder(path: Path, root: Path) -> bool:
    """True when ``path`` resolves strictly inside ``root`` (not equal to it)."""
    try:
        p, r = Path(path).resolve(), Path(root).resolve()
    except OSError:
        return False
    return p != r and r in p.parents
