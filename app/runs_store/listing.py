"""Finding and labelling run folders: the one listing of a runs folder (runs, sweeps,
grids, optimizer comparisons), the demos shipped in assets/demo_runs, and the runs every
page offers (:func:`run_options`).

A runs folder holds, directly under it, run folders (``run.json``), sweep folders
(``sweep.json``, :mod:`ijr_core.sweep`), grids (``grid.json``, :mod:`ijr_core.grid`) and
optimizer-comparison groups (``group.json``, :mod:`ijr_core.group`); sweeps, grids and
groups hold run folders. Folders whose name starts with "." or "_" (e.g. an upload being
staged) are not listed. Labels are read from run.json only (a damaged one is labelled,
never loaded).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ijr_core.group import inside_folder as _inside
from ijr_core.run import RunFormatError, check_run_json, read_json_object, shown_status

ASSETS = Path(__file__).resolve().parents[2] / "assets"


DEMO_DIR = ASSETS / "demo_runs"


KINDS = ("run", "sweep", "group", "grid")


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


def _items(root: Path) -> list[tuple[Path, str]]:
    """(folder, kind) of every run, sweep, grid and group directly under ``root``, newest
    (by name) first; [] when ``root`` is not a folder."""
    root = Path(root)
    if not root.is_dir():
        return []
    out = []
    for folder in sorted(root.iterdir(), key=lambda p: p.name, reverse=True):
        if folder.is_dir() and not folder.name.startswith((".", "_")):
            kind = kind_of(folder)
            if kind is not None:
                out.append((folder, kind))
    return out


def list_runs(root: Path) -> list[Path]:
    """Run folders (holding a run.json) directly under ``root``, newest first."""
    return [folder for folder, kind in _items(root) if kind == "run"]


def list_entries(root: Path) -> list[Entry]:
    """Runs, sweeps, grids and groups directly under ``root``, newest (by name) first."""
    out = []
    for folder, kind in _items(root):
        if kind == "run":
            out.append(Entry(folder, "run", run_label(folder)))
            continue
        members = group_members(folder)
        doc = _read_json(folder / f"{kind}.json")
        what = {"sweep": "η sweep", "grid": _grid_label(doc)}.get(kind) or doc.get(
            "title", "group")
        out.append(Entry(folder, kind, f"{folder.name} · {what} · {len(members)} runs", members))
    return out


def _grid_label(doc: dict) -> str:
    """ "grid lr × seed" from a grid.json (axis names only)."""
    axes = doc.get("axes") if isinstance(doc.get("axes"), dict) else {}
    return "grid " + " × ".join(str(a)[:20] for a in list(axes)[:6])


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
