"""Views recomputed from a run's parameter snapshots: predictions, 2-D decision maps and
image thumbnails at a scrubbed checkpoint.

The model is rebuilt with ``ijr_core.models.build_model`` from the run's config and the
snapshot loaded into it; ‖M‖ of a prediction p is ``ijr_core.curvature.m_norm(p)``, the
largest eigenvalue of diag(p) − ppᵀ. Nothing here trains. Datasets are cached per config.
"""

from __future__ import annotations

import functools
import io

import numpy as np
import torch

from ijr_core.config import RunConfig
from ijr_core.curvature import m_norm
from ijr_core.data import load_dataset
from ijr_core.models import build_model
from ijr_core.protocol import RunLike
from ijr_core.run import RunFormatError


@functools.lru_cache(maxsize=8)
def _dataset_for(config_json: str):
    return load_dataset(RunConfig.from_json(config_json))


def dataset_of(run: RunLike):
    """The run's dataset (rebuilt from its config; deterministic given data_seed). A data
    file outside the app's data folders is never read (the run may be an upload)."""
    from app.session import check_data_path

    check_data_path(run.config)
    return _dataset_for(run.config.to_json())


def has_params(run: RunLike) -> bool:
    return bool(run.params)


def model_at(run: RunLike, index: int) -> torch.nn.Module:
    """The run's model with the parameter snapshot of checkpoint ``index`` loaded (CPU)."""
    dataset = dataset_of(run)
    cfg = run.config.replace(device="cpu")
    torch.manual_seed(cfg.seed)
    model = build_model(cfg, dataset)
    snapshot = run.params[index]
    with torch.no_grad():
        for name, p in model.named_parameters():
            value = np.asarray(snapshot[name]) if name in snapshot else None
            if value is None or value.shape != tuple(p.shape):
                have = "missing" if value is None else f"of shape {value.shape}"
                raise RunFormatError(
                    f"params.npz: parameter {name!r} is {have}; the run's config builds it "
                    f"with shape {tuple(p.shape)}"
                )
            p.copy_(torch.as_tensor(value))
        for name, b in model.named_buffers():  # e.g. batch-norm statistics (newer snapshots)
            value = np.asarray(snapshot[name]) if name in snapshot else None
            if value is not None and value.shape == tuple(b.shape):
                b.copy_(torch.as_tensor(value))
    return model.eval()


@torch.no_grad()
def probabilities(model: torch.nn.Module, X: torch.Tensor, chunk: int = 4096) -> torch.Tensor:
    """softmax(model(X)) in chunks, float64."""
    out = [torch.softmax(model(X[i : i + chunk]).double(), dim=1) for i in range(0, len(X), chunk)]
    return torch.cat(out) if out else torch.zeros(0, 1, dtype=torch.float64)


def predictions_at(run: RunLike, index: int) -> np.ndarray:
    """Predicted class of each recorded sample at checkpoint ``index`` (−1 without params)."""
    if not has_params(run):
        return np.full(len(run.sample_ids), -1)
    X = dataset_of(run).X_train[torch.as_tensor(np.asarray(run.sample_ids))]
    return probabilities(model_at(run, index), X).argmax(1).numpy()


def decision_grid(
    run: RunLike, index: int, resolution: int = 70, margin: float = 0.15
) -> tuple[dict, dict]:
    """(grid, points) for :func:`app.charts.decision_map.decision_map_chart` on a 2-D dataset.

    The grid spans the training inputs (in the model's standardised coordinates) plus
    ``margin`` of their range; at each grid point m = ‖M(p)‖ and pred = argmax p."""
    dataset = dataset_of(run)
    X = dataset.X_train.numpy()
    lo, hi = X.min(0), X.max(0)
    pad = (hi - lo) * margin
    xs = np.linspace(lo[0] - pad[0], hi[0] + pad[0], resolution)
    ys = np.linspace(lo[1] - pad[1], hi[1] + pad[1], resolution)
    gx, gy = np.meshgrid(xs, ys)
    G = torch.as_tensor(np.stack([gx.ravel(), gy.ravel()], 1), dtype=torch.float32)
    p = probabilities(model_at(run, index), G)
    grid = {
        "xs": xs,
        "ys": ys,
        "m": m_norm(p).reshape(gx.shape).numpy(),
        "pred": p.argmax(1).reshape(gx.shape).numpy(),
    }
    points = {
        "x": X[:, 0],
        "y": X[:, 1],
        "label": dataset.y_train.numpy(),
        "noisy": np.asarray(dataset.noisy, dtype=bool),
        "sample": np.arange(len(X)),
    }
    return grid, points


def thumbnail_png(run: RunLike, sample_id: int, scale: int = 4) -> bytes:
    """PNG of one training image (min–max scaled, nearest-neighbour upscaled).

    The standardisation is undone first: per-pixel (x − μ)/σ turns a rarely inked border
    pixel into a huge outlier that would leave the rest of the image black."""
    from PIL import Image

    dataset = dataset_of(run)
    shape = dataset.image_shape or (1, *_square(dataset.input_shape))
    x = dataset.X_train[int(sample_id)].numpy().astype(np.float64).reshape(-1)
    x = x * np.asarray(dataset.std, dtype=np.float64).reshape(-1) + np.asarray(
        dataset.mean, dtype=np.float64
    ).reshape(-1)
    x = x.reshape(shape)
    x = (x - x.min()) / (np.ptp(x) or 1.0)
    arr = (np.moveaxis(x, 0, -1) * 255).astype(np.uint8)
    img = Image.fromarray(arr[..., 0] if arr.shape[-1] == 1 else arr)
    img = img.resize((img.width * scale, img.height * scale), Image.NEAREST)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def _square(shape) -> tuple[int, int]:
    n = int(np.prod(shape))
    side = int(round(n**0.5))
    return (side, n // side)
