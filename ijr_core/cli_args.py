"""Command-line input: the argument parser (every RunConfig field an option), the
RunConfig built from the options, learning-rate lists, and the usage error (exit code 2).
The commands are in :mod:`ijr_core.cli_commands`, the entry point in :mod:`ijr_core.cli`."""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    """Bad input from the user: reported as one line, exit code 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line instead of usage + message
        raise UsageError(f"{message} (see: {self.prog} --help)")


# --------------------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    from ijr_core import cli  # its docstring is the command line's usage text
    from ijr_core.config import RunConfig

    parser = _Parser(prog="python -m ijr_core", description=cli.__doc__.split("\n")[0],
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


def parse_lrs(text: str) -> list[float]:
    """'0.1,0.2, 0.5' -> [0.1, 0.2, 0.5], or a log-spaced range '0.1:1:4' (the grammar of
    :mod:`ijr_core.values`, shared with the app); UsageError naming the bad entry."""
    from ijr_core.values import parse_lrs as parse

    try:
        return parse(text, "--lrs")
    except ValueError as exc:
        raise UsageError(str(exc)) from None
