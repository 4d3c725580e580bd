"""Issue 15: hostile inputs. The attack corpus (tests/attacks.py, every attack in a child
process under a memory ceiling) must be handled cleanly throughout, a fuzz of load_run over
random corruptions of a real run folder must only ever load or raise RunFormatError, and the
limits, confinement and leftovers cleanup behave as documented."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import numpy as np
import pytest

from ijr_core import config as cfgmod
from ijr_core.config import ConfigError, RunConfig, param_count
from ijr_core.data import DatasetError, check_data_path, load_dataset
from ijr_core.models import build_model
from ijr_core.run import (
    MAX_NPZ_BYTES,
    Run,
    RunFormatError,
    load_run,
    read_json_object,
    shown_status,
    writer_alive,
)
from ijr_core.trainer import train

ROOT = Path(__file__).resolve().parent.parent
TINY = dict(dataset="moons", n_train=64, n_test=16, probe_size=64, width=8, depth=1, steps=8,
            probe_every=4, label_noise=0.0)


# --------------------------------------------------------------------------- the corpus


@pytest.fixture(scope="module")
def corpus() -> dict[str, dict]:
    proc = subprocess.run([sys.executable, str(ROOT / "tests" / "attacks.py"), "--json"],
                          capture_output=True, text=True, timeout=1500, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    results = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    return {r["name"]: r for r in results}


def _attack_names() -> list[str]:
    sys.path.insert(0, str(ROOT / "tests"))
    try:
        import attacks
    finally:
        sys.path.pop(0)
    return list(attacks.ATTACKS)


@pytest.mark.parametrize("name", _attack_names())
def test_every_attack_is_handled_cleanly(corpus, name):
    result = corpus[name]
    assert result["outcome"] == "clean", result
    assert "Traceback" not in result["detail"]


def test_the_corpus_covers_every_item_of_the_issue(corpus):
    groups = {r["group"].split()[0] for r in corpus.values()}
    assert groups >= {"1", "2", "3", "4", "5", "6", "7", "8", "10"}


# --------------------------------------------------------------------------- fuzz


FUZZ = textwrap.dedent(
    """
    import json, random, resource, shutil, sys, zipfile
    from pathlib import Path
    import numpy as np
    from ijr_core.run import RunFormatError, load_run

    src, work, seed, n = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    rng = random.Random(seed)
    # the ceiling: what the process has now plus 1.5 GiB (a run folder is read within 512 MiB)
    vm = int([l for l in open("/proc/self/status") if l.startswith("VmSize")][0].split()[1])
    limit = vm * 1024 + 3 * 2**29
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    VALUES = [None, True, -1, 0, 2.5, 10**30, "x", [], {}, [[[]]], {"a": [1]}, "../../etc",
              1e308, -10**12]

    def corrupt(folder):
        name = rng.choice(["run.json", "scalars.npz", "samples.npz", "params.npz"])
        path = folder / name
        kind = rng.randrange(7)
        data = path.read_bytes()
        if kind == 0:  # flip bytes
            b = bytearray(data)
            for _ in range(rng.randint(1, 20)):
                b[rng.randrange(len(b))] = rng.randrange(256)
            path.write_bytes(bytes(b))
        elif kind == 1:  # truncate
            path.write_bytes(data[: rng.randrange(len(data))])
        elif kind == 2:  # delete or replace by a folder
            path.unlink()
            if rng.random() < 0.5:
                path.mkdir()
        elif kind == 3 and name == "run.json":  # a value of a wrong type anywhere
            doc = json.loads(data)
            where = doc if rng.random() < 0.4 else doc.get(rng.choice(["meta", "config"])) or doc
            key = rng.choice(list(where) + ["n_classes", "input_shape", "class_names"])
            where[key] = rng.choice(VALUES)
            path.write_text(json.dumps(doc))
        elif kind in (3, 4) and name != "run.json":  # an array of another shape / dtype
            with zipfile.ZipFile(path) as zf:
                members = {m: zf.read(m) for m in zf.namelist()}
            key = rng.choice(list(members))
            arr = rng.choice([np.zeros((3, 2)), np.arange(5), np.array([]), np.zeros((0, 7)),
                              np.array(["a", "b"]), np.ones(2, dtype=np.complex64),
                              np.zeros((2, 2, 2, 2)), np.array(7.0)])
            import io
            buf = io.BytesIO(); np.save(buf, arr); members[key] = buf.getvalue()
            with zipfile.ZipFile(path, "w") as zf:
                for m, d in members.items():
                    zf.writestr(m, d)
        elif kind == 5 and name != "run.json":  # a header declaring a huge shape
            with zipfile.ZipFile(path) as zf:
                members = {m: zf.read(m) for m in zf.namelist()}
            key = rng.choice(list(members))
            import io
            buf = io.BytesIO()
            np.lib.format.write_array_header_1_0(
                buf, {"descr": "<f8", "fortran_order": False,
                      "shape": (rng.choice([10**6, 10**9, 10**12]), rng.randint(1, 9))})
            members[key] = buf.getvalue() + members[key][-64:]
            with zipfile.ZipFile(path, "w") as zf:
                for m, d in members.items():
                    zf.writestr(m, d)
        else:  # random bytes of random length
            path.write_bytes(rng.randbytes(rng.choice([0, 1, 100, 5000])))

    outcomes = {"loaded": 0, "refused": 0}
    for i in range(n):
        folder = work / f"f{i}"
        shutil.copytree(src, folder)
        for _ in range(rng.randint(1, 3)):
            try:
                corrupt(folder)
            except (FileNotFoundError, IsADirectoryError, json.JSONDecodeError,
                    zipfile.BadZipFile, UnicodeDecodeError, ValueError, KeyError, IndexError):
                pass  # the corruption itself could not apply to an already broken file
        try:
            load_run(folder)
            outcomes["loaded"] += 1
        except RunFormatError:
            outcomes["refused"] += 1
        shutil.rmtree(folder)
    print(json.dumps(outcomes))
    """
)


def test_load_run_fuzz_only_loads_or_refuses_under_a_memory_ceiling(tmp_path):
    """Random corruptions (bytes flipped, truncation, missing files, wrong JSON types,
    arrays of other shapes and dtypes, npy headers declaring huge shapes, random bytes) of
    a real run folder: load_run loads the folder or raises RunFormatError; any other
    exception, or memory beyond the ceiling (a MemoryError), fails the child process."""
    src = tmp_path / "src"
    train(RunConfig(**TINY), out_dir=src)
    work = tmp_path / "work"
    work.mkdir()
    proc = subprocess.run(
        [sys.executable, "-c", FUZZ, str(src), str(work), "15", "300"],
        capture_output=True, text=True, timeout=600, cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    outcomes = json.loads(proc.stdout.strip().splitlines()[-1])
    assert outcomes["loaded"] + outcomes["refused"] == 300
    assert outcomes["refused"] > 150  # most corruptions are detected, not silently loaded


# --------------------------------------------------------------------------- run folders


def _run(tmp_path) -> Path:
    folder = tmp_path / "run"
    train(RunConfig(**TINY), out_dir=folder)
    return folder


def test_npz_budget_covers_the_three_files_together(tmp_path, monkeypatch):
    import ijr_core.run_format as runmod

    folder = _run(tmp_path)
    sizes = sum(a.nbytes for f in ("scalars", "samples", "params")
                for a in dict(np.load(folder / f"{f}.npz")).values())
    monkeypatch.setattr(runmod, "MAX_NPZ_BYTES", sizes + 20_000)  # npy headers count too
    load_run(folder)
    monkeypatch.setattr(runmod, "MAX_NPZ_BYTES", sizes // 2)
    with pytest.raises(RunFormatError, match="unpacks to more than"):
        load_run(folder)
    assert MAX_NPZ_BYTES >= 400 * 2**20  # a run within config.LIMITS always fits


def test_loaded_arrays_equal_numpys_reading(tmp_path):
    """The bounded reader is an exact reader: every array as np.load reads it."""
    folder = _run(tmp_path)
    run = load_run(folder)
    with np.load(folder / "scalars.npz") as z:
        for k in z.files:
            np.testing.assert_array_equal(run.scalars[k], z[k])
    with np.load(folder / "params.npz") as z:
        for k in z.files:
            if k != "step":
                stacked = np.stack([p[k[len("param:"):]] for p in run.params])
                np.testing.assert_array_equal(stacked, z[k])


def test_fortran_ordered_and_big_endian_arrays_read_correctly(tmp_path):
    from ijr_core.run import _read_npz

    a = np.asfortranarray(np.arange(12, dtype=">f8").reshape(3, 4))
    path = tmp_path / "x.npz"
    np.savez(path, a=a, b=np.arange(5, dtype=np.int16))
    got = _read_npz(path)
    np.testing.assert_array_equal(got["a"], a)
    np.testing.assert_array_equal(got["b"], np.arange(5))


def test_compressed_npz_is_read_within_the_ratio(tmp_path):
    from ijr_core.run import _read_npz

    path = tmp_path / "x.npz"
    np.savez_compressed(path, a=np.random.default_rng(0).standard_normal(1000))
    assert _read_npz(path)["a"].shape == (1000,)
    big = tmp_path / "zeros.npz"
    np.savez_compressed(big, a=np.zeros(2**20))  # 8 MiB of zeros: ratio about 1000:1
    with pytest.raises(RunFormatError, match="compression bomb"):
        _read_npz(big)


def test_json_reader_bounds(tmp_path):
    path = tmp_path / "a.json"
    path.write_text("{" + '"a":' * 0 + '"x": ' + "[" * 100_000 + "]" * 100_000 + "}")
    with pytest.raises(RunFormatError, match="too deep"):
        read_json_object(path)
    path.write_text('{"a": "' + "x" * 200 + '"}')
    with pytest.raises(RunFormatError, match="larger than"):
        read_json_object(path, max_bytes=100)
    assert read_json_object(path, max_bytes=1000)["a"] == "x" * 200


@pytest.mark.parametrize("value", ["three", 2.5, 20_000_000, 1, True, [3]])
def test_untrusted_n_classes_is_refused(tmp_path, value):
    folder = _run(tmp_path)
    doc = json.loads((folder / "run.json").read_text())
    doc["meta"]["n_classes"] = value
    (folder / "run.json").write_text(json.dumps(doc))
    with pytest.raises(RunFormatError, match="n_classes"):
        load_run(folder)


def test_a_run_whose_writer_is_gone_is_interrupted(tmp_path):
    folder = _run(tmp_path)
    doc = json.loads((folder / "run.json").read_text())
    assert writer_alive(doc) is True  # this process wrote it
    doc["status"] = "running"
    assert shown_status(doc) == "running"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()
    doc["writer"]["pid"] = int(dead)
    assert writer_alive(doc) is False and shown_status(doc) == "interrupted"
    (folder / "run.json").write_text(json.dumps(doc))
    assert "interrupted" in load_run(folder).meta
    doc["writer"]["host"] = "another-machine"
    assert writer_alive(doc) is None and shown_status(doc) == "running"


def test_temporary_files_of_a_killed_save_are_removed(tmp_path):
    folder = _run(tmp_path)
    dead = int(subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                              capture_output=True, text=True).stdout)
    orphan = folder / f".params.npz.{dead}.deadbeef.tmp"
    live = folder / f".params.npz.{os.getpid()}.cafe0000.tmp"
    orphan.write_bytes(b"x")
    live.write_bytes(b"x")
    load_run(folder).save(folder)
    assert not orphan.exists() and live.exists()


# --------------------------------------------------------------------------- limits


@pytest.mark.parametrize("model, dataset, width, depth", [
    ("mlp", "digits", 128, 2), ("mlp", "moons", 7, 3), ("linear", "digits", 1, 1),
    ("cnn", "digits", 5, 2), ("cnn", "digits", 3, 4), ("mlp", "blobs", 16, 1),
])
def test_param_count_equals_the_models_parameters(model, dataset, width, depth):
    config = RunConfig(model=model, dataset=dataset, width=width, depth=depth, n_train=50,
                       n_test=20, probe_size=50, n_classes=4)
    data = load_dataset(config)
    built = sum(p.numel() for p in build_model(config, data).parameters())
    assert param_count(model, width, depth, data.input_shape[0], data.n_classes,
                       data.image_shape) == built


@pytest.mark.parametrize("changes, field", [
    (dict(n_train=100_001), "n_train"),
    (dict(n_train=80_000, n_test=30_000), "n_train"),
    (dict(width=4096, depth=16), "width"),
    (dict(width=1500, depth=2), "width"),
    (dict(width=512, depth=2, checkpoint_limit=1000), "checkpoint_limit"),
    (dict(checkpoint_limit=1001), "checkpoint_limit"),
    (dict(steps=10_000_000, probe_every=1, width=256), "probe_every"),
    (dict(dataset="blobs", n_classes=101), "n_classes"),
    (dict(dataset="cifar10", data_path="x", n_train=20_000), "n_train"),
    (dict(lr=3.5e38), "lr"),
])
def test_work_limits_are_config_errors_naming_the_field(changes, field):
    with pytest.raises(ConfigError) as info:
        RunConfig(**changes)
    assert info.value.field == field
    assert "at most" in str(info.value) or "must be in" in str(info.value)


def test_presets_and_defaults_are_within_the_limits():
    for preset in cfgmod.PRESETS.values():
        RunConfig.from_dict(preset.to_dict())
    RunConfig(dataset="cifar10", data_path="x")  # the default MLP on full-size images
    RunConfig(dataset="mnist", data_path="x", model="cnn", width=64, depth=3)


def test_a_csv_beyond_the_limits_is_refused_when_the_model_is_built(tmp_path):
    """The csv's shape is only known once read: build_model checks the parameters."""
    path = tmp_path / "wide.csv"
    row = ",".join(["1.5"] * 3000)
    path.write_text("".join(f"{row},{i % 2}\n" for i in range(20)))
    config = RunConfig(dataset="csv", data_path=str(path), n_train=15, n_test=5, probe_size=15,
                       width=1024)
    data = load_dataset(config)
    with pytest.raises(ConfigError, match="parameters"):
        build_model(config, data)


