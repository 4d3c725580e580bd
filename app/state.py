"""What survives a page switch: the one place pages keep widget values and small choices.

Streamlit drops the state of every widget that a run does not draw (the widgets of another
page, or of another section of Compare), so a value typed on one page would be gone after a
visit to another. A page therefore calls :func:`keep` at its top, naming its widget keys
(and their defaults) under a page name, and :func:`save` at its end:

- ``save`` copies the current values under the private key ``_saved_<page>``;
- ``keep`` refills the keys a page switch dropped from that copy, fills in the defaults of
  keys never set, and re-assigns every kept key (a value set through the Session State API
  is not dropped at the end of this run, so another section's widgets keep theirs too).

:func:`remember` / :func:`remembered` keep one value (a chosen run, a scrubbed step) under
a private key, for pages that read it without drawing its widget.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import streamlit as st


def _saved(page: str) -> str:
    return f"_saved_{page}"


def keep(page: str, keys: Iterable[str], defaults: Mapping | None = None) -> None:
    """At the top of a page: restore ``keys`` dropped by a page switch, fill in
    ``defaults`` (key -> value) for keys never set, and keep every one through this run."""
    state = st.session_state
    keys = [*dict.fromkeys([*(defaults or {}), *keys])]
    for k, value in state.get(_saved(page), {}).items():
        if k in keys and k not in state:
            state[k] = value
    for k, value in (defaults or {}).items():
        state.setdefault(k, value)
    for k in keys:
        if k in state:
            state[k] = state[k]


def save(page: str, keys: Iterable[str]) -> None:
    """At the end of a page: copy the current values of ``keys`` for :func:`keep`."""
    state = st.session_state
    state[_saved(page)] = {k: state[k] for k in keys if k in state}


def remember(key: str, value) -> None:
    """Keep ``value`` under the private twin of ``key`` (never a widget's key)."""
    st.session_state["_" + key] = value


def remembered(key: str, default=None):
    """The value last remembered for ``key`` (``default`` if none)."""
    return st.session_state.get("_" + key, default)
