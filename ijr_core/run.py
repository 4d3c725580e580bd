"""Runs: one import for the run record, its folder format and the files underneath.

The code lives by concept: :mod:`ijr_core.record` (the :class:`Run` in memory),
:mod:`ijr_core.run_format` (the run folder: save, load and every check),
:mod:`ijr_core.files` (atomic writes and bounded readers), :mod:`ijr_core.protocol`
(:class:`RunLike`, what a consumer may read of a run). This module re-exports their names,
so ``from ijr_core.run import …`` keeps working.
"""

from ijr_core.files import (
    MAX_JSON_BYTES,
    MAX_NPZ_BYTES,
    MAX_NPZ_MEMBERS,
    MAX_RATIO,
    RunFormatError,
    atomic_write,
    atomic_write_npz,
    atomic_write_text,
    read_json_object,
    read_npz,
)
from ijr_core.phases import PHASES
from ijr_core.protocol import RunLike
from ijr_core.record import (
    SAMPLE_KEYS,
    STATUSES,
    Run,
    library_versions,
    now_iso,
    phases_from_scalars,
)
from ijr_core.run_format import (
    MAX_SCALAR_VALUES,
    RUN_FILES,
    SCHEMA_VERSION,
    check_run_json,
    load_run,
    shown_status,
    writer_alive,
)

_read_npz = read_npz  # the name older code and tests import

__all__ = [
    "MAX_JSON_BYTES", "MAX_NPZ_BYTES", "MAX_NPZ_MEMBERS", "MAX_RATIO", "MAX_SCALAR_VALUES",
    "PHASES", "RUN_FILES", "SAMPLE_KEYS", "SCHEMA_VERSION", "STATUSES",
    "Run", "RunFormatError", "RunLike", "atomic_write", "atomic_write_npz", "atomic_write_text",
    "check_run_json", "library_versions", "load_run", "now_iso", "phases_from_scalars",
    "read_json_object", "read_npz", "shown_status", "writer_alive",
]
