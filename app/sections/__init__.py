"""Sections of the app's pages: one module per section a page dispatches to.

A page (``app/app_pages/*.py``) keeps its widget defaults and picks a section; each
section draws its widgets and views from :mod:`app.charts` / :mod:`app.tables` (pure) and
the runs store (:mod:`app.runs_store`). :mod:`app.sections.jobs_ui` holds the controls
shared by every section that trains in the background (start, stop, progress, open).
"""
