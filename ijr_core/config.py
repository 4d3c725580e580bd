"""Run configuration: one frozen dataclass holding every setting of a training run.

`RunConfig` is validated on construction (and therefore also through
`dataclasses.replace`), and round-trips through dict, JSON and URL query strings.
All round trips are driven by `dataclasses.fields(RunConfig)`; adding a field with its
metadata is all it takes to make it appear in every format and in the app's sidebar.

Every field carries `metadata` with

- ``help``: one sentence for tooltips and the CLI,
- ``group``: one of `GROUPS` (data, model, optimizer, probes, advanced),
- optionally ``choices`` (allowed names), ``min`` / ``max`` (numeric bounds, with
  ``min_open`` / ``max_open`` marking strict inequalities) for building widgets,
- optionally ``when``: {other field: allowed values}, the settings under which this field
  has any effect (e.g. rho only for sam/asam/ejr); see `RunConfig.relevant_fields`.

Layout: this module holds `RunConfig` (the one frozen source of defaults) and keeps every
name below importable from here; the allowed names and `ConfigError` are in
:mod:`ijr_core.config_names`, the work limits in :mod:`ijr_core.config_limits`, the field
types, checks and text codec in :mod:`ijr_core.config_codec`, the presets in
:mod:`ijr_core.presets`, devices and cores in :mod:`ijr_core.devices`.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlencode

from ijr_core.config_codec import (
    check_bounds,
    check_type,
    field_types,
    format_value,
    parse_str,
    query_dict,
    type_name,
)
from ijr_core.config_limits import (
    DATASET_SHAPES,
    LIMITS,
    MAX_CHECKPOINTS,
    MAX_CLASSES,
    MAX_FEATURES,
    MAX_SAMPLES,
    check_work,
    param_count,
)
from ijr_core.config_names import (
    ACTIVATION_NAMES,
    DATASET_NAMES,
    DEVICE_NAMES,
    FILE_DATASETS,
    GROUPS,
    IMAGE_DATASETS,
    LOSS_NAMES,
    MODEL_NAMES,
    OPTIMIZER_NAMES,
    PROBE_MODES,
    TOY_DATASETS,
    ConfigError,
    registrar,
)
from ijr_core.devices import resolve_device, usable_cores

__all__ = [
    "ACTIVATION_NAMES", "DATASET_NAMES", "DEVICE_NAMES", "FILE_DATASETS", "GROUPS", "LIMITS",
    "IMAGE_DATASETS", "LOSS_NAMES", "MODEL_NAMES", "OPTIMIZER_NAMES", "PRESETS", "PROBE_MODES",
    "TOY_DATASETS", "ConfigError", "RunConfig", "field_help", "fields_by_group", "param_count",
    "resolve_device", "usable_cores",
    # from config_limits and config_names, for the modules that import them from here
    "MAX_CHECKPOINTS", "MAX_CLASSES", "MAX_FEATURES", "MAX_SAMPLES", "check_work", "registrar",
]

_DEEP = {"model": ("mlp", "cnn")}
_SEED_MAX = 2**63 - 1  # torch.manual_seed takes 64-bit seeds
_F32_MAX = 3.4028234663852886e38


def _f(default, help: str, group: str, **extra):  # noqa: A002 - mirrors metadata key
    """A dataclass field with the metadata the app and the validation read."""
    assert group in GROUPS, group
    return field(default=default, metadata={"help": help, "group": group, **extra})


@dataclass(frozen=True)
class RunConfig:
    """Every setting of one training run, with the SCIENCE.md edge-of-stability defaults.

    Loss ℓ is the mean over the batch: "ce" = cross-entropy, "mse" = ½‖z − onehot(y)‖²
    summed over the K logits. Label noise replaces a fraction `label_noise` of the
    training labels by a label drawn uniformly from the K classes (so a replaced label
    changes with probability (K−1)/K). Full-batch GD is `optimizer="gd"` with
    `batch_size=None`; the edge of stability is reached when the sharpness ‖H‖ ≥
    `eos_fraction` · 2/η.
    """

    # data
    dataset: str = _f("digits", "Dataset name.", "data", choices=DATASET_NAMES)
    n_train: int = _f(1000, "Number of training samples.", "data", min=1, max=MAX_SAMPLES)
    n_test: int = _f(500, "Number of test samples.", "data", min=1, max=MAX_SAMPLES)
    label_noise: float = _f(
        0.3, "Fraction of training labels replaced by a uniformly random class.", "data",
        min=0.0, max=1.0, max_open=True,
    )
    standardize: bool = _f(True, "Standardise features with training mean and std.", "data")
    noise: float = _f(
        0.1, "Noise level of the 2-D toy datasets (moons, circles, blobs, spirals).", "data",
        min=0.0, when={"dataset": TOY_DATASETS},
    )
    n_classes: int = _f(3, "Number of classes of blobs / arms of spirals.", "data", min=2,
                        max=MAX_CLASSES, when={"dataset": ("blobs", "spirals")})
    data_path: str | None = _f(
        None, "Folder with MNIST IDX / CIFAR-10 binary files, or the CSV file.", "data",
        when={"dataset": FILE_DATASETS},
    )
    csv_label_column: str | None = _f(
        None, "CSV label column: header name or integer index (default: last column).", "data",
        when={"dataset": ("csv",)},
    )
    # model
    model: str = _f("mlp", "Model architecture.", "model", choices=MODEL_NAMES)
    # Caps keep one click from allocating gigabytes in a shared app process; the explorer is
    # for small networks whose curvature can be probed live.
    width: int = _f(128, "Hidden units per layer (channels for cnn).", "model", min=1,
                    max=4096, when=_DEEP)
    depth: int = _f(2, "Number of hidden layers (conv layers for cnn).", "model", min=1, max=16,
                    when=_DEEP)
    activation: str = _f("tanh", "Activation function.", "model", choices=ACTIVATION_NAMES,
                         when=_DEEP)
    # optimizer
    optimizer: str = _f("gd", "Training method.", "optimizer", choices=OPTIMIZER_NAMES)
    # torch applies η and the decay as float32 scalars: larger values fail, not diverge
    lr: float = _f(0.5, "Learning rate η.", "optimizer", min=0.0, min_open=True, max=_F32_MAX,
                   max_open=True)
    batch_size: int | None = _f(
        None, "Mini-batch size (None = full batch; must be None for gd).", "optimizer", min=1,
        when={"optimizer": OPTIMIZER_NAMES[1:]},
    )
    momentum: float = _f(0.0, "Heavy-ball momentum.", "optimizer", min=0.0, max=1.0, max_open=True)
    weight_decay: float = _f(0.0, "L2 weight decay.", "optimizer", min=0.0, max=_F32_MAX,
                             max_open=True)
    rho: float = _f(0.05, "Perturbation radius ρ of SAM / ASAM / EJR.", "optimizer", min=0.0,
                    when={"optimizer": ("sam", "asam", "ejr")})
    beta: float = _f(1e-3, "Weight β of the Jacobian penalty (1e-2 stalls training on digits).",
                     "optimizer", min=0.0, when={"optimizer": ("jacobian-penalty",)})
    steps: int = _f(800, "Number of optimizer steps.", "optimizer", min=1, max=10_000_000)
    # probes
    probe_every: int = _f(25, "Steps between probes.", "probes", min=1)
    probe_size: int = _f(1000, "Training samples in the probe subset (at most n_train).", "probes",
                         min=1, max=MAX_SAMPLES)
    n_eigs: int = _f(1, "Number of top Hessian eigenvalues computed.", "probes", min=1, max=100)
    eig_tol: float = _f(1e-3, "Relative tolerance of the Lanczos eigensolver.", "probes",
                        min=0.0, max=1.0, min_open=True, max_open=True)
    probe_mode: str = _f(
        "train", "Probe the function GD trains (batch norm on the probe batch's statistics, "
        "dropout off) or the model in eval mode.", "probes", choices=PROBE_MODES,
    )
    checkpoint_limit: int = _f(200, "Most per-sample checkpoints kept (older ones thinned).",
                               "probes", min=2, max=MAX_CHECKPOINTS)
    eos_fraction: float = _f(0.9, "Edge of stability once ‖H‖ ≥ eos_fraction · 2/η.", "probes",
                             min=0.0, max=1.0, min_open=True)
    arp_fraction: float = _f(
        0.5, "ARP while ⟨‖M‖⟩ ≥ arp_fraction · its running peak since the edge of stability.",
        "probes", min=0.0, max=1.0, min_open=True,
    )
    # docs/science.md: measured values behind these three defaults
    phase_sustain: int = _f(
        3, "A phase boundary needs this many consecutive probes past its threshold.", "probes",
        min=1, max=1000,
    )
    unstable_factor: float = _f(
        2.0, "Unstable (not the edge) while ‖H‖ ≥ unstable_factor · 2/η, sustained.", "probes",
        min=1.0,
    )
    arp_smoothing: int = _f(
        5, "Probes in the running median of ⟨‖M‖⟩ that decides ARP (II) vs III.", "probes",
        min=1, max=1001,
    )
    # advanced
    loss: str = _f("ce", "Loss: cross-entropy or squared error.", "advanced", choices=LOSS_NAMES)
    seed: int = _f(0, "Seed of initialisation and batch order.", "advanced", min=0,
                   max=_SEED_MAX)
    data_seed: int = _f(0, "Seed of data generation, subsets and label noise.", "advanced",
                        min=0, max=_SEED_MAX)
    device: str = _f("auto", "auto, cpu, cuda, cuda:N or mps.", "advanced", choices=DEVICE_NAMES)
    divergence_factor: float = _f(
        1e3, "Diverged when the loss stays above this multiple of its initial value…",
        "advanced", min=1.0, min_open=True,
    )
    divergence_window: int = _f(50, "…for this many consecutive steps.", "advanced", min=1)
    torch_threads: int | None = _f(
        None, "Torch CPU threads of this run (empty = auto: 1 or all free cores, whichever "
        "steps faster, re-checked now and then).", "advanced", min=1, max=1024,
    )
    name: str | None = _f(None, "Optional label of the run.", "advanced")

    def __post_init__(self):
        for f in dataclasses.fields(self):
            value = check_type(f.name, getattr(self, f.name), _field_types()[f.name])
            object.__setattr__(self, f.name, value)
            check_bounds(f, value)
        self._check_cross_field()

    def _check_cross_field(self):
        if self.optimizer == "gd" and self.batch_size is not None:
            raise ConfigError(
                "batch_size", self.batch_size,
                "gd is full-batch GD, so batch_size must be None (use sgd for mini-batches)",
            )
        if self.batch_size is not None and self.batch_size > self.n_train:
            raise ConfigError(
                "batch_size", self.batch_size, f"must be at most n_train = {self.n_train}",
            )
        if self.model == "cnn" and self.dataset not in IMAGE_DATASETS:
            raise ConfigError(
                "model", self.model,
                f"cnn needs an image dataset ({', '.join(IMAGE_DATASETS)}), not {self.dataset!r}",
            )
        if self.dataset in FILE_DATASETS and not self.data_path:
            raise ConfigError(
                "data_path", self.data_path, f"dataset {self.dataset!r} needs a data_path",
            )
        n = self.n_train + self.n_test
        if n > MAX_SAMPLES:
            raise ConfigError("n_train", self.n_train,
                              f"n_train + n_test = {n:,}; at most {MAX_SAMPLES:,}")
        if self.dataset in DATASET_SHAPES:
            d, k, image = DATASET_SHAPES[self.dataset]
            k = self.n_classes if self.dataset in ("blobs", "spirals") else k
            check_work(self, d, k, image)

    def relevant_fields(self) -> list[str]:
        """Names of the fields that affect this run (a field's ``when`` metadata holds)."""
        return [
            f.name for f in dataclasses.fields(self)
            if all(getattr(self, k) in v for k, v in f.metadata.get("when", {}).items())
        ]

    # -- round trips -------------------------------------------------------------------
    def to_dict(self) -> dict:
        """All fields as a plain dict (JSON-compatible values)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls, d: Mapping, base: RunConfig | None = None) -> RunConfig:
        """Config from a (possibly partial) mapping; missing fields come from `base`.

        String values are parsed into the field's type ("0.5", "true", "none"), so the
        mapping may come from a URL query or a CLI. Unknown keys raise ConfigError.
        """
        if not isinstance(d, Mapping):
            raise ConfigError(None, d, "expected a mapping of field names to values")
        known = _field_types()
        unknown = [k for k in d if k not in known]
        if unknown:
            raise ConfigError(
                str(unknown[0]), d[unknown[0]],
                f"unknown field {unknown[0]!r}; known fields: {', '.join(known)}",
            )
        values = (base or cls()).to_dict()
        for k, v in d.items():
            values[k] = parse_str(k, v, known[k]) if isinstance(v, str) else v
        return cls(**values)

    def to_json(self, indent: int | None = 2) -> str:
        """JSON object of all fields (see `to_dict`)."""
        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_json(cls, s: str) -> RunConfig:
        """Inverse of `to_json`; malformed JSON raises ConfigError."""
        try:
            d = json.loads(s)
        except (json.JSONDecodeError, TypeError) as e:
            raise ConfigError(None, s if isinstance(s, str) and len(s) < 80 else "<text>",
                              f"expected a JSON object ({e})") from None
        return cls.from_dict(d)

    def to_query(self, preset: str | None = None) -> str:
        """URL query string of the fields that differ from the defaults.

        With `preset` (a key of PRESETS) the string starts with ``preset=NAME`` and holds
        only the fields that differ from that preset: short, shareable links.
        """
        head = {}
        ref = RunConfig()
        if preset is not None:
            ref = _preset(preset)
            head["preset"] = preset
        base = ref.to_dict()
        items = {k: format_value(v) for k, v in self.to_dict().items() if v != base[k]}
        return urlencode({**head, **items})

    @classmethod
    def from_query(
        cls, q: str | Mapping, base: RunConfig | None = None, strict: bool = True,
    ) -> RunConfig:
        """Inverse of `to_query`.

        `q` is a query string ("?lr=0.1&steps=100" or without "?"), or a mapping of
        str -> str or str -> list[str] (as Streamlit's ``st.query_params`` or
        ``urllib.parse.parse_qs`` give); of repeated keys the last value wins. A
        ``preset`` key starts from that preset instead of `base` (default: defaults).
        With ``strict=False`` keys that are not fields (e.g. an app's page name) are
        ignored instead of raising ConfigError.
        """
        d = query_dict(q)
        if "preset" in d:
            base = _preset(d.pop("preset"))
        if not strict:
            d = {k: v for k, v in d.items() if k in _field_types()}
        return cls.from_dict(d, base=base)

    @classmethod
    def from_query_partial(
        cls, q: str | Mapping, base: RunConfig | None = None,
    ) -> tuple[RunConfig, list[ConfigError]]:
        """Like `from_query`, but an entry that is unknown or not allowed is left out instead
        of failing the whole query: (the config from every other entry, one ConfigError per
        entry left out). For shared links, where one typo or a tracking parameter should not
        throw the rest away. Entries that are only allowed together (``n_train=50`` with
        ``batch_size=32`` on a preset with batch size 64) are applied together."""
        d = query_dict(q)
        errors: list[ConfigError] = []
        if "preset" in d:
            try:
                base = _preset(d.pop("preset"))
            except ConfigError as exc:
                errors.append(exc)
        config = base or cls()
        known = _field_types()
        for k in [k for k in d if k not in known]:
            errors.append(ConfigError(k, d.pop(k), "not a setting (left out)"))
        try:
            return cls.from_dict(d, base=config), errors
        except ConfigError:
            pass
        # apply what validates on its own, then retry the rest on top, until nothing changes
        pending = dict(d)
        progress = True
        while pending and progress:
            progress = False
            for k in list(pending):
                try:
                    config = cls.from_dict({k: pending[k]}, base=config)
                except ConfigError:
                    continue
                del pending[k]
                progress = True
        for k, v in pending.items():
            try:
                cls.from_dict({k: v}, base=config)
            except ConfigError as exc:
                # the validator may name the field that conflicts (already applied), not k
                errors.append(exc if exc.field == k else ConfigError(k, v, f"left out ({exc})"))
        return config, errors

    def replace(self, **changes) -> RunConfig:
        """Copy with `changes` applied and validated; unknown names raise ConfigError."""
        known = _field_types()
        for k, v in changes.items():
            if k not in known:
                raise ConfigError(k, v, f"unknown field {k!r}; known fields: {', '.join(known)}")
        return dataclasses.replace(self, **changes)


# -- field metadata helpers ----------------------------------------------------------

def field_help() -> dict[str, dict]:
    """Field name -> metadata dict (help, group, choices, bounds) with the default added."""
    return {
        f.name: {**f.metadata, "default": f.default, "type": type_name(_field_types()[f.name])}
        for f in dataclasses.fields(RunConfig)
    }


def fields_by_group() -> dict[str, list[str]]:
    """Group name -> field names in declaration order (for building a sidebar)."""
    out: dict[str, list[str]] = {g: [] for g in GROUPS}
    for f in dataclasses.fields(RunConfig):
        out[f.metadata["group"]].append(f.name)
    return out


def _field_types() -> dict[str, tuple[type, bool]]:
    """RunConfig's field name -> (base type, optional)."""
    return field_types(RunConfig)


# The presets are RunConfigs, so their module imports this one: imported last, once
# RunConfig exists (ijr_core/__init__ imports this module first, so the order always holds).
from ijr_core.presets import PRESETS  # noqa: E402
from ijr_core.presets import preset as _preset  # noqa: E402
