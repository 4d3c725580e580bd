"""app/state.py: the one helper that keeps widget values across page switches."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from app import state


@pytest.fixture
def session_state(monkeypatch) -> dict:
    fake: dict = {}
    monkeypatch.setattr(state, "st", SimpleNamespace(session_state=fake))
    return fake


def test_keep_restores_what_a_page_switch_dropped_and_fills_defaults(session_state):
    session_state.update({"a": 1, "b": "x"})
    state.save("page", ["a", "b", "never-set"])
    assert session_state["_saved_page"] == {"a": 1, "b": "x"}
    del session_state["a"], session_state["b"]  # Streamlit dropped the undrawn widgets
    session_state["b"] = "typed since"  # a value set on this run wins over the copy
    state.keep("page", ["a", "b"], defaults={"c": 3, "a": 0})
    assert session_state["a"] == 1 and session_state["b"] == "typed since"
    assert session_state["c"] == 3
    state.keep("other", ["a"])  # another page's copy is not this one's
    assert "_saved_other" not in session_state


def test_keep_ignores_saved_keys_not_named(session_state):
    session_state["_saved_page"] = {"stale": 1}
    state.keep("page", ["a"])
    assert "stale" not in session_state and "a" not in session_state


def test_remember_uses_a_private_key(session_state):
    assert state.remembered("inspect_run", "none") == "none"
    state.remember("inspect_run", "/runs/x")
    assert session_state == {"_inspect_run": "/runs/x"}
    assert state.remembered("inspect_run") == "/runs/x"
