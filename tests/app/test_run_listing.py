"""One run listing (app/runs_store.run_options) behind Inspect's picker and Compare's runs:
the same runs, in the same order, with each page's own labels."""

from __future__ import annotations

import pytest
from app_constants import APP
from streamlit.testing.v1 import AppTest

from app import runs_store
from app.synthetic import synthetic_run


@pytest.fixture
def saved(runs_dir):
    run = synthetic_run(n_samples=12, n_checkpoints=6)
    single = run.save(runs_dir / "20260101-a")
    group = runs_dir / "20260102-cmp"
    run.save(group / "gd")
    run.save(group / "sam")
    runs_store.write_group(group, ["gd", "sam"], "optimizer comparison", run.config.to_dict())
    return single, group


def test_run_options_lists_current_saved_members_then_demos(runs_dir, saved):
    single, group = saved
    options = runs_store.run_options(runs_dir, current=True)
    demos = runs_store.demo_runs()
    assert [o.key for o in options] == [
        runs_store.CURRENT, str(group / "gd"), str(group / "sam"), str(single),
        *map(str, demos)]
    assert [o.source for o in options] == ["current", "saved", "saved", "saved",
                                           *["demo"] * len(demos)]
    assert [o.name for o in options[1:4]] == ["20260102-cmp/gd", "20260102-cmp/sam",
                                              "20260101-a"]
    assert options[1].label.startswith("saved · 20260102-cmp/gd · ") and "η=" in options[1].label
    assert options[1].short == "saved · 20260102-cmp/gd"
    assert options[0].short == options[0].label == runs_store.CURRENT_LABEL
    plain = runs_store.run_options(runs_dir, demos=False, describe=False)
    assert [o.key for o in plain] == [o.key for o in options[1:4]]
    assert all(o.label == o.short for o in plain)


def test_a_damaged_member_is_listed_as_damaged(runs_dir, saved):
    _, group = saved
    (group / "sam" / "run.json").write_text("{not json")
    labels = [o.label for o in runs_store.run_options(runs_dir, demos=False)]
    assert any(x.startswith("saved · 20260102-cmp/sam · damaged: ") for x in labels), labels


def test_inspect_and_compare_offer_the_same_runs(runs_dir, saved):
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    at.switch_page("app_pages/inspect.py").run()
    assert not at.exception, [e.value for e in at.exception]
    inspect = list(at.selectbox(key="inspect_run").options)
    at.switch_page("app_pages/compare.py").run()
    assert not at.exception, [e.value for e in at.exception]
    compare = list(at.multiselect(key="cmp_runs").options)
    expected = runs_store.run_options(runs_dir)
    assert inspect == [o.label for o in expected]
    assert compare == [o.short for o in expected]
    assert "saved · 20260102-cmp/gd" in compare  # members of a comparison, on both pages
    assert any(x.startswith("saved · 20260102-cmp/gd · ") for x in inspect)
