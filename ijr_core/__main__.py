"""``python -m ijr_core``: the command line (see :mod:`ijr_core.cli`)."""

from ijr_core.cli import main

raise SystemExit(main())
