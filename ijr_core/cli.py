"""Command line: headless runs, sweeps, summaries and exports.

    python -m ijr_core train --preset edge-of-stability --lr 0.1 --steps 400 --out runs/eos
    python -m ijr_core train --config my.json --out runs/mine
    python -m ijr_core sweep --preset lr-sweep --lrs 0.1,0.2,0.5 --out runs/sweep
    python -m ijr_core grid --preset lr-sweep --set lr=0.1,0.25,0.5,1 --set seed=0:2:3 \
        --out runs/grid [--ray | --ray auto | --ray HOST:PORT]
    python -m ijr_core show runs/eos
    python -m ijr_core export runs/eos --csv [FILE]      (or --json [FILE]; default stdout)
    python -m ijr_core presets

Every RunConfig field is an option (``--batch-size 64`` or ``--batch_size 64``). Bad input
(unknown preset or field, invalid value, unreadable file, damaged run folder) exits with
code 2 and one line on stderr. A run that fails inside training exits with 1; finished,
stopped and diverged runs exit with 0 (the status is printed).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import math
import sys
import threading
import time
from datetime import datetime
from pathlib import Path

import numpy as np

from ijr_core.exports import runs_json, scalars_csv

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    """Bad input from the user: reported as one line, exit code 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line instead of usage + message
        raise UsageError(f"{message} (see: {self.prog} --help)")


# --------------------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    from ijr_core.config import RunConfig

    parser = _Parser(prog="python -m ijr_core", description=__doc__.split("\n")[0],
                     allow_abbrev=False)
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads shared by the runs (default: all cores; each "
                             "run measures 1 vs its share and keeps the faster)")
    sub = parser.add_subparsers(dest="command", parser_class=_Parser)

    def add(name, **kw):
        p = sub.add_parser(name, allow_abbrev=False, **kw)
        p.add_argument("--threads", type=int, default=argparse.SUPPRESS,
                       help="torch CPU threads (default: all cores)")
        return p

    train = add("train", help="train one run and save it")
    _config_options(train, RunConfig)
    train.add_argument("--out", help="run folder (default: runs/<name>-<time>)")
    train.add_argument("--quiet", action="store_true", help="no progress bar")
    train.add_argument("--force", action="store_true", help="overwrite a non-empty --out")

    sweep = add("sweep", help="learning-rate sweep")
    _config_options(sweep, RunConfig)
    sweep.add_argument("--lrs", required=True, help="comma-separated learning rates")
    sweep.add_argument("--workers", "--processes", dest="workers", type=int, default=None,
                       help="runs trained at once (default: one per CPU core; 1 = one after "
                            "the other)")
    sweep.add_argument("--out", help="sweep folder (default: runs/sweep-<time>)")
    sweep.add_argument("--quiet", action="store_true", help="no progress output")
    sweep.add_argument("--force", action="store_true", help="overwrite a non-empty --out")

    grid = add("grid", help="grid of runs over any config fields (threads, or Ray)")
    _config_options(grid, RunConfig)
    _grid_options(grid)

    show = add("show", help="summary of a run, sweep or grid folder")
    show.add_argument("dir")

    export = add("export", help="export a run's (or sweep's) scalars")
    export.add_argument("dir")
    fmt = export.add_mutually_exclusive_group(required=True)
    fmt.add_argument("--csv", nargs="?", const="-", metavar="FILE", help="CSV (default stdout)")
    fmt.add_argument("--json", nargs="?", const="-", metavar="FILE", help="JSON (default stdout)")

    add("presets", help="list the presets")
    return parser


def _config_options(parser: argparse.ArgumentParser, config_cls) -> None:
    parser.add_argument("--preset", help="start from a preset (see: presets)")
    parser.add_argument("--config", help="JSON file with RunConfig fields")
    group = parser.add_argument_group("config fields (override preset / file)")
    for f in dataclasses.fields(config_cls):
        names = [f"--{f.name}"]
        if "_" in f.name:
            names.append(f"--{f.name.replace('_', '-')}")
        group.add_argument(*names, dest=f"field_{f.name}", default=argparse.SUPPRESS,
                           metavar="VALUE", help=f.metadata.get("help"))


