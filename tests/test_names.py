"""Folder names (ijr_core.names): one safe path component, unique within its folder."""

from __future__ import annotations

import re
from datetime import datetime, timezone
from pathlib import Path

import pytest

from ijr_core.names import grid_member_name, safe_name, stamped_name, sweep_member_name

SAFE = re.compile(r"[A-Za-z0-9_=+][A-Za-z0-9_.=+-]*")
HOSTILE = ["../../etc/passwd", "..", ".", "", "/", "\\..\\x", ".hidden", "-rf", "a\0b",
           "é/" * 400, "C:\\Windows", "name with spaces?&=x", "~/x", "$(rm -rf)", "-.-.-"]


def _inside(name: str, root: Path) -> bool:
    p = (root / name).resolve()
    return p.parent == root.resolve()


@pytest.mark.parametrize("text", HOSTILE)
def test_safe_name_is_one_safe_component(text, tmp_path):
    name = safe_name(text)
    assert SAFE.fullmatch(name) and len(name) <= 100 and _inside(name, tmp_path)
    stamped = stamped_name(text)
    assert SAFE.fullmatch(stamped) and len(stamped) <= 15 + 1 + 80 + 7
    assert _inside(stamped, tmp_path)


def test_safe_name_keeps_safe_text_and_collapses_the_rest():
    assert safe_name("lr=0.5+wd_1e-4") == "lr=0.5+wd_1e-4"
    assert safe_name("../a b/c?.png") == "a-b-c-.png"
    assert safe_name("///") == "run" and safe_name("", "chart") == "chart"
    assert safe_name("x" * 500, limit=7) == "x" * 7


def test_stamped_names_sort_by_time_and_differ_within_a_second():
    t = datetime(2026, 11, 29, 4, 36, 36, tzinfo=timezone.utc)
    name = stamped_name("sweep moons", now=t)
    assert re.fullmatch(r"20261129-043636-sweep-moons-[0-9a-f]{6}", name)
    assert stamped_name("", now=t).startswith("20261129-043636-job-")
    same_second = {stamped_name("grid", now=t) for _ in range(200)}
    assert len(same_second) == 200
    later = stamped_name("a", now=t.replace(second=37))
    assert sorted([later, name]) == [name, later]


def test_member_names_are_unique_within_a_sweep_or_grid(tmp_path):
    lrs = [0.5, 0.5, 1e-5, 2.0]  # a repeated rate still gets its own folder
    sweep = [sweep_member_name(i, lr) for i, lr in enumerate(lrs)]
    assert sweep[:3] == ["lr-00-0.5", "lr-01-0.5", "lr-02-1e-05"] and len(set(sweep)) == 4
    combos = [{"lr": 0.5, "data_path": text} for text in HOSTILE]
    grid = [grid_member_name(i, c) for i, c in enumerate(combos)]
    assert grid[0].startswith("000-lr=0.5-data_path=") and len(set(grid)) == len(grid)
    for name in sweep + grid:
        assert SAFE.fullmatch(name) and len(name) <= 120 and _inside(name, tmp_path)


def test_the_cli_default_folder_is_the_apps_stamped_name(tmp_path, monkeypatch):
    """One namer: a CLI run without --out lands in runs/<UTC time>-<name>-<hex>, like the
    app's runs, and two started in the same second get different folders."""
    from ijr_core.cli_commands import _default_out

    monkeypatch.chdir(tmp_path)
    a, b = _default_out("../../edge of stability"), _default_out("../../edge of stability")
    assert a != b and a.parent == b.parent == Path("runs")
    assert re.fullmatch(r"\d{8}-\d{6}-[A-Za-z0-9_.=+-]+-[0-9a-f]{6}", a.name), a.name
    assert ".." not in a.name.split("-")
