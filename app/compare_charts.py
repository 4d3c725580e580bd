"""Former home of the comparison charts and tables, kept so ``from app import compare_charts``
works: the charts are in :mod:`app.charts.compare`, the tables in :mod:`app.tables`, and
:mod:`app.charts` re-exports both."""

from app.charts import *  # noqa: F403 - the re-export is this module's purpose
from app.charts import __all__  # noqa: F401
