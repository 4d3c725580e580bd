"""Attack corpus of issue 15: hostile run folders, uploads, links and configs.

Every attack builds its own inputs under a fresh temporary folder and returns what it
observed; :func:`run_corpus` runs each one in a forked child of a fresh process, under a
memory ceiling (RLIMIT_AS: what the child had at the fork plus ``BUDGET``) and a time limit,
and sorts the result into one of

- ``clean``: refused with a clear error (one of the project's error classes) or handled
  safely, nothing of a private file shown;
- ``traceback``: any other exception (or a run that ends "failed" with a traceback);
- ``blow-up``: the child hit the memory ceiling (a MemoryError after its memory grew by
  more than ``BLOWUP_GROWTH``, or it was killed), ran past its time limit, or left work
  running that should have stopped;
- ``escape``: a file outside the places the app may read was read (its contents reached a
  result or a message, or it trained), something was written outside, or an answer told
  whether an outside path exists.

Only public API present since the branch point (12be934) is used, so the same file
measures the code before and after the hardening::

    python tests/attacks.py            # table by attack and category
    python tests/attacks.py --json     # one JSON object per attack (used by the tests)
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import resource
import shutil
import sys
import tempfile
import time
import traceback
import zipfile
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

BUDGET = 2 * 2**30  # bytes of address space an attack may add to what the process has
BLOWUP_GROWTH = 2**30
TIME_LIMIT = 40.0
SECRET = "SECRET-7f3a9c"
# every word of the private files: a message showing one of them leaks the file
PRIVATE_WORDS = ("username", "password", "admin", "hunter2", SECRET)
BOMB = 5 * 2**28  # 1.25 GiB: fits under the ceiling, so a reader that takes it shows it
CATEGORIES = ("clean", "traceback", "blow-up", "escape")

ATTACKS: dict[str, tuple[str, Callable[[Path], tuple[str, str]]]] = {}
NO_CEILING: set[str] = set()  # attacks that render charts: V8 reserves more address space


def attack(group: str, ceiling: bool = True):
    def deco(fn):
        ATTACKS[fn.__name__] = (group, fn)
        if not ceiling:
            NO_CEILING.add(fn.__name__)
        return fn

    return deco


class Observed(Exception):  # noqa: N818 - carries an outcome out of an attack
    def __init__(self, outcome: str, detail: str):
        super().__init__(detail)
        self.outcome, self.detail = outcome, detail


# --------------------------------------------------------------------------- helpers


def _user_errors() -> tuple[type, ...]:
    from app.runs_store import StoreError, UploadError
    from ijr_core.config import ConfigError
    from ijr_core.data import DatasetError
    from ijr_core.run import RunFormatError

    return (RunFormatError, UploadError, StoreError, ConfigError, DatasetError)


def expect_refusal(fn: Callable[[], object]) -> tuple[str, str]:
    """clean when ``fn`` raises one of the project's error classes (escape when its message
    shows the secret); ``accepted`` when it returns; other exceptions propagate."""
    try:
        fn()
    except _user_errors() as exc:
        msg = str(exc)
        if any(w in msg for w in PRIVATE_WORDS):
            return "escape", f"message quotes a private file: {msg[:160]}"
        return "clean", f"{type(exc).__name__}: {msg[:160]}"
    return "accepted", "no error"


def tiny_config(**changes):
    from ijr_core.config import RunConfig

    base = dict(dataset="moons", n_train=64, n_test=16, probe_size=64, width=8, depth=1,
                steps=8, probe_every=4, label_noise=0.0)
    return RunConfig(**{**base, **changes})


def real_run(tmp: Path, name: str = "run") -> Path:
    """A small run folder written by the trainer (with parameter snapshots)."""
    from ijr_core.trainer import train

    folder = tmp / name
    train(tiny_config(), out_dir=folder)
    return folder


def use_runs_dir(tmp: Path) -> Path:
    from app import session

    runs = tmp / "runs"
    runs.mkdir(exist_ok=True)
    os.environ["IJR_RUNS_DIR"] = str(runs)
    session.set_runs_dir(None)
    return runs


def npy_header(descr: str, shape: tuple) -> bytes:
    import numpy as np

    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buf, {"descr": descr, "fortran_order": False, "shape": shape}
    )
    return buf.getvalue()


def bomb_npz(path: Path, key: str, nbytes: int) -> None:
    """An .npz whose member ``key`` is float64 zeros of ``nbytes`` bytes, deflated (a few
    MB on disk)."""
    chunk = bytes(1 << 24)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        with zf.open(f"{key}.npy", "w", force_zip64=True) as f:
            f.write(npy_header("<f8", (nbytes // 8,)))
            for _ in range(nbytes // len(chunk)):
                f.write(chunk)


def edit_npz(path: Path, changes: dict) -> None:
    """Rewrite an .npz with members replaced (raw bytes) or dropped (None)."""
    with zipfile.ZipFile(path) as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    for k, v in changes.items():
        if v is None:
            members.pop(k, None)
        else:
            members[k] = v
    with zipfile.ZipFile(path, "w") as zf:
        for n, data in members.items():
            zf.writestr(n, data)


def npy_bytes(arr) -> bytes:
    import numpy as np

    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=False)
    return buf.getvalue()


def edit_json(path: Path, fn) -> None:
    doc = json.loads(path.read_text())
    fn(doc)
    path.write_text(json.dumps(doc))


def zip_folder(folder: Path, replace: dict[str, bytes] | None = None) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        for p in sorted(folder.iterdir()):
            data = (replace or {}).get(p.name, p.read_bytes() if p.is_file() else None)
            if data is not None:
                zf.writestr(f"{folder.name}/{p.name}", data)
    return buf.getvalue()


def secrets(tmp: Path) -> Path:
    """Private files outside every place the app may read."""
    out = tmp / "outside"
    out.mkdir(exist_ok=True)
    (out / "creds.csv").write_text(f"username,password\nadmin,{SECRET}\nbob,hunter2\n")
    rows = "".join(f"{i % 7},{(i * 3) % 5},{i % 2}\n" for i in range(200))
    (out / "numbers.csv").write_text(rows)
    return out


def run_job(config) -> tuple[str, str]:
    """A TrainingJob of the app run to its end: clean when refused (failed at the start
    with a message, nothing trained), escape when it trained on the file."""
    from app import session

    job = session.TrainingJob(config, owner=None)
    job.run_sync()
    return job_outcome(job)


def job_outcome(job) -> tuple[str, str]:
    """A job that failed at its start with one of the project's errors: clean; one whose
    run failed inside training (a traceback in the run): traceback, or blow-up when memory
    ran out; a message quoting a private file: escape."""
    if job.status != "failed":
        return "accepted", f"trained: {job.status}"
    msg = job.error or (job.result.meta.get("error", "") if job.result is not None else "")
    if any(w in msg for w in PRIVATE_WORDS):
        return "escape", f"message quotes a private file: {msg[:160]}"
    if "MemoryError" in msg or "allocate" in msg:
        return "blow-up", msg[:160]
    if job.error is None or not any(e in msg for e in ("DatasetError", "ConfigError")) \
            and ("Error:" in msg or "Traceback" in msg):
        return "traceback", msg[:160]
    return "clean", msg[:160]


# --------------------------------------------------------------------------- run folders


@attack("1 run zip / folder")
def npz_bomb_in_scalars(tmp):
    folder = real_run(tmp)
    bomb_npz(folder / "scalars.npz", "step", BOMB)
    from ijr_core.run import load_run

    return expect_refusal(lambda: load_run(folder))


@attack("1 run zip / folder")
def npz_bomb_in_uploaded_zip(tmp):
    from app.runs_store import import_zip

    folder = real_run(tmp)
    bomb_npz(folder / "scalars.npz", "step", BOMB)
    runs = tmp / "runs"
    runs.mkdir()
    outcome = expect_refusal(lambda: import_zip(zip_folder(folder), runs))
    left = [p.name for p in runs.iterdir()]
    if left:
        return "blow-up", f"left behind: {left}"
    return outcome


@attack("1 run zip / folder")
def npy_header_declares_1e12(tmp):
    import numpy as np

    folder = real_run(tmp)
    n = len(np.load(folder / "samples.npz")["noisy"])
    edit_npz(folder / "samples.npz",
             {"noisy.npy": npy_header("|b1", (10**12,)) + bytes(n)})
    from ijr_core.run import load_run

    return expect_refusal(lambda: load_run(folder))


@attack("1 run zip / folder")
def npy_object_dtype(tmp):
    folder = real_run(tmp)
    edit_npz(folder / "scalars.npz", {"lr.npy": npy_header("|O", (3,)) + b"\x80\x04N." * 3})
    from ijr_core.run import load_run

    return expect_refusal(lambda: load_run(folder))


@attack("1 run zip / folder")
def npz_member_not_npy(tmp):
    folder = real_run(tmp)
    edit_npz(folder / "scalars.npz", {"notes.txt": b"hello"})
    from ijr_core.run import load_run

    return expect_refusal(lambda: load_run(folder))


@attack("1 run zip / folder")
def npz_bzip2_member(tmp):
    folder = real_run(tmp)
    path = folder / "params.npz"
    with zipfile.ZipFile(path) as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    with zipfile.ZipFile(path, "w", zipfile.ZIP_BZIP2) as zf:
        for n, data in members.items():
            zf.writestr(n, data)
    from ijr_core.run import load_run

    outcome = expect_refusal(lambda: load_run(folder))
    # bzip2 itself is harmless at this size; what matters is a clean answer either way
    return ("clean", "loaded") if outcome[0] == "accepted" else outcome


@attack("6 damaged run breaks a page")
def run_json_deeply_nested(tmp):
    folder = real_run(tmp)
    text = (folder / "run.json").read_text()
    deep = "[" * 200_000 + "]" * 200_000
    (folder / "run.json").write_text(text.replace('"meta": {', f'"meta": {{"x": {deep}, ', 1))
    from ijr_core.run import load_run

    return expect_refusal(lambda: load_run(folder))


@attack("6 damaged run breaks a page")
def run_json_integer_of_5000_digits(tmp):
    folder = real_run(tmp)
    text = (folder / "run.json").read_text()
    (folder / "run.json").write_text(text.replace('"step": ', '"step": ' + "9" * 5000 + ", "
                                                  '"old_step": ', 1))
    from ijr_core.run import load_run

    return expect_refusal(lambda: load_run(folder))


@attack("6 damaged run breaks a page")
def run_json_is_a_fifo(tmp):
    folder = real_run(tmp)
    (folder / "run.json").unlink()
    os.mkfifo(folder / "run.json")
    from ijr_core.run import load_run

    return expect_refusal(lambda: load_run(folder))


@attack("6 damaged run breaks a page")
def deep_json_breaks_run_lists(tmp):
    """One damaged folder in the runs folder must not break the lists of every session."""
    from app import runs_store

    runs = use_runs_dir(tmp)
    real_run(runs, "good")
    bad = runs / "bad"
    bad.mkdir()
    (bad / "run.json").write_text("[" * 200_000 + "]" * 200_000)
    grp = runs / "grp"
    grp.mkdir()
    (grp / "group.json").write_text("{" + '"a":[' * 100_000 + "]" * 100_000 + "}")
    labels = [runs_store.run_label(f) for f in runs_store.list_runs(runs)]
    entries = runs_store.list_entries(runs)
    if not any("good" in s for s in labels) or not entries:
        return "traceback", "the good run is not listed"
    return "clean", f"{len(labels)} runs listed, {len(entries)} entries"


@attack("6 damaged run breaks a page")
def meta_n_classes_not_an_integer(tmp):
    from app import charts
    from ijr_core.run import load_run

    folder = real_run(tmp)
    edit_json(folder / "run.json", lambda d: d["meta"].update(n_classes="three"))
    outcome = expect_refusal(lambda: load_run(folder))
    if outcome[0] != "accepted":
        return outcome
    charts.scatter_chart(load_run(folder), 0)
    return "clean", "charted"


@attack("3 work a configuration asks for")
def meta_n_classes_2e7(tmp):
    from app import charts
    from ijr_core.run import load_run

    folder = real_run(tmp)
    edit_json(folder / "run.json", lambda d: d["meta"].update(n_classes=20_000_000))
    outcome = expect_refusal(lambda: load_run(folder))
    if outcome[0] != "accepted":
        return outcome
    run = load_run(folder)
    for fn in (charts.scatter_chart, charts.histogram_chart):
        with contextlib.suppress(TypeError):
            fn(run, "m_norm", 0) if fn is charts.histogram_chart else fn(run, 0)
    if charts.n_classes(run) > 1000:
        return "blow-up", f"charts trust K = {charts.n_classes(run):,} classes"
    return "clean", "charted"


@attack("6 damaged run breaks a page")
def params_shapes_do_not_fit_the_model(tmp):
    import numpy as np

    from app import maps
    from ijr_core.run import load_run

    folder = real_run(tmp)
    with np.load(folder / "params.npz") as z:
        w = z["param:0.weight"]
    edit_npz(folder / "params.npz", {"param:0.weight.npy": npy_bytes(w[:, :-1])})
    outcome = expect_refusal(lambda: maps.predictions_at(load_run(folder), 0))
    return ("clean", "predicted") if outcome[0] == "accepted" else outcome


# --------------------------------------------------------------------------- data paths


@attack("2 data_path reads server files")
def url_data_path_dev_zero(tmp):
    from ijr_core.config import RunConfig

    use_runs_dir(tmp)
    cfg = RunConfig.from_query("dataset=csv&data_path=/dev/zero&n_train=64&n_test=16"
                               "&probe_size=64&width=8&depth=1&steps=4")
    return run_job(cfg)


@attack("2 data_path reads server files")
def url_data_path_private_csv(tmp):
    use_runs_dir(tmp)
    out = secrets(tmp)
    outcome = run_job(tiny_config(dataset="csv", data_path=str(out / "creds.csv"), n_train=2,
                                  n_test=1, probe_size=2))
    return ("escape", "trained on a private file") if outcome[0] == "accepted" else outcome


@attack("2 data_path reads server files")
def url_data_path_private_numbers(tmp):
    use_runs_dir(tmp)
    out = secrets(tmp)
    outcome = run_job(tiny_config(dataset="csv", data_path=str(out / "numbers.csv"),
                                  n_train=100, n_test=50, probe_size=50))
    return ("escape", "trained on a private file") if outcome[0] == "accepted" else outcome


@attack("2 data_path reads server files")
def uploaded_run_data_path_on_inspect(tmp):
    from app import maps
    from ijr_core.run import load_run

    use_runs_dir(tmp)
    out = secrets(tmp)
    folder = real_run(tmp)
    edit_json(folder / "run.json", lambda d: d["config"].update(
        dataset="csv", data_path=str(out / "numbers.csv"), n_train=100, n_test=50))
    outcome = expect_refusal(lambda: maps.dataset_of(load_run(folder)))
    return ("escape", "rebuilt a private file") if outcome[0] == "accepted" else outcome


@attack("2 data_path reads server files")
def uploaded_run_data_path_dev_zero(tmp):
    from app import maps
    from ijr_core.run import load_run

    use_runs_dir(tmp)
    folder = real_run(tmp)
    edit_json(folder / "run.json", lambda d: d["config"].update(
        dataset="csv", data_path="/dev/zero"))
    return expect_refusal(lambda: maps.dataset_of(load_run(folder)))


@attack("2 data_path reads server files")
def link_in_uploads_to_a_private_file(tmp):
    runs = use_runs_dir(tmp)
    out = secrets(tmp)
    uploads = runs / "_uploads" / "s1"
    uploads.mkdir(parents=True)
    (uploads / "data.csv").symlink_to(out / "numbers.csv")
    outcome = run_job(tiny_config(dataset="csv", data_path=str(uploads / "data.csv"),
                                  n_train=100, n_test=50, probe_size=50))
    return ("escape", "trained on a private file") if outcome[0] == "accepted" else outcome


@attack("2 data_path reads server files")
def gzip_bomb_in_a_data_folder(tmp):
    import gzip

    from ijr_core.data import load_dataset

    folder = tmp / "mnist"
    folder.mkdir()
    for kind, n in (("train", 10**6), ("t10k", 10)):
        (folder / f"{kind}-labels-idx1-ubyte").write_bytes(
            bytes([0, 0, 8, 1]) + n.to_bytes(4, "big") + bytes(n))
    (folder / "t10k-images-idx3-ubyte").write_bytes(
        bytes([0, 0, 8, 3]) + (10).to_bytes(4, "big") + (56).to_bytes(4, "big")
        + (56).to_bytes(4, "big") + bytes(10 * 56 * 56))
    with gzip.open(folder / "train-images-idx3-ubyte.gz", "wb", compresslevel=1) as f:
        f.write(bytes([0, 0, 8, 3]) + (10**6).to_bytes(4, "big") + (56).to_bytes(4, "big")
                + (56).to_bytes(4, "big"))
        chunk = bytes(1 << 24)
        for _ in range(BOMB // len(chunk)):
            f.write(chunk)
    cfg = tiny_config(dataset="mnist", data_path=str(folder), model="mlp")
    return expect_refusal(lambda: load_dataset(cfg))


@attack("10 leftovers / parsing")
def csv_cell_of_200k_characters(tmp):
    from app import uploads

    data = b"a,label\n" + b"1" * 200_000 + b",0\n2,1\n3,0\n4,1\n"
    try:
        uploads.check_csv(data, tmp / "up")
    except ValueError as exc:
        if "UTF-8" in str(exc):
            return "clean", f"misleading message: {exc}"
        return "clean", str(exc)[:160]
    return "accepted", "loaded"


@attack("10 leftovers / parsing")
def csv_of_20_mb(tmp):
    from app import uploads

    row = ",".join(f"{j}.{j % 7}5" for j in range(40))
    rows = "".join(f"{row},{i % 3}\n" for i in range(90_000))
    data = rows.encode()[: 20 * 2**20 - 1]
    data = data[: data.rfind(b"\n") + 1]
    t = time.perf_counter()
    try:
        uploads.check_csv(data, tmp / "up")
        what = "accepted"
    except ValueError as exc:
        what = f"refused: {str(exc)[:100]}"
    return "clean", f"{what} in {time.perf_counter() - t:.1f} s"


# --------------------------------------------------------------------------- work


@attack("3 work a configuration asks for")
def url_n_train_1e8(tmp):
    from ijr_core.config import RunConfig
    from ijr_core.data import load_dataset

    outcome = expect_refusal(lambda: load_dataset(
        RunConfig.from_query("dataset=moons&n_train=100000000")))
    return ("clean", "loaded") if outcome[0] == "accepted" else outcome


@attack("3 work a configuration asks for")
def url_width_4096_depth_16(tmp):
    from ijr_core.config import RunConfig
    from ijr_core.trainer import train

    def go():
        cfg = RunConfig.from_query("width=4096&depth=16&steps=1&probe_every=1")
        run = train(cfg)
        if run.status == "failed":
            err = run.meta.get("error", "")
            raise Observed("blow-up" if "allocate" in err else "traceback", err[:160])

    outcome = expect_refusal(go)
    return ("clean", "trained") if outcome[0] == "accepted" else outcome


@attack("3 work a configuration asks for")
def checkpoint_limit_1e6(tmp):
    """Accepted, this keeps every checkpoint's parameters: estimated from the run's own
    parameter count, not trained to the end."""
    from ijr_core.config import RunConfig
    from ijr_core.trainer import train

    def go():
        cfg = RunConfig.from_query("checkpoint_limit=1000000&width=1024&steps=100000"
                                   "&probe_every=1")
        run = train(cfg.replace(steps=1))
        kept = run.meta["n_params"] * 4 * min(cfg.checkpoint_limit, cfg.steps)
        raise Observed("blow-up", f"accepted: would keep {kept / 2**30:.0f} GiB of parameters")

    return expect_refusal(go)


def upload_and_train(tmp: Path, data: bytes, probe_size: int) -> tuple[str, str]:
    """The CSV through the upload check, then the app's default model (width 128, depth 2)
    trained on it as the sidebar would after the upload."""
    from app import uploads

    use_runs_dir(tmp)
    try:
        _, changes = uploads.check_csv(data, tmp / "runs" / "_uploads" / "s")
    except ValueError as exc:
        return "clean", str(exc)[:160]
    return run_job(tiny_config(**changes, probe_size=probe_size, width=128, depth=2))


@attack("3 work a configuration asks for")
def csv_with_1000_labels(tmp):
    data = ("x,y,label\n" + "".join(f"{i % 10},{i % 7},c{i}\n" for i in range(1000))).encode()
    return upload_and_train(tmp, data, 800)


@attack("3 work a configuration asks for")
def csv_with_a_million_columns(tmp):
    row = ",".join(["1"] * 1_000_000)
    data = "\n".join(f"{row},{i % 2}" for i in range(4)).encode() + b"\n"
    return upload_and_train(tmp, data, 3)


@attack("3 work a configuration asks for")
def twelve_jobs_at_once(tmp):
    from app import session

    use_runs_dir(tmp)
    os.environ["IJR_MAX_JOBS"] = "3"
    jobs = [session.TrainingJob(tiny_config(steps=1_000_000), owner=f"s{i}").start()
            for i in range(12)]
    try:
        time.sleep(1.0)
        alive = sum(j.alive for j in jobs)
    finally:
        for j in jobs:
            j.stop()
        for j in jobs:
            j.join(30)
    if alive > 3:
        return "blow-up", f"{alive} jobs ran at once"
    return "clean", f"{alive} ran, {sum(j.status == 'failed' for j in jobs)} refused"


# --------------------------------------------------------------------------- medium


@attack("4 sweeps outlive their tab")
def sweep_outlives_its_tab(tmp):
    from app import jobs, session

    runs = use_runs_dir(tmp)
    job = jobs.SweepJob(tiny_config(steps=1_000_000), [0.1, 0.2], runs / "sw", workers=1)
    job.owner = "gone"
    job.start()
    try:
        time.sleep(1.0)
        session.session_alive = lambda sid: sid != "gone"
        session.reap_orphans()
        ended = job.join(20)
    finally:
        job.stop()
        job.join(30)
    return ("clean", "stopped by the reaper") if ended else ("blow-up", "kept running")


@attack("5 load_sweep run names")
def sweep_names_a_run_outside(tmp):
    from ijr_core.sweep import load_sweep

    outside = real_run(tmp, "outside_run")
    sweep = tmp / "sweeps" / "sw"
    sweep.mkdir(parents=True)
    cfg = json.loads((outside / "run.json").read_text())["config"]
    (sweep / "sweep.json").write_text(json.dumps({
        "schema_version": 1, "config": cfg, "lrs": [0.5], "runs": ["../../outside_run"],
        "status": "finished", "meta": {}}))
    outcome = expect_refusal(lambda: load_sweep(sweep))
    return ("escape", "read a run outside the sweep") if outcome[0] == "accepted" else outcome


@attack("5 load_sweep run names")
def sweep_rejection_tells_if_a_path_exists(tmp):
    from ijr_core.sweep import load_sweep

    folder = real_run(tmp, "r")
    cfg = json.loads((folder / "run.json").read_text())["config"]
    (tmp / "exists").mkdir()
    messages = []
    for target in (tmp / "exists", tmp / "missing"):
        sweep = tmp / f"sw-{target.name}"
        sweep.mkdir()
        (sweep / "sweep.json").write_text(json.dumps({
            "schema_version": 1, "config": cfg, "lrs": [0.5], "runs": [str(target)],
            "status": "finished", "meta": {}}))
        try:
            load_sweep(sweep)
            messages.append("loaded")
        except _user_errors() as exc:
            messages.append(re.sub(r"'[^']*'|/\S*", "_", str(exc)))
    if messages[0] != messages[1]:
        return "escape", f"answers differ: {messages[0][:70]} / {messages[1][:70]}"
    return "clean", messages[0][:160]


@attack("6 damaged run breaks a page")
def sweep_json_lr_null(tmp):
    from app import runs_store

    folder = real_run(tmp / "sw", "r0")
    cfg = json.loads((folder / "run.json").read_text())["config"]
    (tmp / "sw" / "sweep.json").write_text(json.dumps({
        "schema_version": 1, "config": cfg, "lrs": [None], "runs": ["r0"],
        "status": "finished", "meta": []}))
    outcome = expect_refusal(lambda: runs_store.open_sweep(tmp / "sw"))
    return ("clean", "opened") if outcome[0] == "accepted" else outcome


# --------------------------------------------------------------------------- low


def _cli(argv) -> tuple[str, str]:
    from ijr_core import cli

    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = cli.main(argv)
    lines = [s for s in err.getvalue().splitlines() if s.strip()]
    if code == 2 and len(lines) == 1:
        return "clean", lines[0][:160]
    return "traceback", f"exit {code}: {err.getvalue()[-160:]}"


@attack("7 CLI")
def cli_show_sweep_with_bad_meta(tmp):
    folder = real_run(tmp / "sw", "r0")
    cfg = json.loads((folder / "run.json").read_text())["config"]
    (tmp / "sw" / "sweep.json").write_text(json.dumps({
        "schema_version": 1, "config": cfg, "lrs": [0.5], "runs": ["r0"],
        "status": "stopped", "meta": {"not_started": 5}}))
    return _cli(["show", str(tmp / "sw")])


@attack("7 CLI")
def cli_show_deep_json(tmp):
    folder = real_run(tmp)
    (folder / "run.json").write_text('{"schema_version": 1, "status": "finished", "meta": '
                                     + "[" * 200_000 + "]" * 200_000 + "}")
    return _cli(["show", str(folder)])


@attack("7 CLI", ceiling=False)
def report_to_an_unwritable_path(tmp):
    from app import report

    folder = real_run(tmp)
    blocker = tmp / "file"
    blocker.write_text("x")
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = report.main([str(folder), "--out", str(blocker / "r.html")])
    return ("clean", err.getvalue().strip()[:160]) if code == 2 else ("traceback", f"exit {code}")


@attack("7 CLI")
def lr_above_float32_max(tmp):
    from ijr_core.trainer import train

    def go():
        run = train(tiny_config(lr=1e39))
        if run.status == "failed":
            raise Observed("traceback", f"failed: {run.meta.get('error', '')[:120]}")
        return run

    outcome = expect_refusal(go)
    return ("clean", "diverged") if outcome[0] == "accepted" else outcome


@attack("7 CLI")
def weight_decay_1e300(tmp):
    from ijr_core.trainer import train

    def go():
        run = train(tiny_config(weight_decay=1e300))
        if run.status == "failed":
            raise Observed("traceback", f"failed: {run.meta.get('error', '')[:120]}")

    outcome = expect_refusal(go)
    return ("clean", "diverged") if outcome[0] == "accepted" else outcome


@attack("8 run names")
def run_name_of_300_characters(tmp):
    from app import session

    use_runs_dir(tmp)
    job = session.TrainingJob(tiny_config(name="n" * 300))
    job.run_sync()
    outcome = job_outcome(job)
    if outcome[0] != "accepted":
        return outcome
    return "clean", f"{job.status}, folder name of {len(job.out_dir.name)} characters"


@attack("8 run names")
def cli_name_dot_dot(tmp):
    work = tmp / "work" / "here"
    work.mkdir(parents=True)
    os.chdir(work)
    _cli(["train", "--dataset", "moons", "--n-train", "64", "--n-test", "16", "--probe-size",
          "64", "--width", "8", "--depth", "1", "--steps", "2", "--probe-every", "1",
          "--quiet", "--name", "../../x"])
    written = [p for p in tmp.rglob("run.json")]
    outside = [p for p in written if (work / "runs") not in p.parents]
    if outside:
        return "escape", f"wrote {outside[0].parent.relative_to(tmp)}"
    return "clean", f"wrote {written[0].parent.relative_to(tmp)}" if written else "nothing"


# --------------------------------------------------------------------------- running


def _vm_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def _child(name: str, conn) -> None:
    """Run one attack in this (forked) process under the memory ceiling; send the result."""
    import signal

    group, fn = ATTACKS[name]
    start = _vm_kib("VmSize") * 1024
    limit = start + BUDGET
    if name not in NO_CEILING:
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    signal.signal(signal.SIGALRM, lambda *_: (_ for _ in ()).throw(TimeoutError()))
    signal.alarm(int(TIME_LIMIT))
    tmp = Path(tempfile.mkdtemp(prefix=f"attack-{name}-"))
    try:
        outcome, detail = fn(tmp)
        if outcome == "accepted":
            outcome = "clean"
    except Observed as exc:
        outcome, detail = exc.outcome, exc.detail
    except MemoryError:
        grew = _vm_kib("VmPeak") * 1024 - start
        outcome = "blow-up" if grew > BLOWUP_GROWTH else "traceback"
        detail = f"MemoryError after growing {grew / 2**30:.1f} GiB"
    except TimeoutError:
        outcome, detail = "blow-up", f"still running after {TIME_LIMIT:.0f} s"
    except BaseException as exc:  # noqa: BLE001 - the point is to see what escapes
        # torch's allocator raises RuntimeError "can't allocate memory" at the ceiling
        outcome = "blow-up" if "allocate" in str(exc) else "traceback"
        detail = f"{type(exc).__name__}: {str(exc)[:140]}"
        tb = traceback.extract_tb(exc.__traceback__)
        if tb:
            detail += f" (at {Path(tb[-1].filename).name}:{tb[-1].lineno})"
    finally:
        signal.alarm(0)
        os.chdir("/")
    conn.send((outcome, detail))
    conn.close()
    shutil.rmtree(tmp, ignore_errors=True)
    os._exit(0)


def run_attack(name: str) -> dict:
    import multiprocessing as mp

    ctx = mp.get_context("fork")
    parent, child = ctx.Pipe(duplex=False)
    t = time.perf_counter()
    proc = ctx.Process(target=_child, args=(name, child))
    proc.start()
    child.close()
    result = None
    if parent.poll(TIME_LIMIT + 30):
        with contextlib.suppress(EOFError):
            result = parent.recv()
    proc.join(5)
    if proc.is_alive():
        proc.kill()
        proc.join()
    if result is None:
        result = ("blow-up", f"child ended with code {proc.exitcode} (killed or hung)")
    # leftovers of a killed child
    for p in Path(tempfile.gettempdir()).glob(f"attack-{name}-*"):
        shutil.rmtree(p, ignore_errors=True)
    return {"name": name, "group": ATTACKS[name][0], "outcome": result[0],
            "detail": result[1], "seconds": round(time.perf_counter() - t, 1)}


def run_corpus(names=None) -> list[dict]:
    """Every attack (or ``names``), each in its own forked child of this process."""
    import torch

    torch.set_num_threads(1)  # before any fork: no thread pool is inherited half-made
    import app.charts  # noqa: F401 - imported once here, shared by every child
    import app.jobs  # noqa: F401
    import app.maps  # noqa: F401
    import app.report  # noqa: F401
    import app.uploads  # noqa: F401
    import ijr_core.cli  # noqa: F401
    import ijr_core.trainer  # noqa: F401

    return [run_attack(n) for n in (names or ATTACKS)]


def table(results: list[dict]) -> str:
    groups: dict[str, dict[str, int]] = {}
    for r in results:
        row = groups.setdefault(r["group"], dict.fromkeys(CATEGORIES, 0))
        row[r["outcome"]] += 1
    lines = [f"| {'issue item':34s} | " + " | ".join(CATEGORIES) + " |",
             "|" + "-" * 36 + "|" + "|".join("-" * (len(c) + 2) for c in CATEGORIES) + "|"]
    total = dict.fromkeys(CATEGORIES, 0)
    for g in sorted(groups):
        lines.append(f"| {g:34s} | " + " | ".join(f"{groups[g][c]:{len(c)}d}"
                                                   for c in CATEGORIES) + " |")
        for c in CATEGORIES:
            total[c] += groups[g][c]
    lines.append(f"| {'all ' + str(len(results)) + ' attempts':34s} | "
                 + " | ".join(f"{total[c]:{len(c)}d}" for c in CATEGORIES) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    names = [a for a in sys.argv[1:] if not a.startswith("--")] or None
    results = run_corpus(names)
    if "--json" in sys.argv:
        for r in results:
            print(json.dumps(r))
    else:
        for r in results:
            print(f"{r['outcome']:9s} {r['seconds']:5.1f}s {r['name']}: {r['detail']}")
        print()
        print(table(results))
