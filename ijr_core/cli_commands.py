"""The commands of the command line: train, sweep, grid, show, export and presets, each
``cmd_<name>(args) -> exit code``, and the output folders they write."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from ijr_core.cli_args import EXIT_FAILED, EXIT_OK, UsageError, config_from_args, parse_lrs
from ijr_core.cli_progress import GridBar, progress_bar
from ijr_core.cli_summaries import format_grid, format_group, format_run, format_sweep
from ijr_core.exports import runs_json, scalars_csv
from ijr_core.names import stamped_name


def _default_out(name: str) -> Path:
    """runs/<UTC time>-<name>-<random>: the app's folder names too (:func:`stamped_name`), so
    runs from both sort together, and two started in the same second never share a folder;
    the name is one short, safe path component (a run named "../../x" stays inside runs/)."""
    return Path("runs") / stamped_name(name)


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
        with progress_bar(args.quiet, config.steps, "train ", lambda: control.step):
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
        with progress_bar(args.quiet, config.steps * len(lrs), "sweep ", saved_steps) as progress:

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


COMMANDS = {"train": cmd_train, "sweep": cmd_sweep, "show": cmd_show, "export": cmd_export,
            "presets": cmd_presets, "grid": cmd_grid}
