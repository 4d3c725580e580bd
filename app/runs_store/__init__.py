"""The runs store: finding, labelling, loading and managing the folders of runs, sweeps,
grids and optimizer comparisons (the app's runs folder and the demos in assets/demo_runs).

- :mod:`app.runs_store.listing`: the one listing of a folder, labels, demos, the runs
  every page offers (:func:`run_options`);
- :mod:`app.runs_store.loading`: cached run loading, sweeps, groups, the closest demo;
- :mod:`app.runs_store.manage`: rename and delete, strictly inside the runs folder;
- :mod:`app.runs_store.zips`: zip export and the defensive zip import.

Every public name is re-exported here: ``from app import runs_store`` is the entry point.
"""

from app.runs_store.listing import (
    ASSETS,
    CURRENT,
    CURRENT_LABEL,
    DEMO_DIR,
    KINDS,
    Entry,
    RunOption,
    all_run_folders,
    damaged_label,
    demo_entries,
    demo_groups,
    demo_runs,
    demo_sweeps,
    group_members,
    kind_of,
    list_entries,
    list_runs,
    run_label,
    run_options,
)
from app.runs_store.loading import (
    GROUP_SCHEMA_VERSION,
    load_cached,
    load_group,
    matching_demo,
    open_sweep,
    write_group,
)
from app.runs_store.manage import StoreError, check_name, delete, rename
from app.runs_store.zips import (
    ALLOWED_FILES,
    MAX_MEMBERS,
    MAX_UNZIPPED_BYTES,
    MAX_ZIP_BYTES,
    STALE_UPLOAD_SECONDS,
    UploadError,
    export_zip,
    import_zip,
    remove_stale_uploads,
)

__all__ = [
    "ALLOWED_FILES", "ASSETS", "CURRENT", "CURRENT_LABEL", "DEMO_DIR", "GROUP_SCHEMA_VERSION",
    "KINDS", "MAX_MEMBERS", "MAX_UNZIPPED_BYTES", "MAX_ZIP_BYTES", "STALE_UPLOAD_SECONDS",
    "Entry", "RunOption", "StoreError", "UploadError", "all_run_folders", "check_name",
    "damaged_label", "delete", "demo_entries", "demo_groups", "demo_runs", "demo_sweeps",
    "export_zip", "group_members", "import_zip", "kind_of", "list_entries", "list_runs",
    "load_cached", "load_group", "matching_demo", "open_sweep", "remove_stale_uploads",
    "rename", "run_label", "run_options", "write_group",
]
