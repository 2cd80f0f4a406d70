"""Image grids of inputs / reconstructions / prior samples, sent to the run's logger.

TensorBoard is used when the Trainer logs to it; otherwise the grid is saved as a PNG under
``<log_dir>/images/``, so nothing here requires tensorboard.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from torch import Tensor


def _plane(images: Tensor) -> np.ndarray:
    """``(N, C, *S)`` -> ``(N, Y, X)``: first channel, middle Z slice for 3D, in [0, 1]."""
    x = images.detach().float().cpu()[:, 0]
    if x.ndim == 4:
        x = x[:, x.shape[1] // 2]
    return ((x.clamp(-1.0, 1.0) + 1.0) / 2.0).numpy()


def image_grid(rows: list[Tensor], pad: int = 2) -> np.ndarray:
    """Tile rows of images ``(N, C, *S)`` (values in [-1, 1]) into one ``(H, W)`` array in [0, 1].

    Each row is one kind (inputs, reconstructions, samples); rows may differ in ``N``.
    """
    planes = [_plane(r) for r in rows]
    h, w = planes[0].shape[1:]
    n = max(p.shape[0] for p in planes)
    grid = np.ones((len(planes) * (h + pad) + pad, n * (w + pad) + pad), dtype=np.float32)
    for i, plane in enumerate(planes):
        for j, img in enumerate(plane):
            top, left = pad + i * (h + pad), pad + j * (w + pad)
            grid[top : top + h, left : left + w] = img
    return grid


def log_image_grid(trainer, grid: np.ndarray, tag: str = "val/inputs_recons_samples") -> None:
    """Send ``grid`` ``(H, W)`` to every TensorBoard logger, else save a PNG in the log dir."""
    step = trainer.global_step
    sent = False
    for logger in trainer.loggers:
        experiment = getattr(logger, "experiment", None)
        if hasattr(experiment, "add_image"):
            experiment.add_image(tag, grid[None], step)
            sent = True
    if sent:
        return
    from matplotlib.image import imsave

    # not trainer.log_dir: it broadcasts across ranks, and only rank 0 gets here (DDP deadlock)
    logger = trainer.logger
    folder = Path(getattr(logger, "log_dir", None) or trainer.default_root_dir) / "images"
    folder.mkdir(parents=True, exist_ok=True)
    imsave(folder / f"grid_step{step:07d}.png", grid, cmap="gray", vmin=0.0, vmax=1.0)
