"""Server time to rebuild every Inspect view when the step slider moved (the per-step
charts), and what the page builds per rerun now that the step lives in the browser.

A synthetic run of 1000 samples × 100 checkpoints (app/synthetic.py). One "scrub" builds
the heatmap (with its cursor), the histogram, the λ*–‖M‖ scatter, the sample history and
the top-k table at a new checkpoint, then serialises each chart the way the app sends it
(spec JSON without data + the DataFrame as Arrow IPC). The app path takes the spec from a
cache (it does not depend on the data); baselines rebuild the Altair chart each time, with
the data as Arrow or inlined as JSON rows. Target: ≤ 300 ms per scrub. Medians.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import pandas as pd  # noqa: E402
import pyarrow as pa  # noqa: E402
import torch  # noqa: E402

from app import charts  # noqa: E402
from app.synthetic import synthetic_run  # noqa: E402
from bench.common import median_time  # noqa: E402

torch.set_num_threads(1)


def inspect_views(run, c: int, as_spec: bool) -> list:
    """Everything the Inspect page builds for checkpoint c (2-D map excluded: no 2-D data)."""
    return [
        charts.heatmap_chart(run, "m_norm", c, "class", as_spec=as_spec),
        charts.histogram_chart(run, "m_norm", c, as_spec=as_spec),
        charts.scatter_chart(run, c, as_spec=as_spec),
        charts.sample_history_chart(run, 17, c, as_spec=as_spec),
        charts.top_impure(run, c, 10),
    ]


def scrub_views(run, c: int) -> list:
    """What the Inspect page builds now on each rerun: the scrub chart (every checkpoint's
    rows; its spec cached, a scrub in the browser does not change it), the sample history
    and the top-k table at checkpoint c."""
    return [
        charts.scrub_chart(run, start=0, as_spec=True),
        charts.sample_history_chart(run, 17, c, as_spec=True),
        charts.top_impure(run, c, 10),
    ]


def _arrow_bytes(frame: pd.DataFrame) -> int:
    table = pa.Table.from_pandas(frame)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().size


def to_wire(views: list) -> int:
    """Serialise as the app does: spec JSON + Arrow IPC of the data (of each named dataset
    of a compound chart); returns bytes sent."""
    sent = 0
    for v in views:
        if isinstance(v, pd.DataFrame):
            sent += _arrow_bytes(v)
            continue
        spec, data = v if isinstance(v, tuple) else charts.split_spec(v)
        sent += len(json.dumps(spec))
        frames = data.values() if isinstance(data, dict) else [data]
        sent += sum(_arrow_bytes(f) for f in frames)
    return sent


def inline_json(views: list) -> int:
    return sum(len(v.to_json()) for v in views if not isinstance(v, pd.DataFrame))


def main() -> None:
    run = synthetic_run(n_samples=1000, n_checkpoints=100, steps=2000)
    state = {"c": 0}

    def scrub(as_spec: bool) -> list:
        state["c"] = (state["c"] + 7) % 100
        return inspect_views(run, state["c"], as_spec)

    app_path = median_time(lambda: to_wire(scrub(True)), repeats=9)
    altair_path = median_time(lambda: to_wire(scrub(False)), repeats=5)
    inline = median_time(lambda: inline_json(scrub(False)), repeats=3)
    rows = len(charts.heatmap_chart(run, "m_norm", 0).data)
    print(f"run: 1000 samples × 100 checkpoints; heatmap rows sent: {rows} (limit 50000)")
    print("server time per scrub (build every Inspect view + serialise), median:")
    print(f"  app path: cached spec + Arrow data     : {app_path * 1e3:7.1f} ms   target ≤ 300 ms")
    print(f"  rebuild Altair chart + Arrow data      : {altair_path * 1e3:7.1f} ms")
    print(f"  rebuild Altair chart + inline JSON data: {inline * 1e3:7.1f} ms")
    print(f"  ratio inline JSON / app path           : {inline / app_path:7.2f}x")
    sent = to_wire(scrub_views(run, 0))

    def rerun() -> int:
        state["c"] = (state["c"] + 7) % 100
        return to_wire(scrub_views(run, state["c"]))

    now = median_time(rerun, repeats=9)
    print("Inspect as it is now (one scrub chart of all checkpoints, the step in the browser):")
    print(f"  each rerun {now * 1e3:.1f} ms, {sent / 1024:.0f} KB sent (spec + Arrow)")

    live = synthetic_run(n_samples=1000, n_checkpoints=33, steps=800)
    fns = (
        charts.sharpness_chart,
        charts.m_norm_chart,
        charts.jacobian_chart,
        charts.loss_chart,
        charts.accuracy_chart,
    )
    cached = median_time(lambda: to_wire([f(live, as_spec=True) for f in fns]), repeats=9)
    rebuilt = median_time(lambda: to_wire([f(live) for f in fns]), repeats=5)
    print("Train page live refresh (5 scalar charts, 33 probes), every second while training:")
    print(f"  app path: cached spec + Arrow data     : {cached * 1e3:7.1f} ms")
    print(f"  rebuild Altair chart + Arrow data      : {rebuilt * 1e3:7.1f} ms")
    print(f"  ratio                                  : {rebuilt / cached:7.2f}x")


if __name__ == "__main__":
    main()
