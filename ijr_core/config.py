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

The name tuples (`DATASET_NAMES`, `MODEL_NAMES`, ...) are the single source of allowed
names; `data.DATASETS` and `models.MODELS` register exactly these names (tested), so this
module never imports the heavy modules and there are no import cycles.
"""

from __future__ import annotations

import dataclasses
import json
import math
import numbers
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from urllib.parse import parse_qs, urlencode

__all__ = [
    "ACTIVATION_NAMES",
    "DATASET_NAMES",
    "DEVICE_NAMES",
    "FILE_DATASETS",
    "GROUPS",
    "LIMITS",
    "IMAGE_DATASETS",
    "LOSS_NAMES",
    "MODEL_NAMES",
    "OPTIMIZER_NAMES",
    "PRESETS",
    "TOY_DATASETS",
    "ConfigError",
    "RunConfig",
    "field_help",
    "fields_by_group",
    "param_count",
    "resolve_device",
    "usable_cores",
]

DATASET_NAMES = (
    "digits", "moons", "circles", "blobs", "spirals", "mnist", "fashion-mnist", "cifar10", "csv",
)
IMAGE_DATASETS = ("digits", "mnist", "fashion-mnist", "cifar10")
FILE_DATASETS = ("mnist", "fashion-mnist", "cifar10", "csv")
TOY_DATASETS = ("moons", "circles", "blobs", "spirals")
MODEL_NAMES = ("mlp", "cnn", "linear")
OPTIMIZER_NAMES = ("gd", "sgd", "sam", "asam", "ejr", "jacobian-penalty")
ACTIVATION_NAMES = ("tanh", "relu", "gelu", "elu", "softplus")
LOSS_NAMES = ("ce", "mse")
DEVICE_NAMES = ("auto", "cpu", "cuda", "mps")
PROBE_MODES = ("train", "eval")  # what they mean: ijr_core/model_view.py
GROUPS = ("data", "model", "optimizer", "probes", "advanced")


class ConfigError(ValueError):
    """A configuration value is not allowed.

    Attributes: ``field`` (name of the offending field, or None for a whole-config
    problem), ``value`` (the bad value) and ``allowed`` (what would be accepted).
    """

    def __init__(self, field_name: str | None, value: object, allowed: str):
        self.field = field_name
        self.value = value
        self.allowed = allowed
        where = f"{field_name}: " if field_name else ""
        super().__init__(f"{where}{value!r} is not allowed; {allowed}")

    def __reduce__(self):  # rebuilt from its parts when sent between processes
        return type(self), (self.field, self.value, self.allowed)


# -- limits: the most work one configuration may ask for -------------------------------
# The app is served to a room and opens links and uploads from anyone, so one click must
# not take the server's memory or CPU for hours. RunConfig enforces every limit (those that
# need the data's shape also when the dataset is loaded and the model built), each with a
# ConfigError saying which setting to lower.
MAX_SAMPLES = 100_000  # n_train + n_test
MAX_FEATURES = 4096  # input dimension (columns of a CSV)
MAX_CLASSES = 100  # classes of a dataset (labels of a CSV)
MAX_DATA_VALUES = 50_000_000  # (n_train + n_test) × features: 200 MB as float32
MAX_PARAMS = 2_000_000  # trainable parameters of the model
MAX_CHECKPOINTS = 1000  # checkpoint_limit
MAX_STORED_VALUES = 100_000_000  # checkpoint_limit × (parameters + 6 × probe_size): 400 MB
MAX_PROBE_WORK = 2e12  # probes × probe_size × parameters (~ an hour of probing)
LIMITS = {
    "samples": MAX_SAMPLES, "features": MAX_FEATURES, "classes": MAX_CLASSES,
    "data_values": MAX_DATA_VALUES, "params": MAX_PARAMS,
    "checkpoints": MAX_CHECKPOINTS, "stored_values": MAX_STORED_VALUES,
    "probe_work": MAX_PROBE_WORK,
}
# Input dimension, classes and image shape of the datasets whose shape is fixed (csv:
# known once the file is read, then checked by `check_work` again).
_SHAPES = {
    "digits": (64, 10, (1, 8, 8)), "mnist": (784, 10, (1, 28, 28)),
    "fashion-mnist": (784, 10, (1, 28, 28)), "cifar10": (3072, 10, (3, 32, 32)),
    **{name: (2, 2, None) for name in TOY_DATASETS},
}


def param_count(
    model: str, width: int, depth: int, in_dim: int, n_classes: int,
    image_shape: tuple[int, int, int] | None = None,
) -> int:
    """Trainable parameters of `models.build_model` (weights + biases), without building it.

    mlp: D·w + w + (depth−1)(w² + w) + w·K + K; linear: D·K + K; cnn: 3×3 convs
    C·w·9 + w, then (depth−1)(9w² + w), then a linear layer from w·h·w' to K, where each
    conv halves the side (rounding up)."""
    if model == "linear":
        return in_dim * n_classes + n_classes
    if model == "cnn" and image_shape is not None:
        c, h, w = image_shape
        for _ in range(depth):
            h, w = (h - 1) // 2 + 1, (w - 1) // 2 + 1
        convs = c * width * 9 + width + (depth - 1) * (9 * width * width + width)
        return convs + width * h * w * n_classes + n_classes
    hidden = in_dim * width + width + (depth - 1) * (width * width + width)
    return hidden + width * n_classes + n_classes


def check_work(config: RunConfig, in_dim: int, n_classes: int, image_shape=None) -> None:
    """Raise ConfigError when `config` on data of this shape asks for more than LIMITS."""
    n = config.n_train + config.n_test
    if in_dim > MAX_FEATURES:
        raise ConfigError("data_path", config.data_path,
                          f"the data has {in_dim} features; at most {MAX_FEATURES}")
    if n_classes > MAX_CLASSES:
        raise ConfigError("data_path" if config.dataset == "csv" else "n_classes", n_classes,
                          f"{n_classes} classes; at most {MAX_CLASSES}")
    if n * in_dim > MAX_DATA_VALUES:
        raise ConfigError("n_train", config.n_train,
                          f"(n_train + n_test) × {in_dim} features = {n * in_dim:,} values; "
                          f"at most {MAX_DATA_VALUES:,}: use fewer samples")
    p = param_count(config.model, config.width, config.depth, in_dim, n_classes, image_shape)
    if p > MAX_PARAMS:
        raise ConfigError("width", config.width,
                          f"the {config.model} has {p:,} parameters at width {config.width}, "
                          f"depth {config.depth}; at most {MAX_PARAMS:,}: lower width or depth")
    stored = config.checkpoint_limit * (p + 6 * min(config.probe_size, config.n_train))
    if stored > MAX_STORED_VALUES:
        raise ConfigError("checkpoint_limit", config.checkpoint_limit,
                          f"keeping {config.checkpoint_limit} checkpoints of {p:,} parameters "
                          f"and the per-sample values is {stored:,} values; at most "
                          f"{MAX_STORED_VALUES:,}: lower checkpoint_limit or the model size")
    probes = config.steps // config.probe_every + 2
    work = probes * min(config.probe_size, config.n_train) * p
    if work > MAX_PROBE_WORK:
        raise ConfigError("probe_every", config.probe_every,
                          f"{probes:,} probes × probe_size × {p:,} parameters = {work:.3g}; at "
                          f"most {MAX_PROBE_WORK:.3g}: probe less often or on fewer samples")


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
            value = _check_type(f.name, getattr(self, f.name), _field_types()[f.name])
            object.__setattr__(self, f.name, value)
            _check_bounds(f, value)
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
        if self.dataset in _SHAPES:
            d, k, image = _SHAPES[self.dataset]
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
            values[k] = _parse_str(k, v, known[k]) if isinstance(v, str) else v
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
        items = {k: _format(v) for k, v in self.to_dict().items() if v != base[k]}
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
        d = _query_dict(q)
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
        d = _query_dict(q)
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
        f.name: {**f.metadata, "default": f.default, "type": _type_name(_field_types()[f.name])}
        for f in dataclasses.fields(RunConfig)
    }


def fields_by_group() -> dict[str, list[str]]:
    """Group name -> field names in declaration order (for building a sidebar)."""
    out: dict[str, list[str]] = {g: [] for g in GROUPS}
    for f in dataclasses.fields(RunConfig):
        out[f.metadata["group"]].append(f.name)
    return out


# -- typing and validation -----------------------------------------------------------

@cache
def _field_types() -> dict[str, tuple[type, bool]]:
    """Field name -> (base type, optional) from the resolved annotations."""
    hints = typing.get_type_hints(RunConfig)
    out = {}
    for f in dataclasses.fields(RunConfig):
        t = hints[f.name]
        args = typing.get_args(t)
        if typing.get_origin(t) in (typing.Union, types.UnionType) and type(None) in args:
            (base,) = [a for a in args if a is not type(None)]
            out[f.name] = (base, True)
        else:
            out[f.name] = (t, False)
    return out


def _type_name(tp: tuple[type, bool]) -> str:
    base, optional = tp
    return base.__name__ + (" or None" if optional else "")


def _check_type(name: str, value, tp: tuple[type, bool]):
    """Return `value` as the field's plain Python type, else raise ConfigError.

    Integers (also numpy's) are accepted for float fields; bools are never numbers;
    an empty string of an optional string field means None.
    """
    base, optional = tp
    if optional and (value is None or (base is str and value == "")):
        return None
    if isinstance(value, bool) or value is None:
        ok = base is bool and value is not None
    elif base is int:
        ok = isinstance(value, numbers.Integral)
    elif base is float:
        ok = isinstance(value, numbers.Real)
    else:
        ok = isinstance(value, base)
    if not ok:
        raise ConfigError(name, value, f"expected {_type_name(tp)}, got {type(value).__name__}")
    value = base(value)
    if base is float and not math.isfinite(value):
        raise ConfigError(name, value, "expected a finite number")
    return value


def _check_bounds(f: dataclasses.Field, value) -> None:
    """Enforce `choices` and `min`/`max` of the field's metadata."""
    if value is None:
        return
    m = f.metadata
    choices = m.get("choices")
    if choices is not None:
        if f.name == "device" and _is_cuda_index(value):
            return
        if value not in choices:
            raise ConfigError(f.name, value, f"known {f.name} names: {', '.join(choices)}")
        return
    lo, hi = m.get("min"), m.get("max")
    lo_bad = lo is not None and (value <= lo if m.get("min_open") else value < lo)
    hi_bad = hi is not None and (value >= hi if m.get("max_open") else value > hi)
    if lo_bad or hi_bad:
        raise ConfigError(f.name, value, f"must be in {_interval(m)}")


def _interval(m: Mapping) -> str:
    lo, hi = m.get("min"), m.get("max")
    left = "(" if m.get("min_open") or lo is None else "["
    right = ")" if m.get("max_open") or hi is None else "]"
    return f"{left}{'-inf' if lo is None else lo}, {'inf' if hi is None else hi}{right}"


def _is_cuda_index(value: str) -> bool:
    head, _, idx = value.partition(":")
    return head == "cuda" and idx.isdigit()


_TRUE = ("true", "1", "yes", "on")
_FALSE = ("false", "0", "no", "off")


def _parse_str(name: str, s: str, tp: tuple[type, bool]):
    """Parse a query/CLI string into the field's type; ConfigError if it cannot be."""
    base, optional = tp
    text = s.strip()
    if base is str:
        return s
    if optional and text.lower() in ("", "none", "null"):
        return None
    try:
        if base is bool:
            if text.lower() in _TRUE:
                return True
            if text.lower() in _FALSE:
                return False
            raise ValueError
        if base is int:
            return int(text)
        if base is float:
            return float(text)
    except ValueError:
        pass
    raise ConfigError(name, s, f"expected {_type_name(tp)}")


def _format(v) -> str:
    """Value -> query string text that `_parse_str` maps back to the same value."""
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    return repr(v) if isinstance(v, float) else str(v)


def _query_dict(q: str | Mapping) -> dict[str, str]:
    """A query string or mapping (str -> str or list of str) as str -> str, the last of
    repeated keys winning."""
    if isinstance(q, str):
        q = parse_qs(q.lstrip("?"), keep_blank_values=True)
    if not isinstance(q, Mapping):
        raise ConfigError(None, q, "expected a query string or a mapping")
    d = {}
    for k, v in q.items():
        if isinstance(v, (list, tuple)):
            if not v:
                continue
            v = v[-1]
        d[k] = v if isinstance(v, str) else str(v)
    return d


def _preset(name: str) -> RunConfig:
    if name not in PRESETS:
        raise ConfigError("preset", name, f"known presets: {', '.join(PRESETS)}")
    return PRESETS[name]


# -- devices -------------------------------------------------------------------------

def usable_cores() -> int:
    """CPU cores this process may run on (its affinity mask where the OS has one)."""
    import os

    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


def registrar(registry: dict, known: tuple[str, ...]):
    """``register(name)`` decorators filling ``registry``; a name must be listed in ``known``
    (the tuples above, which RunConfig validates against)."""

    def register(name: str):
        assert name in known, f"add {name!r} to the names in config.py"

        def deco(fn):
            registry[name] = fn
            return fn

        return deco

    return register


def resolve_device(name: str = "auto"):
    """torch.device for `name`: "auto" picks cuda, then mps, then cpu.

    Asking explicitly for a device that is not available raises ConfigError.
    """
    import torch

    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise ConfigError("device", name, "MPS is not available here; use auto or cpu")
        return torch.device("mps")
    if name == "cuda" or _is_cuda_index(name):
        if not torch.cuda.is_available():
            raise ConfigError("device", name, "CUDA is not available here; use auto or cpu")
        idx = int(name.partition(":")[2] or 0)
        if idx >= torch.cuda.device_count():
            raise ConfigError("device", name, f"only {torch.cuda.device_count()} CUDA devices")
        return torch.device(name)
    raise ConfigError("device", name, f"known device names: {', '.join(DEVICE_NAMES)}, cuda:N")


# -- presets -------------------------------------------------------------------------

_DIGITS = RunConfig()  # SCIENCE.md's digits setting: 30 % label noise, η = 0.5
# The default: the digits setting with more label noise and a smaller step, tuned by
# measurement (notes/issue14.md) to show the whole textbook picture in 800 steps.
_EOS = RunConfig(name="edge-of-stability", label_noise=0.5, lr=0.3)

PRESETS: dict[str, RunConfig] = {
    # Digits, 1000 samples, 50 % label noise, MLP 64-128-128-10 tanh, GD η = 0.3. Measured
    # (seeds 0/1/2, 800 steps, ≈ 4 s on a quiet 2-core CPU): ‖H‖ starts at 0.08 · 2/η,
    # crosses 0.9 · 2/η at step ≈ 300, peaks at 1.25-1.36 · 2/η and stays within 0.9-1.2 ·
    # 2/η (median) for ≥ 0.6 of the run; ⟨‖M‖⟩ rises 0.12 → 0.27 and falls to 0.05: phases
    # I (0-300) → II (300-600) → III. With 30 % noise and η = 0.5 ‖H‖ overshoots to 1.6 · 2/η
    # and then falls to 0.4 · 2/η; with less noise it never reaches 2/η (the fit turns pure
    # first).
    "edge-of-stability": _EOS,
    # Same data and η with mini-batches of 32 (epoch-wise shuffling): the full-batch ‖H‖
    # stays at ≤ 0.67 · 2/η over 800 steps for seeds 0-2, where GD overshoots to 1.57 · 2/η.
    "sgd-vs-gd": _DIGITS.replace(name="sgd-vs-gd", optimizer="sgd", batch_size=32),
    # EJR on an SGD base (batch 64); compare with sgd / sam by changing `optimizer` only.
    # Measured after 800 steps, seeds 0/1: final ⟨‖J‖²⟩ ≈ 700 (EJR), ≈ 120 (SAM) against
    # ≈ 1780 (SGD); test accuracy 0.71-0.75 / 0.86-0.88 / 0.67-0.72. At ρ = 0.05 EJR is
    # indistinguishable from SGD (⟨‖J‖²⟩ 1740), hence ρ = 1.
    "ejr-vs-sam": _DIGITS.replace(name="ejr-vs-sam", optimizer="ejr", batch_size=64, rho=1.0),
    # 2-D data for decision maps. Measured (seeds 0-2): ‖H‖ starts near 1.9-2.3, crosses
    # 0.9 · 2/η = 6 by step 175 and then hovers around 2/η = 6.7 (6.0-7.3).
    "two-moons": RunConfig(
        name="two-moons", dataset="moons", n_train=500, n_test=500, noise=0.2,
        label_noise=0.2, width=64, depth=3, lr=0.3, steps=800, probe_every=25,
        probe_size=500,
    ),
    # Base of learning-rate sweeps: the default, probed a little more often. Measured at
    # η = 0.2 / 0.5 / 0.8: ‖H‖ reaches 2/η at step ≈ 540 / 140 / 60; above η ≈ 0.5 it
    # overshoots to ≈ 1.5 · 2/η before settling (the demo sweep stays at η ≤ 0.5).
    "lr-sweep": _EOS.replace(name="lr-sweep", probe_every=20),
}
