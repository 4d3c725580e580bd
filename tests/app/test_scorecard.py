"""The claims table of the pages and the report (app.scorecard): pure, one row per claim."""

from __future__ import annotations

from app import scorecard
from ijr_core.claims import CHECK, CLAIM, Claim


def test_claims_frame_keeps_order_and_marks_verdicts():
    card = [
        Claim(CHECK, "identity", "gap 1e-6", "passed", "tolerance"),
        Claim(CLAIM, "edge", "median 1.1", "held", "band"),
        Claim(CLAIM, "U", "0.5 → 0.5", "not held", "plateau"),
        Claim(CLAIM, "IJR", "—", "not measurable", "needs a sweep"),
    ]
    frame = scorecard.claims_frame(card)
    assert list(frame.columns) == ["kind", "claim", "measured", "verdict", "threshold / reason"]
    assert list(frame["claim"]) == ["identity", "edge", "U", "IJR"]
    assert list(frame["verdict"]) == ["✓ passed", "✓ held", "✗ not held", "– not measurable"]
    assert frame.iloc[3]["threshold / reason"] == "needs a sweep"
    assert scorecard.claims_frame([]).empty