# --------------------------------------------------------------------------- data files


def test_check_data_path_confines_before_looking(tmp_path):
    inside = tmp_path / "data"
    inside.mkdir()
    (inside / "a.csv").write_text("1,0\n2,1\n")
    (inside / "link.csv").symlink_to(tmp_path / "outside.csv")
    ok = RunConfig(dataset="csv", data_path=str(inside / "a.csv"))
    check_data_path(ok, [inside])
    for bad in (inside / "link.csv", inside / ".." / "outside.csv", Path("/etc/passwd"),
                tmp_path / "missing.csv"):
        with pytest.raises(DatasetError, match="not allowed") as info:
            check_data_path(RunConfig(dataset="csv", data_path=str(bad)), [inside])
        assert "exist" not in str(info.value)
    check_data_path(RunConfig(), [])  # digits reads no file


@pytest.mark.parametrize("content, match", [
    ("x,label\n1,SECRET1\nadmin,SECRET2\n3,SECRET1\n", "column 1, line 3"),
    ("a,b\n" + "".join(f"{i},{i}\n" for i in range(300)), "300 different labels"),
    ("a," * 5000 + "b\n1,0\n", "5001 columns"),
    ("a,label\n" + "x" * 5000 + ",0\n", "longer than"),
])
def test_csv_errors_never_quote_the_file(tmp_path, content, match):
    path = tmp_path / "f.csv"
    path.write_text(content)
    with pytest.raises(DatasetError, match=match) as info:
        load_dataset(RunConfig(dataset="csv", data_path=str(path), n_train=2, n_test=1,
                               probe_size=2))
    assert "SECRET" not in str(info.value) and "admin" not in str(info.value)


