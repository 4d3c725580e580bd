"""Compare · Manage & share: the runs folder's runs, sweeps, grids and comparisons (and
the read-only demos): upload, rename, delete, download."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from app import runs_store, session, share, uploads, views
from ijr_core.run import RunFormatError


def manage_section() -> None:
    root = session.runs_dir()
    st.markdown(f"Runs folder: `{root}`")
    uploads.run_zip_uploader(root)
    entries = {str(e.path): e for e in runs_store.list_entries(root)}
    demos = {str(e.path): e for kind in ("run", "sweep", "group")
             for e in runs_store.demo_entries(kind)}
    options = {**entries, **demos}
    if not options:
        st.info("Nothing saved yet.")
        return
    if st.session_state.get("manage_item") not in options:
        st.session_state["manage_item"] = next(iter(options))
    chosen = st.selectbox(
        "Run, sweep or comparison",
        list(options),
        format_func=lambda k: f"{options[k].kind} · {options[k].label}",
        key="manage_item",
    )
    entry = options[chosen]
    editable = chosen in entries
    if editable:
        rename_delete(entry, root)
    else:
        st.caption("A demo shipped with the app: read-only (download it, or train your own).")
    run, readable = None, True
    if entry.kind == "run":
        try:
            run = runs_store.load_cached(entry.path)
        except RunFormatError as exc:
            readable = False
            st.error(f"Cannot open this run: {views.plain(exc)}")
    if entry.path.exists():  # a damaged run: its zip only (no report to build)
        share.download_panel("manage_dl", run=run, folder=entry.path, report=readable)


def _do_rename(entry: runs_store.Entry, root: Path) -> None:
    new = st.session_state.get(f"manage_new_name:{entry.path}", "")
    try:
        target = runs_store.rename(entry.path, new, root)
    except (runs_store.StoreError, OSError) as exc:
        st.session_state["manage_msg"] = ("error", f"Cannot rename: {exc}")
        return
    st.session_state["manage_item"] = str(target)
    st.session_state["manage_msg"] = ("success", f"Renamed to {target.name}.")


def _do_delete(entry: runs_store.Entry, root: Path) -> None:
    try:
        runs_store.delete(entry.path, root)
    except (runs_store.StoreError, OSError) as exc:
        st.session_state["manage_msg"] = ("error", f"Cannot delete: {exc}")
    else:
        st.session_state["manage_msg"] = ("success", f"Deleted {entry.name}.")
        st.session_state.pop("manage_item", None)
    st.session_state.pop("manage_confirm", None)


def rename_delete(entry: runs_store.Entry, root: Path) -> None:
    msg = st.session_state.pop("manage_msg", None)
    if msg:
        getattr(st, msg[0])(msg[1])
    c1, c2, c3 = st.columns([3, 1, 1], vertical_alignment="bottom")
    c1.text_input("New name", entry.name, key=f"manage_new_name:{entry.path}")
    c2.button("Rename", key="manage_rename", on_click=_do_rename, args=(entry, root))
    if c3.button("Delete…", key="manage_delete"):
        st.session_state["manage_confirm"] = str(entry.path)
    if st.session_state.get("manage_confirm") == str(entry.path):
        st.warning(
            f"Delete **{entry.name}** ({entry.kind}) and all its files? This cannot be undone."
        )
        d1, d2, _ = st.columns([1, 1, 4])
        d1.button(
            "Yes, delete",
            key="manage_confirm_yes",
            type="primary",
            on_click=_do_delete,
            args=(entry, root),
        )
        if d2.button("Cancel", key="manage_confirm_no"):
            st.session_state.pop("manage_confirm", None)
            st.rerun()
