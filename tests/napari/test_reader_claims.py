"""The reader claims results folders only: ordinary files open as without the plugin."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from cellvae.napari.reader import get_reader

napari = pytest.importorskip("napari")


@pytest.fixture
def installed(npe2pm):
    """npe2's plugin manager holding napari's builtins, napari-ome-zarr and cellvae, as
    after ``pip install 'cellvae[napari]'`` (the test session blocks plugin discovery)."""
    from importlib.metadata import entry_points

    from npe2 import PluginManifest

    for entry in entry_points(group="napari.manifest"):
        if entry.name in ("napari_builtins", "napari-ome-zarr", "cellvae"):
            npe2pm.register(PluginManifest.from_distribution(entry.dist.name))
    assert {"napari", "napari-ome-zarr", "cellvae"} <= set(npe2pm._manifests)
    return npe2pm


@pytest.fixture
def ordinary_files(tmp_path):
    """A PNG and a TIFF such as a user opens every day."""
    import tifffile
    from PIL import Image

    image = (np.arange(64 * 48) % 251).astype(np.uint8).reshape(64, 48)
    Image.fromarray(image).save(tmp_path / "cells.png")
    tifffile.imwrite(tmp_path / "cells.tif", image)
    return image, [tmp_path / "cells.png", tmp_path / "cells.tif"]


def test_ordinary_files_are_offered_to_napari_alone(installed, ordinary_files):
    from napari.plugins._npe2 import get_readers

    for path in ordinary_files[1]:
        readers = get_readers(str(path))
        assert readers and "cellvae" not in readers, (path.name, readers)
        assert get_reader(str(path)) is None


def test_ordinary_files_open_without_a_reader_choice(installed, ordinary_files):
    from napari.components import ViewerModel

    image, paths = ordinary_files
    viewer = ViewerModel()
    for path in paths:
        # raises MultipleReaderError (the GUI's "Choose reader" dialog) if two readers match
        (layer,) = viewer._open_or_raise_error([str(path)])
        np.testing.assert_array_equal(np.asarray(layer.data), image)


def test_a_results_folder_with_a_dot_in_its_name_is_claimed(installed, results_dir, tmp_path):
    from napari.plugins._npe2 import get_readers

    for name in ("run_beta0.5", "demo_2024.06"):
        copy = tmp_path / name
        shutil.copytree(results_dir, copy)
        assert "cellvae" in get_readers(str(copy))
        assert get_reader(str(copy)) is not None
    assert get_reader(str(results_dir / "recon.ome.zarr")) is None  # napari-ome-zarr's
