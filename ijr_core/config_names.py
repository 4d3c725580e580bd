"""The allowed names of RunConfig's choice fields (datasets, models, optimizers, ...), the
error a configuration that is not allowed raises, and the registrar of the loaders and
builders that go by these names.

The name tuples are the single source of allowed names: ``data.DATASETS`` and
``models.MODELS`` register exactly these names (tested), so the configuration never imports
the heavy modules and there are no import cycles.
"""

from __future__ import annotations

__all__ = [
    "ACTIVATION_NAMES", "DATASET_NAMES", "DEVICE_NAMES", "FILE_DATASETS", "GROUPS",
    "IMAGE_DATASETS", "LOSS_NAMES", "MODEL_NAMES", "OPTIMIZER_NAMES", "PROBE_MODES",
    "TOY_DATASETS", "ConfigError", "is_cuda_index", "registrar",
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


def is_cuda_index(value: str) -> bool:
    """True for a device name "cuda:N" (N a non-negative integer), beside DEVICE_NAMES."""
    head, _, idx = value.partition(":")
    return head == "cuda" and idx.isdigit()


def registrar(registry: dict, known: tuple[str, ...]):
    """``register(name)`` decorators filling ``registry``; a name must be listed in ``known``
    (the tuples above, which RunConfig validates against)."""

    def register(name: str):
        assert name in known, f"add {name!r} to the names in config_names.py"

        def deco(fn):
            registry[name] = fn
            return fn

        return deco

    return register
