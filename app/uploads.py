"""Upload widgets: a CSV dataset for training, and a saved run zip to inspect.

``csv_upload_sidebar()`` is meant for the Train page's sidebar: an uploaded CSV (numeric
feature columns plus a label column) is size-checked, written to a per-session folder
under the runs folder (``_uploads/<session>/``, invisible to run listings), validated by
loading it through :func:`ijr_core.data.load_dataset`, and the sidebar config is switched
to ``dataset="csv", data_path=<that file>`` (n_train / n_test fitted to the file).
``run_zip_uploader()`` imports a run/sweep zip through :func:`app.runs_store.import_zip`
(size-capped, zip-slip safe, never unpickled). Bad files get an ``st.error`` naming
what is wrong, never a traceback.
"""

from __future__ import annotations

import csv
import io
import uuid
from pathlib import Path

import streamlit as st

from app import config_ui, runs_store, session
from app.views import plain
from ijr_core.names import safe_name

MAX_CSV_MB = 20
MAX_ZIP_MB = 200
CSV_KEY = "csv_upload"
ZIP_KEY = "run_zip_upload"


def upload_folder() -> Path:
    """Per-session folder of uploaded data files."""
    sid = session.current_session_id() or "local"
    return session.runs_dir() / "_uploads" / "".join(c for c in sid if c.isalnum() or c == "-")


def csv_row_count(data: bytes) -> int:
    """Non-empty CSV rows of ``data`` (a header row included)."""
    text = data.decode("utf-8")
    return sum(1 for r in csv.reader(io.StringIO(text)) if r and any(c.strip() for c in r))


