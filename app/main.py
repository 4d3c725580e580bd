"""Entry of the IJR explorer: ``streamlit run app/main.py [-- --runs-dir DIR]``.

Sets up the process once (torch threads, runs folder), draws the title and device badge
and hands over to the pages through ``st.navigation``.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `streamlit run app/main.py` puts only app/ on the path
    sys.path.insert(0, str(ROOT))

import streamlit as st  # noqa: E402

from app import session  # noqa: E402

# Not "pages/": with that name Streamlit also routes a URL like /train straight to the
# page file, skipping this entry script (no navigation, no setup).
PAGES = ROOT / "app" / "app_pages"
# (file in PAGES, title, icon, url path); the first is the landing page.
PAGE_SPECS = (
    ("train.py", "Train", ":material/model_training:", "train"),
    ("inspect.py", "Inspect", ":material/search_insights:", "inspect"),
    ("compare.py", "Compare", ":material/compare_arrows:", "compare"),
    ("theory.py", "Theory", ":material/functions:", "theory"),
)


@st.cache_resource
def setup_process() -> dict:
    """Once per process: the thread budget of all runs, the runs folder flag, the device
    badge."""
    import torch

    from ijr_core.config import resolve_device
    from ijr_core.threads import BUDGET, set_budget

    # Runs pick their own thread count (ijr_core.threads); the budget is the cores all
    # sessions' runs share, so three lecturers' runs do not oversubscribe the CPU.
    if os.environ.get("IJR_TORCH_THREADS", "").strip().isdigit():
        set_budget(max(1, int(os.environ["IJR_TORCH_THREADS"])))
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--runs-dir", default=None)
    args, _ = parser.parse_known_args(sys.argv[1:])
    session.set_runs_dir(args.runs_dir)
    device = resolve_device("auto")
    if device.type == "cuda":
        badge = f"GPU · {torch.cuda.get_device_name(device)}"
    elif device.type == "mps":
        badge = "GPU · Apple MPS"
    else:
        n = BUDGET.total
        badge = f"CPU · {n} core{'s' if n > 1 else ''}"
    return {"device": str(device), "badge": badge}


def main() -> None:
    # A local file: a Material icon as favicon is fetched from fonts.gstatic.com, which
    # fails offline (lecture halls, air-gapped machines).
    st.set_page_config(page_title="IJR explorer", page_icon=str(ROOT / "assets" / "favicon.png"),
                       layout="wide")
    info = setup_process()
    pages = [
        st.Page(str(PAGES / file), title=title, icon=icon, url_path=url, default=i == 0)
        for i, (file, title, icon, url) in enumerate(PAGE_SPECS)
    ]
    nav = st.navigation(pages)
    st.sidebar.markdown(
        f"**IJR explorer** &nbsp; :blue-badge[{info['badge']}]",
        help="Where training runs: the first CUDA GPU, Apple MPS, or the CPU.",
    )
    nav.run()


main()