def test_only_regular_files_of_bounded_size_are_read(tmp_path, monkeypatch):
    import ijr_core.data_csv as datamod

    with pytest.raises(DatasetError, match="not a regular file"):
        load_dataset(RunConfig(dataset="csv", data_path="/dev/zero"))
    path = tmp_path / "f.csv"
    path.write_text("".join(f"{i},{i % 2}\n" for i in range(100)))
    monkeypatch.setattr(datamod, "MAX_CSV_BYTES", 100)
    with pytest.raises(DatasetError, match="at most"):
        load_dataset(RunConfig(dataset="csv", data_path=str(path), n_train=50, n_test=10,
                               probe_size=50))


def test_sweep_names_are_confined(tmp_path):
    from ijr_core.sweep import load_sweep

    for name in ("../x", "/abs", "a/b", ".hidden", "", "..", "a\\b"):
        folder = tmp_path / f"sw{abs(hash(name))}"
        folder.mkdir()
        (folder / "sweep.json").write_text(json.dumps({
            "schema_version": 1, "config": {}, "lrs": [0.1], "runs": [name],
            "status": "finished", "meta": {}}))
        with pytest.raises(RunFormatError, match="not a folder name inside the sweep"):
            load_sweep(folder)


def test_upload_staging_leftovers_are_removed(tmp_path):
    from app.runs_store import remove_stale_uploads

    old = tmp_path / ".upload-abc"
    old.mkdir()
    (old / "run").mkdir()
    os.utime(old, (0, 0))
    new = tmp_path / ".upload-new"
    new.mkdir()
    assert remove_stale_uploads(tmp_path) == [old]
    assert not old.exists() and new.exists()


