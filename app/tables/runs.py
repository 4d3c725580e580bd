"""Tables of several runs side by side: config differences, final metrics, the optimizer
comparison and its seed groups. Pure pandas / numpy.

"Final" is the last finite value of a scalar (:func:`app.tables.access.last`); a seed
group is the runs whose configs differ only in the seed (and the free-text name); its
summary is the mean and the population standard deviation over the seeds.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from app.tables.access import config_dict, last
from ijr_core.protocol import RunLike

# Fields that never make two runs "different experiments" for seed grouping.
SEED_FIELDS = ("seed", "name")


def seed_groups(runs: Mapping[str, RunLike]) -> dict[str, list[str]]:
    """Group labels -> run labels: runs whose configs differ only in ``seed`` (and the
    free-text ``name``) share a group. Groups keep the order of first appearance; a group
    of several runs is labelled "<first label> (n seeds)", a trailing "-s<seed>" dropped."""
    keyed: dict[str, list[str]] = {}
    for label, run in runs.items():
        cfg = {k: v for k, v in config_dict(run).items() if k not in SEED_FIELDS}
        keyed.setdefault(repr(sorted(cfg.items())), []).append(label)
    out = {}
    for members in keyed.values():
        if len(members) == 1:
            out[members[0]] = members
        else:
            stem = re.sub(r"-s\d+$", "", members[0]) or members[0]  # "sam-s0" -> "sam"
            name = f"{stem} ({len(members)} seeds)"
            out[name if name not in out else f"{members[0]} ({len(members)} seeds)"] = members
    return out


def config_diff(runs: Mapping[str, RunLike]) -> pd.DataFrame:
    """Rows = runs, columns = only the config fields whose values differ between runs."""
    dicts = {label: config_dict(run) for label, run in runs.items()}
    fields = list(dict.fromkeys(k for d in dicts.values() for k in d))
    differ = [f for f in fields if len({repr(d.get(f)) for d in dicts.values()}) > 1]
    frame = pd.DataFrame(
        [{f: _cell(d.get(f)) for f in differ} for d in dicts.values()],
        index=list(dicts),
        columns=differ,
    )
    frame.index.name = "run"
    return frame


def _cell(v: Any) -> str:
    return "None" if v is None else str(v)


FINAL_METRICS = (
    ("status", None),
    ("step", None),
    ("test acc", "test_acc"),
    ("train loss", "train_loss"),
    ("final ‖H‖", "sharpness"),
    ("2/η", "two_over_eta"),
    ("final ⟨‖M‖⟩", "m_norm_mean"),
    ("final ⟨‖J‖²⟩", "jac_spectral_sq_mean"),
    ("wall time (s)", "wall_time"),
)


def final_metrics(runs: Mapping[str, RunLike]) -> pd.DataFrame:
    """Rows = runs: status, step reached and the last finite value of the key metrics."""
    rows = []
    for run in runs.values():
        row = {}
        for title, name in FINAL_METRICS:
            if name is None:
                row[title] = getattr(run, title)  # status, step
            else:
                row[title] = last(run, name)
        rows.append(row)
    frame = pd.DataFrame(rows, index=list(runs), columns=[t for t, _ in FINAL_METRICS])
    frame.index.name = "run"
    return frame


def optimizer_table(runs: Mapping[str, RunLike]) -> pd.DataFrame:
    """The optimizer comparison: per run its method, test accuracy, final ⟨‖J‖²⟩, final
    ‖H‖ and wall time (s) of training (probes included), plus status."""
    rows = []
    for label, run in runs.items():
        cfg = config_dict(run)
        rows.append(
            {
                "run": label,
                "optimizer": cfg.get("optimizer"),
                "batch": "full" if cfg.get("batch_size") is None else str(cfg.get("batch_size")),
                "test acc": last(run, "test_acc"),
                "final ⟨‖J‖²⟩": last(run, "jac_spectral_sq_mean"),
                "final ‖H‖": last(run, "sharpness"),
                "wall time (s)": last(run, "wall_time"),
                "status": run.status,
            }
        )
    return pd.DataFrame(rows).set_index("run") if rows else pd.DataFrame()


OPTIMIZER_METRICS = ("test acc", "final ⟨‖J‖²⟩", "final ‖H‖", "wall time (s)")


def optimizer_summary(runs: Mapping[str, RunLike]) -> pd.DataFrame:
    """Seed groups of the optimizer comparison (runs differing only in the seed): the
    number of seeds and, per metric of :func:`optimizer_table`, the mean and the standard
    deviation over the seeds (population std, 0 for one seed)."""
    table = optimizer_table(runs)
    rows = []
    for group, members in seed_groups(runs).items():
        part = table.loc[members]
        row = {"group": group, "optimizer": part["optimizer"].iloc[0], "seeds": len(members)}
        for metric in OPTIMIZER_METRICS:
            values = part[metric].to_numpy(dtype=float)
            row[metric] = float(np.nanmean(values)) if np.isfinite(values).any() else np.nan
            row[f"± {metric}"] = float(np.nanstd(values)) if np.isfinite(values).any() else np.nan
        rows.append(row)
    return pd.DataFrame(rows).set_index("group") if rows else pd.DataFrame()
