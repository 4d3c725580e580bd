"""The sidebar config form, built from RunConfig's field metadata (help, group, choices).

Every field has one widget with key ``cfg_<field>``: a select box for fields with choices,
a checkbox for booleans, a text box otherwise (parsed and validated by
``RunConfig.from_dict``, so a bad value yields a ConfigError naming the field, which the
page shows with ``st.error``). The config is mirrored in the URL query string
(``RunConfig.to_query``) so a link restores it.
"""

from __future__ import annotations

import streamlit as st

from app import state
from ijr_core.config import PRESETS, ConfigError, RunConfig, field_help, fields_by_group

PRESET_KEY = "preset"
CUSTOM = "(custom)"
GROUP_TITLES = {
    "data": "Data",
    "model": "Model",
    "optimizer": "Optimizer",
    "probes": "Probes",
    "advanced": "Advanced",
}


# Sidebar labels in words; the field's own name (as in links, JSON and the CLI) follows in
# brackets.
LABELS = {
    "dataset": "dataset", "n_train": "training samples", "n_test": "test samples",
    "label_noise": "label noise (fraction redrawn)", "standardize": "standardise features",
    "noise": "noise of the 2-D data", "n_classes": "classes / arms",
    "data_path": "data folder or file", "csv_label_column": "CSV label column",
    "model": "model", "width": "width (units or channels)", "depth": "hidden layers",
    "activation": "activation", "optimizer": "optimizer", "lr": "learning rate η",
    "batch_size": "batch size (empty = full batch)", "momentum": "momentum",
    "weight_decay": "weight decay", "rho": "radius ρ", "beta": "penalty weight β",
    "steps": "steps", "probe_every": "probe every … steps", "probe_size": "probe subset size",
    "n_eigs": "Hessian eigenvalues", "eig_tol": "eigensolver tolerance",
    "checkpoint_limit": "checkpoints kept", "eos_fraction": "EoS threshold (× 2/η)",
    "arp_fraction": "ARP threshold (× peak ⟨‖M‖⟩)", "loss": "loss", "seed": "seed",
    "data_seed": "data seed", "device": "device", "divergence_factor": "divergence factor",
    "divergence_window": "divergence window (steps)", "name": "run name",
    "torch_threads": "CPU threads (empty = auto)",
}


def label(name: str) -> str:
    """The sidebar label of field ``name``: words, then the field name."""
    words = LABELS.get(name, name)
    return words if words == name else f"{words} ({name})"


def applies(meta: dict) -> bool:
    """Whether a field affects the config in the form now (its ``when`` metadata holds for
    the current widget values); the others are not drawn (their values are kept)."""
    return all(st.session_state.get(key(k)) in v for k, v in meta.get("when", {}).items())


def key(name: str) -> str:
    return f"cfg_{name}"


def widget_value(name: str, value):
    """Value as the widget of field ``name`` holds it."""
    meta = field_help()[name]
    if "choices" in meta or isinstance(value, bool):
        return value
    return "" if value is None else (repr(value) if isinstance(value, float) else str(value))


def load_into_widgets(config: RunConfig) -> None:
    """Set every field widget's state from ``config`` (before the widgets are drawn)."""
    for name, value in config.to_dict().items():
        st.session_state[key(name)] = widget_value(name, value)


def _apply_preset() -> None:
    name = st.session_state.get(PRESET_KEY)
    if name in PRESETS:
        load_into_widgets(PRESETS[name])


def init_state() -> None:
    """First run of a session: config from the URL query string, else the default preset."""
    if st.session_state.get("_cfg_ready"):
        return
    st.session_state["_cfg_ready"] = True
    params = {k: st.query_params.get_all(k) for k in st.query_params}
    config, preset = PRESETS["edge-of-stability"], "edge-of-stability"
    if params:
        # A link with one bad entry keeps the rest; every entry left out is named.
        config, errors = RunConfig.from_query_partial(params)
        preset = params.get("preset", [CUSTOM])[-1]
        preset = preset if preset in PRESETS else CUSTOM
        if params.get("dataset", [""])[-1] == "csv" and not params.get("data_path"):
            errors = [e for e in errors if e.field not in ("dataset", "data_path")]
            st.session_state["_csv_link"] = True
        if errors:
            st.session_state["_query_error"] = errors
    st.session_state[PRESET_KEY] = preset
    load_into_widgets(config)