def test_uploaded_csvs_are_pruned_per_session(tmp_path):
    from app.uploads import prune_uploads

    root = tmp_path / "_uploads"
    for s in ("a", "b"):
        (root / s).mkdir(parents=True)
        for i in range(8):
            p = root / s / f"data-{i}.csv"
            p.write_text("1,0\n")
            os.utime(p, (1e9 + i, 2e9 + i))  # data-7 is the newest
    (root / "old").mkdir()
    (root / "old" / "data.csv").write_text("1,0\n")
    os.utime(root / "old" / "data.csv", (0, 0))
    assert prune_uploads(root, keep=3) == 2 * 5 + 1
    assert sorted(p.name for p in (root / "a").iterdir()) == ["data-5.csv", "data-6.csv",
                                                               "data-7.csv"]
    assert not (root / "old").exists()


def test_run_folder_names_are_bounded():
    from app.session import run_folder_name

    name = run_folder_name(RunConfig(name="é/" * 400))
    assert len(name) < 150 and "/" not in name


def test_a_zip_member_name_is_never_markdown(tmp_path):
    """An npz member named like a Markdown image: the error names it; shown through
    views.plain it is inert text."""
    from app.views import plain

    folder = _run(tmp_path)
    with zipfile.ZipFile(folder / "scalars.npz", "a") as zf:
        zf.writestr("![x](http://evil.example/x.png).txt", b"")
    with pytest.raises(RunFormatError) as info:
        load_run(folder)
    shown = plain(str(info.value))
    assert "![x](" not in shown and "\\]\\(" in shown


def test_run_constructor_still_accepts_empty_runs():
    assert Run(None).scalars["step"].shape == (0,)
