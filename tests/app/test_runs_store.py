"""The runs folder: listing, groups, rename/delete confined to the folder, zip round trip,
and zip imports that are too large, unsafe, damaged or pickled are refused cleanly."""

from __future__ import annotations

import io
import json
import zipfile

import numpy as np
import pytest

from app import runs_store as rs
from app.synthetic import synthetic_run
from ijr_core.run import load_run


@pytest.fixture
def root(tmp_path):
    folder = tmp_path / "runs"
    folder.mkdir()
    return folder


@pytest.fixture
def saved(root):
    run = synthetic_run(n_samples=12, n_checkpoints=6, with_params=True)
    return run, run.save(root / "20260101-a")


def _zip(files: dict[str, bytes], symlink: str | None = None) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
        if symlink:
            info = zipfile.ZipInfo(symlink)
            info.external_attr = 0o120777 << 16
            zf.writestr(info, "/etc/passwd")
    return buf.getvalue()


def _leftovers(root):
    return sorted(p.name for p in root.iterdir())


def test_list_entries_runs_and_groups(root, saved):
    run, _ = saved
    group = root / "20260102-cmp"
    run.save(group / "gd")
    run.save(group / "sam")
    rs.write_group(group, ["gd", "sam"], "optimizer comparison", run.config.to_dict())
    (root / "_uploads").mkdir()
    (root / "junk").mkdir()
    entries = rs.list_entries(root)
    assert [(e.name, e.kind) for e in entries] == [("20260102-cmp", "group"), ("20260101-a", "run")]
    assert [m.name for m in entries[0].members] == ["gd", "sam"]
    assert set(rs.all_run_folders(root)) == {"20260101-a", "20260102-cmp/gd", "20260102-cmp/sam"}
    loaded = rs.load_group(group)
    assert loaded["title"] == "optimizer comparison" and list(loaded["runs"]) == ["gd", "sam"]


def test_rename_and_delete_stay_inside_the_folder(root, saved, tmp_path):
    _, folder = saved
    new = rs.rename(folder, "renamed", root)
    assert new == root / "renamed" and load_run(new).status == "finished"
    for bad in ("../escape", "a/b", ".hidden", "", "x" * 200):
        with pytest.raises(rs.StoreError):
            rs.rename(new, bad, root)
    (root / "taken").mkdir()
    with pytest.raises(rs.StoreError, match="already exists"):
        rs.rename(new, "taken", root)
    outside = tmp_path / "outside"
    synthetic_run(n_samples=4, n_checkpoints=3).save(outside)
    with pytest.raises(rs.StoreError):
        rs.delete(outside, root)
    with pytest.raises(rs.StoreError):
        rs.delete(root, root)
    with pytest.raises(rs.StoreError):
        rs.delete(root / "taken", root)  # not a run: never removed
    assert outside.exists() and (root / "taken").exists()
    rs.delete(new, root)
    assert not new.exists()


def test_zip_round_trip(root, saved, tmp_path):
    run, folder = saved
    data = rs.export_zip(folder)
    names = zipfile.ZipFile(io.BytesIO(data)).namelist()
    assert sorted(names) == sorted(
        f"20260101-a/{f}" for f in ("run.json", "scalars.npz", "samples.npz", "params.npz")
    )
    other = tmp_path / "other"
    imported = rs.import_zip(data, other)
    assert imported == other / "20260101-a"
    back = load_run(imported)
    for key, arr in run.scalars.items():
        np.testing.assert_array_equal(back.scalars[key], arr)
    np.testing.assert_array_equal(back.samples["m_norm"], run.samples["m_norm"])
    again = rs.import_zip(data, other, name="copy")
    assert again.name == "copy"
    third = rs.import_zip(data, other)  # the name is taken: a suffix keeps both
    assert third.name.startswith("20260101-a-") and third != imported


def test_zip_with_files_at_top_level(root, saved, tmp_path):
    _, folder = saved
    files = {p.name: p.read_bytes() for p in folder.iterdir()}
    imported = rs.import_zip(_zip(files), tmp_path / "dest", name="flat")
    assert load_run(imported).step == 600