def _widget(name: str, meta: dict, container) -> None:
    k = key(name)
    help_text = meta.get("help")
    if "choices" in meta:
        choices = list(meta["choices"])
        current = st.session_state.get(k)
        if current is not None and current not in choices:
            choices.append(current)  # e.g. device "cuda:1": keep it selectable
        container.selectbox(label(name), choices, key=k, help=help_text)
    elif meta.get("type") == "bool":
        container.checkbox(label(name), key=k, help=help_text)
    else:
        optional = meta.get("type", "").endswith("or None")
        hint = " Empty = None." if optional else ""
        container.text_input(label(name), key=k, help=f"{help_text}{hint}")


def _two_over_eta_caption(container) -> None:
    try:
        lr = float(st.session_state.get(key("lr"), ""))
        if lr > 0:
            container.caption(f"2/η = **{2 / lr:.4g}** — the edge-of-stability level of ‖H‖")
    except ValueError:
        pass


def _keys(names) -> list[str]:
    """Session-state keys of the form: the preset and one per field."""
    return [PRESET_KEY, *(key(n) for n in names)]


def sidebar_config() -> tuple[RunConfig | None, str | None]:
    """Draw the preset picker and the grouped fields; return (config, error message)."""
    init_state()
    state.keep("cfg", _keys(field_help()))
    sb = st.sidebar
    sb.selectbox(
        "Preset",
        [*PRESETS, CUSTOM],
        key=PRESET_KEY,
        on_change=_apply_preset,
        help="Load a preset configuration; edit any field below afterwards.",
    )
    meta = field_help()
    for group, names in fields_by_group().items():
        with sb.expander(GROUP_TITLES.get(group, group), expanded=group in ("optimizer",)):
            unused = [n for n in names if not applies(meta[n])]
            for name in names:
                if name in unused:
                    continue
                _widget(name, meta[name], st)
                if name == "lr":
                    _two_over_eta_caption(st)
            if unused:
                st.caption(f"Not used by this setting (hidden): {', '.join(unused)}.")
    # a hidden field keeps its widget value for later but the config takes its default
    # (batch_size 32 typed for sgd must not make a gd config invalid)
    values = {n: st.session_state.get(key(n)) if applies(meta[n]) else meta[n]["default"]
              for n in meta}
    state.save("cfg", _keys(meta))
    try:
        return RunConfig.from_dict(values), None
    except ConfigError as exc:
        return None, str(exc) + error_hint(values)
    except (TypeError, ValueError) as exc:
        return None, f"invalid configuration: {exc}"


def error_hint(values: dict) -> str:
    """What to do about a missing data file (the engine's message says only that
    data_path is needed): nothing is ever downloaded."""
    if values.get("data_path"):
        return ""
    dataset = values.get("dataset")
    if dataset == "csv":
        return " — upload a file under **Your own data (CSV)** at the top of the sidebar."
    if dataset in ("mnist", "fashion-mnist", "cifar10"):
        return (
            f" — set **Data → data_path** to a folder holding the {dataset} files "
            "(MNIST IDX or CIFAR-10 binary); nothing is downloaded."
        )
    return ""


def mirror_to_url(config: RunConfig) -> None:
    """Write the config into the URL query string (only when it changed)."""
    preset = st.session_state.get(PRESET_KEY)
    from urllib.parse import parse_qsl

    query = dict(
        parse_qsl(
            config.to_query(preset=preset if preset in PRESETS else None), keep_blank_values=True
        )
    )
    if config.dataset == "csv":  # an uploaded file's server-local path is no part of a link
        query.pop("data_path", None)
    current = {k: st.query_params.get(k) for k in st.query_params}
    if current != query:
        st.query_params.from_dict(query)
