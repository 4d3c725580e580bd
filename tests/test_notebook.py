"""assets/explore.ipynb executes headless (nbclient) without a failing cell and its charts
come out as Vega-Lite outputs."""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).resolve().parents[1] / "assets" / "explore.ipynb"


def test_explore_notebook_runs(tmp_path):
    nb = nbformat.read(NOTEBOOK, as_version=4)
    env_threads = os.environ.get("OMP_NUM_THREADS")
    os.environ["OMP_NUM_THREADS"] = "1"
    try:
        client = NotebookClient(
            nb,
            timeout=300,
            kernel_name="python3",
            resources={"metadata": {"path": str(NOTEBOOK.parent)}},
        )
        client.execute()  # raises CellExecutionError naming the cell when one fails
    finally:
        if env_threads is None:
            os.environ.pop("OMP_NUM_THREADS", None)
        else:
            os.environ["OMP_NUM_THREADS"] = env_threads
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    charts = [
        o["data"]["text/html"]
        for o in outputs
        if "vega-embed" in o.get("data", {}).get("text/html", "")
    ]
    assert len(charts) == 4  # sharpness panel, heatmap, the two-η comparison, a demo run
    # rendered offline: the Vega JavaScript is inlined, nothing is fetched from a CDN
    assert not [h for h in charts if "cdn.jsdelivr" in h or "<script src=" in h]