def _grid_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--set", dest="axes", action="append", required=True,
                        metavar="FIELD=VALUES",
                        help="an axis: a field and its values, e.g. lr=0.1,0.5 or lr=0.1:1:4 "
                             "(log-spaced) or seed=0:2:3; repeat for more axes")
    parser.add_argument("--ray", nargs="?", const="local", default=None,
                        metavar="auto|ADDRESS",
                        help="train on Ray: alone, a local Ray started now; 'auto', the "
                             "cluster this machine belongs to; or a cluster's HOST:PORT")
    parser.add_argument("--workers", type=int, default=None,
                        help="without --ray: runs trained at once (default: one per core)")
    parser.add_argument("--cpus-per-run", type=float, default=1.0,
                        help="with --ray: CPUs each run declares (and its torch threads)")
    parser.add_argument("--gpus-per-run", type=float, default=None,
                        help="with --ray: fraction of a GPU per run when the cluster has "
                             "GPUs (default 0.25)")
    parser.add_argument("--out", help="grid folder (default: runs/grid-<time>); a folder "
                                      "holding this grid already resumes it")
    parser.add_argument("--quiet", action="store_true", help="no progress output")


def config_from_args(args: argparse.Namespace):
    """RunConfig from --preset, then --config FILE, then --field overrides."""
    from ijr_core.config import PRESETS, RunConfig

    base = RunConfig()
    if args.preset is not None:
        if args.preset not in PRESETS:
            raise UsageError(f"unknown preset {args.preset!r}; known presets: {', '.join(PRESETS)}")
        base = PRESETS[args.preset]
    if args.config is not None:
        path = Path(args.config)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"cannot read config file {path}: {exc.strerror or exc}") from None
        except UnicodeDecodeError:
            raise UsageError(f"config file {path} is not UTF-8 text (expected JSON)") from None
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise UsageError(f"config file {path} is not valid JSON: {exc}") from None
        if not isinstance(data, dict):
            raise UsageError(f"config file {path} must hold a JSON object of RunConfig fields")
        base = RunConfig.from_dict(data, base=base)
    overrides = {k[len("field_"):]: v for k, v in vars(args).items() if k.startswith("field_")}
    return RunConfig.from_dict(overrides, base=base) if overrides else base


# --------------------------------------------------------------------------- progress


