"""Results folders that follow the contract of docs (COMMON: results folder + provenance).

The provenance writer lands separately, so these fixtures write the contract themselves:
OME-Zarr outputs carry ``attrs["cellvae"]["provenance"]`` and ``cells.parquet`` carries the
schema metadata ``b"cellvae"`` = JSON ``{"provenance": {...}}``, with absolute input paths.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from tests.inference.helpers import save_checkpoint, write_test_image

VOXEL = 0.5  # µm per pixel of every fixture image
STRIDE = 8  # blur map stride (window 16)


def provenance(verb: str, inputs: dict[str, Path]) -> dict:
    """A provenance dict as the contract fixes it."""
    return {
        "verb": verb,
        "cellvae_version": "test",
        "created": "2026-01-01T00:00:00Z",
        "command": ["cellvae", verb],
        "inputs": {role: str(Path(p).resolve()) for role, p in inputs.items()},
    }


def add_zarr_provenance(path: Path, prov: dict) -> None:
    """Merge ``prov`` into ``attrs["cellvae"]`` of the OME-Zarr group at ``path``."""
    import zarr

    group = zarr.open_group(str(path), mode="r+")
    group.attrs["cellvae"] = {**dict(group.attrs.get("cellvae") or {}), "provenance": prov}


def blob_image(rng: np.random.Generator, shape=(96, 96), n=9) -> tuple[np.ndarray, np.ndarray]:
    """A uint8 image of ``n`` textured discs on a grid and their labels 1..n (shape ``yx``)."""
    image = rng.integers(10, 30, shape).astype(np.float64)
    labels = np.zeros(shape, np.int32)
    side = int(np.ceil(np.sqrt(n)))
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    for k in range(n):
        cy = (k // side + 0.5) * shape[0] / side
        cx = (k % side + 0.5) * shape[1] / side
        disc = (yy - cy) ** 2 + (xx - cx) ** 2 < (0.3 * shape[0] / side) ** 2
        labels[disc] = k + 1
        image[disc] += 120 + 60 * np.sin(xx[disc] * (0.5 + 0.1 * k))
    return image.clip(0, 255).astype(np.uint8), labels


#: the 2D preset's network (configs/2d_hier_dlogistic.yaml), untrained: as slow as the real one
PRESET_2D = {
    "arch": "hierarchical",
    "likelihood": "dlogistic",
    "widths": (16, 32, 64),
    "latent_channels": 4,
    "global_dim": 32,
    "patch_size": 64,
    "finest_latent": "full",
}


def write_results(
    root: Path,
    rng: np.random.Generator,
    drop: tuple[str, ...] = (),
    labels_override: np.ndarray | None = None,
    model: dict | None = None,
) -> Path:
    """Inputs under ``root/inputs`` and one results folder ``root/runs/img/preset``.

    ``drop`` leaves out result files; ``labels_override`` stores other labels than the ones
    the table was computed on (a table that does not match its labels); ``model`` overrides
    the tiny test network's hyper-parameters (e.g. :data:`PRESET_2D`).
    """
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq
    import tifffile
    from scipy.ndimage import gaussian_filter

    from cellvae.inference.embed import embed_file
    from cellvae.io.labels import write_labels
    from cellvae.io.omezarr import write_image
    from cellvae.metrics.sharpness import blur_map

    inputs = root / "inputs"
    inputs.mkdir(parents=True)
    image, labels = blob_image(rng)
    img_path = write_test_image(inputs / "image.ome.zarr", image, "yx")
    write_labels(img_path, labels, name="cells")
    lab_path = img_path / "labels" / "cells"
    ckpt = save_checkpoint(inputs / "model.ckpt", **(model or {}))
    out = root / "runs" / "img" / "preset"
    out.mkdir(parents=True)
    recon = gaussian_filter(image.astype(np.float32), 1.5)
    voxel = {"y": VOXEL, "x": VOXEL}
    if "recon.ome.zarr" not in drop:
        write_image(out / "recon.ome.zarr", recon, "yx", voxel, n_levels=1)
        add_zarr_provenance(
            out / "recon.ome.zarr", provenance("reconstruct", {"input": img_path, "ckpt": ckpt})
        )
    bmap = blur_map(image, recon, 16, STRIDE)
    if "blurmap.ome.zarr" not in drop:
        map_voxel = {a: v * STRIDE for a, v in voxel.items()}
        write_image(out / "blurmap.ome.zarr", bmap.ratio.astype(np.float32), "yx", map_voxel)
        add_zarr_provenance(
            out / "blurmap.ome.zarr",
            provenance("blur", {"original": img_path, "reconstruction": out / "recon.ome.zarr"}),
        )
    if "blur.json" not in drop:
        summary = {
            "original": str(img_path),
            "axes": "yx",
            "analysed_axes": "yx",
            "window_px": 16,
            "stride_px": STRIDE,
            "global_hf_ratio": bmap.global_ratio,
            "worst_regions": bmap.worst_regions(3),
        }
        (out / "blur.json").write_text(json.dumps(summary))
    if "cells.parquet" not in drop:
        table = embed_file(ckpt, img_path, lab_path, out / "plain.parquet", progress=False)
        (out / "plain.parquet").unlink()
        meta = {
            "provenance": provenance("embed", {"input": img_path, "labels": lab_path, "ckpt": ckpt})
        }
        arrow = pa.Table.from_pandas(pd.DataFrame(table), preserve_index=False)
        arrow = arrow.replace_schema_metadata(
            {**(arrow.schema.metadata or {}), b"cellvae": json.dumps(meta).encode()}
        )
        pq.write_table(arrow, out / "cells.parquet")
    if labels_override is not None:
        import shutil

        shutil.rmtree(lab_path)
        write_labels(img_path, labels_override, name="cells", overwrite=True)
    if "samples.tif" not in drop:
        stack = rng.random((5, 16, 16), dtype=np.float32)  # as cellvae sample writes it
        tifffile.imwrite(out / "samples.tif", stack)
    (out / "report.md").write_text("# report\n")
    return out


def finetune_cells(out: Path, steps: int = 2) -> Path:
    """Re-embed ``out/cells.parquet`` of :func:`write_results` as ``cellvae embed --finetune``
    does; returns the fine-tuned model saved beside it (the table's recorded checkpoint)."""
    from cellvae.inference.embed import embed_file
    from cellvae.io.provenance import make_provenance, recording

    inputs = out.parents[2] / "inputs"
    image, ckpt = inputs / "image.ome.zarr", inputs / "model.ckpt"
    labels = image / "labels" / "cells"
    roles = {"input": image, "labels": labels, "ckpt": ckpt}
    with recording(make_provenance("embed", roles)):
        embed_file(
            ckpt, image, labels, out / "cells.parquet", overwrite=True, progress=False,
            finetune_steps=steps,
        )  # fmt: skip
    return out / "cells.finetuned.ckpt"


class TickGaps:
    """A Qt timer ticking every 5 ms while a ``with`` block runs the Qt event loop.

    The longest time between two ticks is how long the event loop was blocked. It is kept
    twice: in wall time (``longest_ms``), and in CPU time of the Qt thread
    (``longest_cpu_ms``), the work done on the Qt thread between two ticks: on a shared,
    busy machine the wall time also counts waiting for a core, which no code can avoid.
    """

    def __init__(self, interval_ms: int = 5) -> None:
        from qtpy.QtCore import QTimer

        self.timer = QTimer()
        self.timer.setInterval(interval_ms)
        self.timer.timeout.connect(self._tick)
        self.ticks: list[tuple[float, float]] = []

    def _tick(self) -> None:
        import time

        self.ticks.append((time.perf_counter(), time.thread_time()))

    def __enter__(self) -> TickGaps:
        self.ticks = []
        self._tick()
        self.timer.start()
        return self

    def __exit__(self, *exc) -> None:
        self.timer.stop()
        self._tick()

    @property
    def longest_ms(self) -> float:
        """The longest wall time between two ticks (start and end included), milliseconds."""
        wall = np.array([t for t, _ in self.ticks])
        return float(np.diff(wall).max() * 1e3) if len(wall) > 1 else 0.0

    @property
    def longest_cpu_ms(self) -> float:
        """The most CPU time the Qt thread spent between two ticks, milliseconds."""
        cpu = np.array([c for _, c in self.ticks])
        return float(np.diff(cpu).max() * 1e3) if len(cpu) > 1 else 0.0


def napari_insert_ms(viewer, repeats: int = 3) -> float:
    """Qt-thread CPU milliseconds napari itself takes to add one 64² image layer (median).

    Showing a result as a new layer costs at least this in one event-loop turn, whatever a
    widget does; on a busy shared machine it approaches 100 ms by itself.
    """
    import gc
    import time

    costs = []
    for _ in range(repeats):
        gc.collect()
        start = time.thread_time()
        layer = viewer.add_image(np.zeros((64, 64), np.float32), name="insert baseline")
        costs.append(time.thread_time() - start)
        viewer.layers.remove(layer)
    return float(np.median(costs) * 1e3)


def napari_show_ms(viewer, shape: tuple[int, ...], repeats: int = 2) -> float:
    """Qt-thread CPU milliseconds napari takes to add an image layer of ``shape`` and paint
    it (the worst of ``repeats``; a colour map no widget uses, so its shader is new too).

    The least one event-loop turn that shows a new result of that size can cost.
    """
    import gc
    import time

    from qtpy.QtWidgets import QApplication

    costs = []
    for _ in range(repeats):
        gc.collect()
        QApplication.processEvents()
        start = time.thread_time()
        layer = viewer.add_image(
            np.zeros(shape, np.float32), name="show baseline", colormap="cyan", blending="additive"
        )
        QApplication.processEvents()
        costs.append(time.thread_time() - start)
        viewer.layers.remove(layer)
        QApplication.processEvents()
    return float(np.max(costs) * 1e3)


def canvas_pixel(viewer, world) -> tuple[int, int]:
    """The canvas pixel ``(x, y)`` showing the 2D world point ``world`` ``(y, x)``."""
    from cellvae.napari.navigate import camera_of

    camera = camera_of(viewer)
    native = viewer.window._qt_viewer.canvas.native
    cy, cx = np.asarray(camera.center, float)[-2:]
    y, x = np.asarray(world, float)[-2:]
    return (
        round((x - cx) * camera.zoom + native.width() / 2),
        round((y - cy) * camera.zoom + native.height() / 2),
    )


def mouse(qtbot, viewer, press, release=None, shift: bool = False) -> None:
    """A real left click at world ``press`` ``(y, x)``, or a drag from it to ``release``."""
    from qtpy.QtCore import QPoint, Qt

    native = viewer.window._qt_viewer.canvas.native
    modifier = Qt.KeyboardModifier.ShiftModifier if shift else Qt.KeyboardModifier.NoModifier
    a = QPoint(*canvas_pixel(viewer, press))
    b = QPoint(*canvas_pixel(viewer, release if release is not None else press))
    qtbot.mousePress(native, Qt.MouseButton.LeftButton, modifier, a)
    if release is not None:
        for t in np.linspace(0, 1, 6)[1:]:
            qtbot.mouseMove(
                native,
                QPoint(round(a.x() + t * (b.x() - a.x())), round(a.y() + t * (b.y() - a.y()))),
            )
    qtbot.mouseRelease(native, Qt.MouseButton.LeftButton, modifier, b)
    qtbot.wait(50)
