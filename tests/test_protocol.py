"""RunLike: Run, loaded runs, copies and the app's synthetic runs satisfy it; it holds every
member of Run that the app reads, with Run's own signatures."""

from __future__ import annotations

import inspect
import re
from pathlib import Path
from types import SimpleNamespace

import pytest

from app.synthetic import synthetic_run
from ijr_core.protocol import RunLike
from ijr_core.record import Run
from ijr_core.run import load_run

# Members of Run that are not reads of the record: building, saving, thread-safety.
WRITER_ONLY = {"append_scalars", "append_checkpoint", "append_snapshot", "set_status", "save",
               "copy", "lock", "checkpoint_limit", "from_columns"}
APP = Path(__file__).resolve().parents[1] / "app"


def protocol_members() -> set[str]:
    return {n for n in vars(RunLike) if not n.startswith("_")}


@pytest.mark.parametrize("with_params", [False, True])
def test_synthetic_runs_their_copies_and_loaded_runs_are_runlike(tmp_path, with_params):
    run = synthetic_run(n_samples=8, n_checkpoints=4, steps=30, with_params=with_params)
    assert isinstance(run, RunLike)
    assert isinstance(run.copy(), RunLike)
    run.save(tmp_path / "r")
    assert isinstance(load_run(tmp_path / "r"), RunLike)
    assert isinstance(Run(), RunLike)  # an empty run too


def test_an_object_lacking_a_member_is_not_runlike():
    run = synthetic_run(n_samples=4, n_checkpoints=3, steps=20)
    members = {n: getattr(run, n) for n in protocol_members()}
    assert isinstance(SimpleNamespace(**members), RunLike)
    for name in sorted(protocol_members()):
        partial = SimpleNamespace(**{k: v for k, v in members.items() if k != name})
        assert not isinstance(partial, RunLike), name


def test_protocol_members_are_runs_with_the_same_kind_and_signature():
    run = Run()
    for name in protocol_members():
        ours = inspect.getattr_static(RunLike, name)
        theirs = inspect.getattr_static(run, name)  # an instance attribute, property or method
        if isinstance(ours, property):
            assert not inspect.isfunction(theirs), name
        else:
            assert inspect.isfunction(theirs), name
            got = [p.name for p in inspect.signature(ours).parameters.values()]
            want = [p.name for p in inspect.signature(theirs).parameters.values()]
            assert got == want, name


def test_every_run_member_the_app_reads_is_in_the_protocol():
    run = Run()
    run_members = {n for n in dir(run) if not n.startswith("_")}
    read = set()
    for path in APP.rglob("*.py"):
        read |= set(re.findall(r"\brun\.([A-Za-z_]\w*)", path.read_text(encoding="utf-8")))
    read &= run_members
    assert {"scalars", "sample_steps", "phase_spans"} <= read  # the scan sees the app's reads
    assert read - WRITER_ONLY <= protocol_members(), read - WRITER_ONLY - protocol_members()
    assert protocol_members() <= run_members