@pytest.mark.parametrize(
    ("files", "symlink", "message"),
    [
        ({"../run.json": b"{}"}, None, "unsafe path"),
        ({"/abs/run.json": b"{}"}, None, "unsafe path"),
        ({"run/evil.py": b"print(1)"}, None, "holds only"),
        ({}, "run/run.json", "link"),
        ({"run/run.json": b"not json"}, None, "not a valid run"),
        ({"a/notes.txt": b""}, None, "holds only"),
    ],
)
def test_unsafe_or_invalid_zips_are_refused(root, files, symlink, message):
    with pytest.raises(rs.UploadError, match=message):
        rs.import_zip(_zip(files, symlink), root)
    assert _leftovers(root) == []  # nothing stays behind, not even the staging folder


def test_size_caps_and_non_zip(root, saved):
    _, folder = saved
    data = rs.export_zip(folder)
    with pytest.raises(rs.UploadError, match="at most"):
        rs.import_zip(data, root, max_bytes=100)
    with pytest.raises(rs.UploadError, match="unpacks to more"):
        rs.import_zip(data, root, max_unzipped=1000)
    with pytest.raises(rs.UploadError, match="not a zip"):
        rs.import_zip(b"PK\x03\x04 garbage", root)
    bomb = _zip({"r/run.json": b"0" * 5_000_000})  # compresses to a few KiB
    with pytest.raises(rs.UploadError, match="unpacks to more"):
        rs.import_zip(bomb, root, max_unzipped=1_000_000)
    assert [p for p in _leftovers(root) if p != "20260101-a"] == []


def test_pickled_arrays_are_never_loaded(root, saved, tmp_path):
    """An object array (which needs pickle) in samples.npz is refused by load_run."""
    _, folder = saved
    files = {f"r/{p.name}": p.read_bytes() for p in folder.iterdir()}
    buf = io.BytesIO()
    np.savez(buf, step=np.array([0]), sample_ids=np.array([object()], dtype=object))
    files["r/samples.npz"] = buf.getvalue()
    with pytest.raises(rs.UploadError, match="not a valid run"):
        rs.import_zip(_zip(files), tmp_path / "dest")


def test_damaged_group_json(root, saved):
    run, _ = saved
    group = root / "g"
    run.save(group / "a")
    (group / "group.json").write_text(json.dumps({"schema_version": 1, "runs": ["../x"]}))
    with pytest.raises(ValueError, match="bad run name"):
        rs.load_group(group)


def test_open_sweep_full_partial_and_damaged(root):
    from ijr_core.sweep import Sweep

    lrs = np.array([0.5, 0.1])
    runs = [synthetic_run(n_samples=6, n_checkpoints=4, lr=lr) for lr in lrs]
    folder = Sweep(config=runs[0].config, lrs=lrs, runs=runs).save(root / "sweep")
    calls = []

    def loader(path):
        calls.append(path.name)
        return load_run(path)

    sweep = rs.open_sweep(folder, load=loader)
    assert calls == ["lr-00-0.5", "lr-01-0.1"]
    np.testing.assert_array_equal(sweep.lrs, lrs)
    np.testing.assert_array_equal(sweep.m_norm_matrix()[1], runs[1].scalars["m_norm_mean"])
    assert [e.kind for e in rs.list_entries(root)] == ["sweep"]
    # an interrupted sweep shows the runs saved so far
    doc = json.loads((folder / "sweep.json").read_text())
    (folder / "lr-01-0.1" / "run.json").unlink()
    with pytest.raises(ValueError, match="run.json"):
        rs.open_sweep(folder)  # finished, yet a run is missing: an error, not a silent gap
    (folder / "sweep.json").write_text(json.dumps({**doc, "status": "running"}))
    partial = rs.open_sweep(folder)
    assert list(partial.lrs) == [0.5] and partial.meta["status"] == "running"
    (folder / "sweep.json").write_text(json.dumps({**doc, "runs": ["../x", "y"]}))
    with pytest.raises(ValueError, match="bad run name"):
        rs.open_sweep(folder)
