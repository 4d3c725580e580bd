"""The claims scorecard as a table (pure: claims in, DataFrame out), shared by the pages
and the HTML report. The measurements and verdicts are :mod:`ijr_core.claims`'."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from ijr_core.claims import COLUMNS, Claim, claims_rows

VERDICT_MARKS = {
    "passed": "✓ passed",
    "held": "✓ held",
    "failed": "✗ failed",
    "not held": "✗ not held",
    "not measurable": "– not measurable",
}
HEADERS = {"kind": "kind", "claim": "claim", "value": "measured", "verdict": "verdict",
           "detail": "threshold / reason"}
CAPTION = (
    "Numerical checks hold by construction (λ* is defined from G's top eigenvector, and "
    "λ* ≤ ‖M‖ is a bound): a failure means the solver is wrong, a pass says nothing about the "
    "paper. The claims below them can fail on a run; each has its number, a verdict and the "
    "threshold (docs/science.md)."
)


def claims_frame(claims: Sequence[Claim]) -> pd.DataFrame:
    """One row per check / claim: kind, claim, measured value, verdict (marked ✓ / ✗ / –),
    threshold or reason."""
    frame = pd.DataFrame(claims_rows(claims), columns=list(COLUMNS))
    frame["verdict"] = [VERDICT_MARKS.get(v, v) for v in frame["verdict"]]
    return frame.rename(columns=HEADERS)
