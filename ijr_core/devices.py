"""Where a run computes: the CPU cores this process may use and the torch device of a
RunConfig's ``device`` name."""

from __future__ import annotations

from ijr_core.config_names import DEVICE_NAMES, ConfigError, is_cuda_index

__all__ = ["resolve_device", "usable_cores"]


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity mask where the OS has one)."""
    import os

    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


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
    if name == "cuda" or is_cuda_index(name):
        if not torch.cuda.is_available():
            raise ConfigError("device", name, "CUDA is not available here; use auto or cpu")
        idx = int(name.partition(":")[2] or 0)
        if idx >= torch.cuda.device_count():
            raise ConfigError("device", name, f"only {torch.cuda.device_count()} CUDA devices")
        return torch.device(name)
    raise ConfigError("device", name, f"known device names: {', '.join(DEVICE_NAMES)}, cuda:N")