def check_csv(data: bytes, folder: Path, label_column: str | None = None) -> tuple[Path, dict]:
    """Save ``data`` under ``folder`` and validate it as a dataset.

    Returns (path, config changes: dataset, data_path, n_train, n_test); raises ValueError
    with a message for the user when the file is too large, not UTF-8 CSV, or rejected by
    the csv loader (non-numeric features, fewer than 2 classes, ...)."""
    from ijr_core.config import RunConfig
    from ijr_core.data import load_dataset

    if len(data) > MAX_CSV_MB * 2**20:
        raise ValueError(f"the file is {len(data) / 2**20:.1f} MiB; at most {MAX_CSV_MB} MiB")
    try:
        rows = csv_row_count(data)
    except UnicodeDecodeError as exc:
        raise ValueError(f"not a UTF-8 CSV file (byte {exc.start} is not UTF-8)") from None
    except csv.Error as exc:
        if "field larger than field limit" in str(exc):
            raise ValueError(
                f"a cell is longer than {csv.field_size_limit():,} characters"
            ) from None
        raise ValueError("not a CSV file (a line the CSV reader cannot parse)") from None
    if rows < 3:
        raise ValueError(f"the file has {rows} rows; need a few samples of at least 2 classes")
    if folder.parent.name == "_uploads":  # the app's own uploads folder, one per session
        prune_uploads(folder.parent)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"data-{uuid.uuid4().hex[:8]}.csv"
    path.write_bytes(data)
    last_error: Exception | None = None
    for n in (rows, rows - 1):  # without / with a header row
        n_test = max(1, n // 5)
        changes = {
            "dataset": "csv",
            "data_path": str(path),
            "n_train": n - n_test,
            "n_test": n_test,
            "csv_label_column": label_column,
        }
        try:
            cfg = RunConfig(
                label_noise=0.0, model="mlp", probe_size=min(1000, n - n_test), **changes
            )
            load_dataset(cfg)
            return path, changes
        except ValueError as exc:  # ConfigError, DatasetError
            last_error = exc
    path.unlink(missing_ok=True)
    message = str(last_error).replace(f"{path}: ", "").replace(str(path), "the file")
    raise ValueError(message)


KEEP_UPLOADS = 5  # newest CSV files kept per session (runs trained on older ones keep going)
UPLOAD_MAX_AGE = 7 * 24 * 3600


def prune_uploads(root: Path, keep: int = KEEP_UPLOADS, max_age: float = UPLOAD_MAX_AGE) -> int:
    """Remove uploaded CSVs under ``root`` (one folder per session) beyond the newest
    ``keep`` of each session and any older than ``max_age`` seconds, then empty folders;
    returns how many files went. Uploads would otherwise pile up forever."""
    import time

    if not root.is_dir():
        return 0
    removed, now = 0, time.time()
    for folder in root.iterdir():
        if not folder.is_dir() or folder.is_symlink():
            continue
        files = sorted((p for p in folder.glob("*.csv") if p.is_file()),
                       key=lambda p: p.stat().st_mtime, reverse=True)
        for i, p in enumerate(files):
            if i >= keep or now - p.stat().st_mtime > max_age:
                p.unlink(missing_ok=True)
                removed += 1
        if not any(folder.iterdir()):
            folder.rmdir()
    return removed


def _apply_csv(key: str) -> None:
    """on_change of the CSV uploader: validate and load the file into the sidebar form."""
    file = st.session_state.get(key)
    if file is None:
        return
    label = st.session_state.get(config_ui.key("csv_label_column")) or None
    try:
        path, changes = check_csv(file.getvalue(), upload_folder(), label)
    except ValueError as exc:
        st.session_state[f"{key}_error"] = f"{file.name}: {exc}"
        st.session_state.pop(f"{key}_ok", None)
        return
    st.session_state.pop(f"{key}_error", None)
    # Applied explicitly, not inherited from the preset: clean labels, the file's name.
    stem = safe_name(Path(file.name).stem, "csv", 40)
    before = st.session_state.get(config_ui.key("label_noise"))
    changes = {**changes, "label_noise": 0.0, "name": stem}
    was = f" (the preset had {before})" if before not in (None, "", "0.0", "0") else ""
    st.session_state[f"{key}_ok"] = (
        f"{file.name}: {changes['n_train']} training / {changes['n_test']} test samples. "
        f"Applied: dataset = csv, name = {stem}, label_noise = 0{was}: your labels as they "
        "are; set Data → label_noise to flip a fraction. Features are standardised "
        "(Data → standardize)."
    )
    for name, value in changes.items():
        st.session_state[config_ui.key(name)] = config_ui.widget_value(name, value)
    if st.session_state.get(config_ui.key("model")) == "cnn":
        st.session_state[config_ui.key("model")] = "mlp"
    st.session_state[config_ui.PRESET_KEY] = config_ui.CUSTOM


def csv_upload_sidebar(key: str = CSV_KEY, container=None) -> None:
    """Sidebar widget: upload a CSV dataset and train on it (call before
    ``config_ui.sidebar_config()`` or anywhere in the sidebar; the form follows on the
    next rerun, which the upload itself triggers)."""
    box = container if container is not None else st.sidebar
    # open while there is something to report: after a good upload the success note (the
    # only sign that the form now trains on the file) must not vanish into a closed box
    shown = st.session_state.get(f"{key}_error") or st.session_state.get(f"{key}_ok")
    with box.expander("Your own data (CSV)", expanded=bool(shown)):
        st.file_uploader(
            "CSV: numeric feature columns + one label column",
            type=["csv"],
            key=key,
            on_change=_apply_csv,
            args=(key,),
            max_upload_size=MAX_CSV_MB,
            help="The label column is the last one unless csv_label_column (Data) names it. "
            f"At most {MAX_CSV_MB} MiB; 20 % of the rows become the test set.",
        )
        if st.session_state.get(f"{key}_error"):
            st.error(plain(st.session_state[f"{key}_error"]))
        elif st.session_state.get(f"{key}_ok"):
            st.success(st.session_state[f"{key}_ok"])


def run_zip_uploader(root: Path | None = None, key: str = ZIP_KEY) -> Path | None:
    """Upload widget for a run (or sweep) zip; imports it once into the runs folder and
    returns the new folder (None when nothing new was imported). Bad files: st.error."""
    root = Path(root) if root is not None else session.runs_dir()
    file = st.file_uploader(
        "Upload a run zip (as downloaded here)",
        type=["zip"],
        key=key,
        max_upload_size=MAX_ZIP_MB,
        help=f"A run, sweep or group folder zipped. At most {MAX_ZIP_MB} MiB; checked before "
        "anything is kept, never unpickled.",
    )
    if file is None:
        return None
    done = st.session_state.setdefault(f"{key}_done", {})
    file_id = getattr(file, "file_id", None) or f"{file.name}:{file.size}"
    if file_id in done:
        result = done[file_id]
        if result.startswith("error:"):
            st.error(plain(result[len("error:") :]))
        else:
            st.success(f"Imported as **{Path(result).name}**.")
        return None
    stem = Path(file.name).stem
    try:
        folder = runs_store.import_zip(
            file.getvalue(), root, name=stem, max_bytes=MAX_ZIP_MB * 2**20
        )
    except runs_store.UploadError as exc:
        done[file_id] = f"error:{file.name}: {exc}"
        st.error(plain(f"{file.name}: {exc}"))
        return None
    done[file_id] = str(folder)
    if runs_store.kind_of(folder) == "run":
        st.session_state["inspect_source"] = str(folder)
    st.success(f"Imported as **{folder.name}**; it is now in the run lists (Inspect, Compare).")
    return folder
