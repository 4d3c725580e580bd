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

Layout: the options and the usage error in :mod:`ijr_core.cli_args`, the commands in
:mod:`ijr_core.cli_commands`, progress output in :mod:`ijr_core.cli_progress`, the text
summaries in :mod:`ijr_core.cli_summaries`; this module is the entry point (``main``) and
keeps the names that tests and callers import from here.
"""

from __future__ import annotations

import sys

from ijr_core.cli_args import EXIT_OK, EXIT_USAGE, UsageError, build_parser, parse_lrs
from ijr_core.cli_commands import COMMANDS
from ijr_core.cli_progress import Progress
from ijr_core.cli_progress import progress_bar as _progress  # noqa: F401 - the old name
from ijr_core.cli_summaries import format_run

__all__ = [
    "COMMANDS", "EXIT_OK", "EXIT_USAGE", "Progress", "UsageError", "build_parser", "format_run",
    "main", "parse_lrs",
]


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