class Progress:
    """A one-line progress bar with steps/s on stderr, refreshed from a polling thread.
    When stderr is not a terminal (a log file, a pipe) it writes one line every
    ``log_every`` seconds instead, and a last one on :meth:`close`."""

    def __init__(self, total: int, label: str = "", stream=None, interval: float = 0.5,
                 log_every: float = 30.0) -> None:
        self.total, self.label = max(total, 1), label
        self.stream = stream if stream is not None else sys.stderr
        self.interval, self.log_every = interval, log_every
        self.value = 0
        self._t0 = self._logged = time.perf_counter()
        self._stop = threading.Event()
        self._write_lock = threading.Lock()  # the poller and print() write from two threads
        self._thread: threading.Thread | None = None
        self._tty = bool(getattr(self.stream, "isatty", lambda: False)())

    def line(self) -> str:
        elapsed = time.perf_counter() - self._t0
        rate = self.value / elapsed if elapsed > 0 else 0.0
        frac = min(self.value / self.total, 1.0)
        bar = "#" * int(frac * 24) + "." * (24 - int(frac * 24))
        eta = (self.total - self.value) / rate if rate > 0 else math.inf
        eta_s = f"{eta:5.0f}s" if math.isfinite(eta) else "    ?"
        return (f"{self.label}[{bar}] {self.value}/{self.total} {100 * frac:3.0f}% "
                f"{rate:7.1f} steps/s  elapsed {elapsed:5.1f}s  eta {eta_s}")

    def start(self, poll) -> Progress:
        def loop():
            while not self._stop.wait(self.interval):
                self.value = poll()
                self._draw()

        self._thread = threading.Thread(target=loop, daemon=True)
        self._thread.start()
        return self

    def print(self, text: str) -> None:
        """Write a line of its own above the bar (the bar is redrawn on the next refresh)."""
        with self._write_lock:
            self.stream.write(("\r\033[K" if self._tty else "") + text + "\n")
            self.stream.flush()

    def _draw(self, final: bool = False) -> None:
        with self._write_lock:
            if self._tty:
                self.stream.write("\r" + self.line() + ("\n" if final else ""))
            elif final or time.perf_counter() - self._logged >= self.log_every:
                self._logged = time.perf_counter()
                self.stream.write(self.line() + "\n")
            self.stream.flush()

    def close(self, value: int | None = None, clear: bool = False) -> None:
        """Stop refreshing; draw the final bar at ``value``, or with ``clear`` (on an error)
        wipe the bar so that the error message stands alone."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if value is not None:
            self.value = value
        if not clear:
            self._draw(final=True)
        elif self._tty:
            with self._write_lock:
                self.stream.write("\r\033[K")
                self.stream.flush()


@contextlib.contextmanager
def _progress(quiet: bool, total: int, label: str, poll):
    """A started :class:`Progress` (None when ``quiet``), closed at ``poll()`` on leaving,
    wiped on an exception."""
    progress = None if quiet else Progress(total, label).start(poll)
    try:
        yield progress
    except BaseException:
        if progress is not None:
            progress.close(clear=True)
        raise
    if progress is not None:
        progress.close(poll())


# --------------------------------------------------------------------------- commands


def _default_out(name: str) -> Path:
    """runs/<name>-<time>, the name reduced to one short, safe path component (a run named
    "../../x" stays inside runs/)."""
    from ijr_core.names import safe_name

    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{safe_name(name)}-{stamp}"


def _out_dir(args, name: str, kind: str) -> Path:
    """--out (refusing a non-empty folder unless --force, and a folder holding the other
    ``kind`` of result, "run" or "sweep", even then) or runs/<name>-<time>."""
    out = Path(args.out) if args.out else _default_out(name)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} is a file, not a folder")
    if out.is_dir() and any(out.iterdir()) and not args.force:
        raise UsageError(f"--out {out} is not empty; pass --force to overwrite it")
    other = {"run": "sweep", "sweep": "run"}[kind]
    if (out / f"{other}.json").exists():
        raise UsageError(f"--out {out} holds a {other}; --force overwrites only a {kind} "
                         "folder, choose another one")
    try:  # fail now, not after loading the data and building the model
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot create --out {out}: {exc.strerror or exc}") from None
    return out


def cmd_train(args) -> int:
    from ijr_core.trainer import TrainingControl, train

    config = config_from_args(args)
    out = _out_dir(args, config.name or "run", "run")
    control = TrainingControl()
    try:
        with _progress(args.quiet, config.steps, "train ", lambda: control.step):
            run = train(config, out_dir=out, control=control)
    except KeyboardInterrupt:
        print(f"interrupted; what was recorded is saved in {out}", file=sys.stderr)
        return 130
    print(f"{run.status}: step {run.step}/{config.steps}, saved to {out}")
    if run.status == "diverged":
        print(f"diverged at step {run.meta.get('diverged_at')}: {run.meta.get('diverged_reason')}")
    if run.status == "failed":
        print(f"error: training failed: {run.meta.get('error')}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


def parse_lrs(text: str) -> list[float]:
    """'0.1,0.2, 0.5' -> [0.1, 0.2, 0.5], or a log-spaced range '0.1:1:4' (the grammar of
    :mod:`ijr_core.values`, shared with the app); UsageError naming the bad entry."""
    from ijr_core.values import parse_lrs as parse

    try:
        return parse(text, "--lrs")
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def cmd_sweep(args) -> int:
    from ijr_core.sweep import run_folder_name, sweep_lr

    config = config_from_args(args)
    lrs = parse_lrs(args.lrs)
    if args.workers is not None and args.workers < 1:
        raise UsageError(f"--workers must be >= 1, got {args.workers}")
    out = _out_dir(args, "sweep", "sweep")
    t0 = time.perf_counter()
    folders = [out / run_folder_name(i, lr) for i, lr in enumerate(lrs)]

    def saved_steps() -> int:  # from the run folders the runs autosave
        return sum(min(_saved_step(f), config.steps) for f in folders)

    try:
        with _progress(args.quiet, config.steps * len(lrs), "sweep ", saved_steps) as progress:

            def done(i, lr, run):
                if progress is not None:
                    progress.print(f"  η={lr:g}: {run.status} at step {run.step} "
                                   f"({time.perf_counter() - t0:.1f}s)")

            sweep = sweep_lr(config, lrs, out_dir=out, workers=args.workers, callback=done)
    except KeyboardInterrupt:
        print(f"interrupted; the runs recorded so far are saved in {out}", file=sys.stderr)
        return 130
    print(f"sweep of {len(lrs)} learning rates saved to {out} "
          f"({time.perf_counter() - t0:.1f}s)")
    print(format_sweep(sweep))
    return EXIT_FAILED if "failed" in sweep.statuses else EXIT_OK


class GridBar(Progress):
    """The progress line of a grid: runs done / total, running, failed, ETA."""

    def __init__(self, tracker, **kw) -> None:
        super().__init__(tracker.total, "grid ", **kw)
        self.tracker = tracker

    def line(self) -> str:
        return self.label + self.tracker.line()


def _grid_out(args) -> Path:
    """--out (a grid folder resumes; a run or sweep folder, a file, or a non-empty folder
    of something else is refused) or runs/grid-<time>."""
    out = Path(args.out) if args.out else _default_out("grid")
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} is a file, not a folder")
    for other in ("run", "sweep", "group"):
        if (out / f"{other}.json").exists():
            raise UsageError(f"--out {out} holds a {other}; choose another folder")
    if out.is_dir() and any(out.iterdir()) and not (out / "grid.json").exists():
        raise UsageError(f"--out {out} is not empty and holds no grid; choose another folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot create --out {out}: {exc.strerror or exc}") from None
    return out


def _executor(args):
    from ijr_core.executors import RayExecutor, ThreadExecutor

    if args.ray is None:
        if args.workers is not None and args.workers < 1:
            raise UsageError(f"--workers must be >= 1, got {args.workers}")
        return ThreadExecutor(args.workers)
    try:
        return RayExecutor(None if args.ray == "local" else args.ray,
                           cpus_per_run=args.cpus_per_run, gpus_per_run=args.gpus_per_run)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def cmd_grid(args) -> int:
    from ijr_core.grid import expand, parse_axes, run_grid

    config = config_from_args(args)
    axes = parse_axes(args.axes)
    expand(config, axes)  # every run validated before any folder or worker is touched
    executor = _executor(args)
    if args.ray is not None:
        try:
            import ray  # noqa: F401
        except ImportError:
            raise UsageError("--ray needs Ray: pip install -r requirements.txt") from None
    out = _grid_out(args)
    t0 = time.perf_counter()
    bars: list[GridBar] = []

    def start_bar(tracker) -> None:
        if not args.quiet:
            bars.append(GridBar(tracker).start(lambda: tracker.snapshot()["done"]))

    def done(i, values, run) -> None:
        if bars:
            what = ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}"
                             for k, v in values.items())
            bars[0].print(f"  {what}: {run.status} at step {run.step} "
                          f"({time.perf_counter() - t0:.1f}s)")

    try:
        grid = run_grid(config, axes, out_dir=out, executor=executor, callback=done,
                        progress=start_bar)
    except KeyboardInterrupt:
        if bars:
            bars[0].close(clear=True)
        print(f"interrupted; the finished runs are saved in {out}; the same command "
              "resumes the grid", file=sys.stderr)
        return 130
    except BaseException:
        if bars:
            bars[0].close(clear=True)
        raise
    if bars:
        bars[0].close(bars[0].tracker.snapshot()["done"])
    print(f"grid of {len(grid.runs)} runs ({grid.meta.get('resumed', 0)} resumed) "
          f"saved to {out} ({time.perf_counter() - t0:.1f}s): {grid.status}")
    print(format_grid(grid))
    return EXIT_FAILED if grid.status == "failed" else EXIT_OK


def format_grid(grid) -> str:
    """One line per run: axis values, status, step, final loss, max ‖H‖, final ⟨‖J‖²⟩."""
    names = list(grid.axes)
    head = " ".join(f"{n:>10s}" for n in names)
    lines = [f"{head} {'status':>9s} {'step':>6s} {'loss':>9s} {'max ‖H‖':>9s} "
             f"{'⟨‖J‖²⟩':>9s}"]
    for values, run in zip(grid.values, grid.runs, strict=True):
        cells = " ".join(f"{_fmt(values[n]) if isinstance(values[n], float) else values[n]!s:>10}"
                         for n in names)
        if run is None:
            lines.append(f"{cells} {'not run':>9s}")
            continue
        h = run.scalar("sharpness")
        max_h = float(np.nanmax(h)) if np.isfinite(h).any() else math.nan
        lines.append(f"{cells} {run.status:>9s} {run.step:6d} "
                     f"{_fmt(run.last('train_loss')):>9s} {_fmt(max_h):>9s} "
                     f"{_fmt(run.last('jac_spectral_sq_mean')):>9s}")
    errors = grid.meta.get("errors") or {}
    for i, err in list(errors.items())[:5]:
        lines.append(f"run {i} failed: {err}")
    return "\n".join(lines)


def _saved_step(run_dir: Path) -> int:
    """The step in ``run_dir/run.json`` (0 while there is none or it cannot be read)."""
    try:
        return int(json.loads((run_dir / "run.json").read_text(encoding="utf-8"))["step"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0


def cmd_show(args) -> int:
    from ijr_core import claims
    from ijr_core.grid import is_grid_folder, load_grid
    from ijr_core.group import is_group_folder, load_group
    from ijr_core.run import load_run
    from ijr_core.sweep import is_sweep_folder, load_sweep

    if is_grid_folder(args.dir):
        print(format_grid(load_grid(args.dir)))
        return EXIT_OK
    if is_group_folder(args.dir):
        group = load_group(args.dir)
        print(format_group(group["title"], group["runs"]))
        card = claims.group_claims(group["runs"])
    elif is_sweep_folder(args.dir):
        sweep = load_sweep(args.dir)
        print(format_sweep(sweep))
        card = claims.sweep_claims(sweep.lrs, sweep.runs)
    else:
        run = load_run(args.dir)
        print(format_run(run))
        card = claims.run_claims(run)
    print("\n" + claims.format_claims(card))
    return EXIT_OK


def cmd_export(args) -> int:
    from ijr_core.run import load_run
    from ijr_core.sweep import is_sweep_folder, load_sweep

    is_sweep = is_sweep_folder(args.dir)
    if is_sweep:
        sweep = load_sweep(args.dir)
        pairs = [(float(lr), run) for lr, run in zip(sweep.lrs, sweep.runs, strict=True)]
    else:
        pairs = [(None, load_run(args.dir))]
    if args.csv is not None:
        text, target = scalars_csv(pairs, is_sweep), args.csv
    else:
        text, target = runs_json(pairs, is_sweep), args.json
    if target == "-":
        sys.stdout.write(text)
    else:
        try:
            Path(target).write_text(text, encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"cannot write {target}: {exc.strerror or exc}") from None
        print(f"wrote {target}")
    return EXIT_OK


def cmd_presets(args) -> int:
    from ijr_core.config import PRESETS

    for name, cfg in PRESETS.items():
        bs = "full batch" if cfg.batch_size is None else f"batch {cfg.batch_size}"
        print(f"{name:20s} {cfg.dataset}, {cfg.model} {cfg.activation}, {cfg.optimizer} "
              f"η={cfg.lr:g} ({bs}), {cfg.steps} steps, loss {cfg.loss}")
    return EXIT_OK


# --------------------------------------------------------------------------- formatting

SUMMARY_METRICS = ("train_loss", "train_acc", "test_acc", "sharpness", "gn_sharpness",
                   "lambda_star_jac", "two_over_eta", "m_norm_mean", "jac_spectral_sq_mean",
                   "jac_frobenius_sq_mean", "grad_evals", "wall_time")


def _fmt(x: float) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "—" if x is None or math.isnan(x) else str(x)
    return f"{x:.4g}"


def format_run(run) -> str:
    """Summary table of one run: status, config, phases and their events, first / peak /
    final metrics."""
    from ijr_core.phases import phase_events

    cfg = run.config
    status = f"status     {run.status} at step {run.step}"
    if run.status == "diverged" and run.meta.get("diverged_reason"):
        status += f": {run.meta['diverged_reason']}"
    lines = [status]
    if run.meta.get("error"):
        lines.append(f"error      {run.meta['error']}")
    if run.meta.get("source") == "writer":  # its config holds defaults, except loss
        lr = run.last("lr")
        eta = f"η={lr:g}" if math.isfinite(lr) else "η not given"
        lines.append(f"config     your own training loop (RunWriter), model "
                     f"{run.meta.get('model', '?')}, {eta}, loss {cfg.loss}")
    elif cfg is not None:
        bs = "full batch" if cfg.batch_size is None else f"batch {cfg.batch_size}"
        lines.append(f"config     {cfg.dataset} n={cfg.n_train}, {cfg.model} "
                     f"{cfg.width}×{cfg.depth} {cfg.activation}, {cfg.optimizer} "
                     f"η={cfg.lr:g} ({bs}), loss {cfg.loss}")
    lines.append(f"source     {run.meta.get('source', '?')}, device {run.meta.get('device', '?')}, "
                 f"{len(run.probe_steps)} probes, {len(run.sample_steps)} checkpoints × "
                 f"{len(run.sample_ids)} samples")
    if run.meta.get("probe_mode") or (cfg is not None and run.meta.get("source") != "writer"):
        lines.append(f"probe mode {run.meta.get('probe_mode') or cfg.probe_mode}")
    logged = run.logged_scalars
    if logged:
        lines.append("logged     " + ", ".join(logged) + " (your loop's own scalars)")
    spans = run.phase_spans()
    if spans:
        lines.append("phases     " + ", ".join(f"{p} {a}–{b}" for p, a, b in spans))
    events = phase_events(run.phase_analysis(), run.scalars["step"])
    if events:
        lines.append("events     " + "; ".join(f"{name} at step {step}" + (
            f" ({detail})" if name == "catapult" else "") for name, step, detail in events))
    lines.append("")
    lines.append(f"{'metric':24s} {'first':>10s} {'max':>10s} {'final':>10s}")
    for name in (*SUMMARY_METRICS, *logged):
        values = run.scalar(name)
        finite = values[np.isfinite(values)]
        if not len(finite):
            continue
        lines.append(f"{name:24s} {_fmt(finite[0]):>10s} {_fmt(finite.max()):>10s} "
                     f"{_fmt(finite[-1]):>10s}")
    return "\n".join(lines)


def format_group(title: str, runs) -> str:
    """One line per run of an optimizer comparison: optimizer, status, gradient evaluations,
    final training loss and test accuracy."""
    lines = [title, f"{'run':16s} {'optimizer':>16s} {'status':>9s} {'grad evals':>10s} "
             f"{'loss':>9s} {'test acc':>9s}"]
    for name, run in runs.items():
        opt = run.config.optimizer if run.config is not None else "?"
        lines.append(f"{name[:16]:16s} {opt:>16s} {run.status:>9s} "
                     f"{_fmt(run.last('grad_evals')):>10s} {_fmt(run.last('train_loss')):>9s} "
                     f"{_fmt(run.last('test_acc')):>9s}")
    return "\n".join(lines)


def format_sweep(sweep) -> str:
    """One line per learning rate: status, final loss, max ‖H‖ vs 2/η, final ⟨‖J‖²⟩; a
    last line for a sweep that was stopped or is still running."""
    lines = [f"{'lr':>8s} {'2/lr':>8s} {'status':>9s} {'step':>6s} {'loss':>9s} "
             f"{'max ‖H‖':>9s} {'⟨‖M‖⟩ pk':>9s} {'⟨‖J‖²⟩':>9s}"]
    max_h, jac = sweep.max_sharpness(), sweep.final_jac()
    for i, (lr, run) in enumerate(zip(sweep.lrs, sweep.runs, strict=True)):
        m = run.scalar("m_norm_mean")
        peak = float(np.nanmax(m)) if np.isfinite(m).any() else math.nan
        lines.append(f"{lr:8.4g} {2 / lr:8.4g} {run.status:>9s} {run.step:6d} "
                     f"{_fmt(run.last('train_loss')):>9s} {_fmt(max_h[i]):>9s} "
                     f"{_fmt(peak):>9s} {_fmt(jac[i]):>9s}")
    status = sweep.meta.get("status") or "finished"
    if status != "finished":
        not_done = sweep.meta.get("not_started") or sweep.meta.get("missing_runs") or []
        lines.append(f"sweep {status}" + (f"; not run: {', '.join(map(str, not_done))}"
                                          if not_done else ""))
    return "\n".join(lines)


# --------------------------------------------------------------------------- entry


COMMANDS = {"train": cmd_train, "sweep": cmd_sweep, "show": cmd_show, "export": cmd_export,
            "presets": cmd_presets, "grid": cmd_grid}


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit code (see module docstring)."""
    from ijr_core.config import ConfigError
    from ijr_core.run import RunFormatError

    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        if args.command is None:
            raise UsageError("give a command: train, sweep, grid, show, export or presets "
                             "(see: python -m ijr_core --help)")
        _set_threads(args.threads)
        return COMMANDS[args.command](args)
    except UsageError as exc:
        return _usage(str(exc))
    except (ConfigError, RunFormatError) as exc:
        return _usage(str(exc))
    except ValueError as exc:  # DatasetError and other input problems
        return _usage(str(exc))
    except BrokenPipeError:
        return EXIT_OK
    except OSError as exc:  # a folder that cannot be created, a file that cannot be read...
        where = f"{exc.filename}: " if exc.filename else ""
        return _usage(f"{where}{exc.strerror or exc}")
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (TypeError, KeyError, IndexError, AttributeError, RecursionError,
            MemoryError) as exc:  # a damaged input no check foresaw: one line, no traceback
        return _usage(f"cannot process this input ({type(exc).__name__}: {str(exc)[:200]})")


def _usage(message: str) -> int:
    print(f"error: {' '.join(message.split())}", file=sys.stderr)
    return EXIT_USAGE


def _set_threads(threads: int | None) -> None:
    import torch

    from ijr_core.config import usable_cores
    from ijr_core.threads import set_budget

    cores = usable_cores()
    most = max(64, 4 * cores)  # far more threads than cores only slows torch down (or crashes it)
    if threads is not None and not 1 <= threads <= most:
        raise UsageError(f"--threads must be in 1..{most} ({cores} usable cores), got {threads}")
    torch.set_num_threads(int(threads if threads is not None else cores))
    if threads is not None:  # else all usable cores; runs pick 1 or their share of the budget
        set_budget(threads)
