"""Limits: the most work one configuration may ask for.

The app is served to a room and opens links and uploads from anyone, so one click must not
take the server's memory or CPU for hours. RunConfig enforces every limit (those that need
the data's shape also when the dataset is loaded and the model built), each with a
ConfigError saying which setting to lower.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ijr_core.config_names import TOY_DATASETS, ConfigError

if TYPE_CHECKING:
    from ijr_core.config import RunConfig

__all__ = [
    "DATASET_SHAPES", "LIMITS", "MAX_CHECKPOINTS", "MAX_CLASSES", "MAX_DATA_VALUES",
    "MAX_FEATURES", "MAX_PARAMS", "MAX_PROBE_WORK", "MAX_SAMPLES", "MAX_STORED_VALUES",
    "check_work", "param_count",
]

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
DATASET_SHAPES = {
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
