"""Synthetic mitochondria: thin branching tubules with a known answer, in 2D or 3D.

The generator draws networks of smooth random curves (persistent random walks that branch),
renders tubules 1-3 px wide by the distance of every pixel to the nearest centreline point,
blurs them with a Gaussian point-spread function, applies Poisson (shot) and Gaussian (read)
noise and quantises to ``bits``. Fine structure of known width is what no bundled real image
has; tests and experiments use it to measure what a model keeps and what it blurs.

Intensity model, per pixel, with ``s`` the PSF-blurred object scaled to a peak of 1::

    lam   = background + photons * s                 # expected photon count
    clean = gain * lam + offset                      # noise-free ground truth, output units
    image = quantise(gain * Poisson(lam) + offset + Normal(0, read_noise))

so in a flat region ``std(image - clean) ~ sqrt(gain * (clean - offset) + read_noise**2 + 1/12)``
(the camera model the noise-aware blur map uses, :mod:`cellvae.metrics.noise`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from cellvae.errors import check_choice, check_range

#: centreline sampling step, px; half a pixel so every pixel a curve crosses gets a point.
_STEP = 0.5
#: distance over which a tubule's direction decorrelates, px.
_PERSISTENCE = 40.0
#: branches of branches of ... up to this depth.
_MAX_GENERATIONS = 2


@dataclass
class SyntheticImage:
    """A synthetic image with its ground truth.

    Attributes
    ----------
    image : uint8 (``bits`` = 8) or uint16 array of ``shape``, noisy and quantised.
    clean : float32 array of ``shape``, the expected value of ``image`` (PSF-blurred, no noise).
    labels : int32 array of ``shape``, one id per tubule network (0 = background); the
        pre-PSF object mask, i.e. pixels within a tubule's radius of its centreline.
    widths : float64 ``(n_branches,)``, the diameter of every branch in px.
    branch_labels : int32 ``(n_branches,)``, the network id each branch belongs to.
    metadata : the generator's parameters, including the resolved ``gain``.
    """

    image: np.ndarray
    clean: np.ndarray
    labels: np.ndarray
    widths: np.ndarray
    branch_labels: np.ndarray
    metadata: dict = field(default_factory=dict)


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def _walk(
    starts: np.ndarray, dirs: np.ndarray, n_steps: np.ndarray, rng: np.random.Generator
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Persistent random walks, all advanced together; returns points and directions each."""
    kappa = np.sqrt(_STEP / _PERSISTENCE)
    n, ndim = starts.shape
    total = int(n_steps.max())
    pos = np.empty((total, n, ndim))
    head = np.empty((total, n, ndim))
    p, h = starts.astype(float), _unit(dirs.astype(float))
    noise = rng.normal(size=(total, n, ndim)) * kappa
    for t in range(total):
        pos[t], head[t] = p, h
        h = _unit(h + noise[t])
        p = p + _STEP * h
    points = [pos[: n_steps[i], i] for i in range(n)]
    heads = [head[: n_steps[i], i] for i in range(n)]
    return points, heads


def _branch_directions(parent: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Directions 30-80 degrees off ``parent`` (rows are unit vectors), to a random side."""
    side = rng.normal(size=parent.shape)
    side = _unit(side - np.sum(side * parent, axis=1, keepdims=True) * parent)
    angle = np.deg2rad(rng.uniform(30.0, 80.0, size=(len(parent), 1)))
    return np.cos(angle) * parent + np.sin(angle) * side


def _centrelines(
    shape: tuple[int, ...],
    n_tubules: int,
    length_range: tuple[float, float],
    width_range: tuple[float, float],
    branch_prob: float,
    rng: np.random.Generator,
) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    """Centreline points of every branch, with branch diameters and network ids."""
    ndim = len(shape)
    starts = rng.uniform(0, 1, size=(n_tubules, ndim)) * (np.array(shape) - 1)
    dirs = rng.normal(size=(n_tubules, ndim))
    lengths = rng.uniform(*length_range, size=n_tubules)
    network = np.arange(1, n_tubules + 1)
    all_points: list[np.ndarray] = []
    all_widths: list[np.ndarray] = []
    all_labels: list[np.ndarray] = []
    for generation in range(_MAX_GENERATIONS + 1):
        if len(starts) == 0:
            break
        steps = np.maximum((lengths / _STEP).astype(int), 2)
        points, heads = _walk(starts, dirs, steps, rng)
        all_points += points
        all_widths.append(rng.uniform(*width_range, size=len(points)))
        all_labels.append(network)
        if generation == _MAX_GENERATIONS:
            break
        n_branches = rng.binomial(steps, min(branch_prob * _STEP, 1.0))
        parent = np.repeat(np.arange(len(points)), n_branches)
        at = [rng.integers(0, steps[i]) for i in parent]
        starts = np.array([points[i][k] for i, k in zip(parent, at)]).reshape(-1, ndim)
        parent_dirs = np.array([heads[i][k] for i, k in zip(parent, at)]).reshape(-1, ndim)
        dirs = _branch_directions(parent_dirs, rng) if len(parent) else parent_dirs
        lengths = lengths[parent] * rng.uniform(0.3, 0.7, size=len(parent))
        network = network[parent]
    return all_points, np.concatenate(all_widths), np.concatenate(all_labels)


def _reflect(points: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Fold coordinates back into ``[0, n - 1]`` by mirroring, which keeps curves continuous."""
    top = np.array(shape, dtype=float) - 1
    folded = np.mod(points, 2 * top)
    return np.where(folded > top, 2 * top - folded, folded)


def _render(
    shape: tuple[int, ...],
    points: list[np.ndarray],
    radii: np.ndarray,
    branch_labels: np.ndarray,
    brightness: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Anti-aliased object (0-1 times brightness) and label mask from centreline points.

    Every pixel looks up its nearest centreline pixel (one Euclidean distance transform) and
    measures its distance to the curve through that pixel's sub-pixel point: the distance
    across the local tangent, plus whatever lies beyond the point's share of the curve along
    it (which rounds the tubule ends).
    """
    reflected = [_reflect(p, shape) for p in points]
    tangents = np.concatenate([_unit(np.gradient(p, axis=0) + 1e-9) for p in reflected])
    coords = np.concatenate(reflected)
    branch = np.repeat(np.arange(len(points)), [len(p) for p in points])
    seed = np.full(shape, -1, dtype=np.int64)
    seed[tuple(np.round(coords).astype(int).T)] = np.arange(len(coords))
    pixel_dist, nearest = ndimage.distance_transform_edt(seed < 0, return_indices=True)
    band = pixel_dist <= radii.max() + 2.0  # the only pixels a tubule can reach
    idx = seed[tuple(n[band] for n in nearest)]
    offset = np.argwhere(band).astype(np.float32) - coords[idx]
    along = np.sum(offset * tangents[idx], axis=1)
    across2 = np.maximum(np.sum(offset**2, axis=1) - along**2, 0.0)
    dist = np.sqrt(across2 + np.maximum(np.abs(along) - 0.75, 0.0) ** 2)
    radius = radii[branch[idx]]
    label = branch_labels[branch[idx]]
    coverage = np.clip(radius + 0.5 - dist, 0.0, 1.0)
    obj = np.zeros(shape, dtype=np.float32)
    obj[band] = coverage * brightness[label - 1]
    mask = np.zeros(shape, dtype=np.int32)
    mask[band] = np.where(dist <= radius, label, 0)
    return obj, mask


def mitochondria(
    shape: Sequence[int] = (256, 256),
    seed: int = 0,
    n_tubules: int = 30,
    width_range: tuple[float, float] = (1.0, 3.0),
    length_range: tuple[float, float] | None = None,
    branch_prob: float = 0.01,
    psf_sigma: float | Sequence[float] = 1.0,
    photons: float = 200.0,
    background: float = 10.0,
    read_noise: float = 2.0,
    bits: int = 8,
    gain: float | None = None,
    offset: float = 0.0,
) -> SyntheticImage:
    """Draw a fluorescence-like image of mitochondrial networks, ``ndim = len(shape)``.

    Parameters
    ----------
    shape : ``(Y, X)`` or ``(Z, Y, X)`` in px.
    seed : the same seed gives the same image, bit for bit.
    n_tubules : number of networks (trunks); each gets its own label id.
    width_range : tubule diameters in px, drawn uniformly per branch.
    length_range : trunk lengths in px; default ``(0.1, 0.3) * max(shape)``. Branches are
        0.3-0.7 times their parent's length; curves fold back at the image border.
    branch_prob : branches per px of centreline (up to two generations of branches).
    psf_sigma : Gaussian PSF standard deviation in px, one value or one per axis.
    photons : expected photon count at the brightest point of the PSF-blurred object.
    background : expected background photon count per pixel.
    read_noise : Gaussian read-noise standard deviation in output units.
    bits : 8, 12 or 16; the image is quantised to ``2**bits`` levels (uint8 or uint16).
    gain : output units per photon; ``None`` puts ``photons + background`` at 80 % of the
        range above ``offset``.
    offset : output value at zero photons (a camera's offset keeps dim pixels from clipping
        at 0); 0 by default.
    """
    shape = tuple(int(s) for s in shape)
    check_choice("ndim", len(shape), (2, 3))
    check_choice("bits", bits, (8, 12, 16))
    check_range("photons", photons, low=0.0)
    check_range("background", background, low=0.0)
    check_range("read_noise", read_noise, low=0.0)
    check_range("offset", offset, low=0.0, high=2**bits - 1)
    check_range("branch_prob", branch_prob, low=0.0, high=1.0)
    check_range("n_tubules", n_tubules, low=1)
    check_range("width_range[0]", width_range[0], low=0.5, high=width_range[1])
    for s in shape:
        check_range("shape", s, low=8)
    rng = np.random.default_rng(seed)
    if length_range is None:
        length_range = (0.1 * max(shape), 0.3 * max(shape))
    full_scale = 2**bits - 1
    if gain is None:
        gain = 0.8 * (full_scale - offset) / max(photons + background, 1e-12)
    check_range("gain", gain, low=0.0)

    points, widths, branch_labels = _centrelines(
        shape, n_tubules, length_range, width_range, branch_prob, rng
    )
    brightness = rng.uniform(0.6, 1.0, size=n_tubules)
    obj, labels = _render(shape, points, widths / 2, branch_labels, brightness)
    sigma = np.broadcast_to(np.asarray(psf_sigma, dtype=float), (len(shape),))
    blurred = ndimage.gaussian_filter(obj, sigma=tuple(sigma), mode="reflect")
    blurred /= max(float(blurred.max()), 1e-12)
    lam = background + photons * blurred
    clean = (gain * lam + offset).astype(np.float32)
    noisy = gain * rng.poisson(lam) + offset + rng.normal(0.0, read_noise, size=shape)
    dtype = np.uint8 if bits == 8 else np.uint16
    image = np.clip(np.round(noisy), 0, full_scale).astype(dtype)
    metadata = {
        "shape": shape,
        "seed": seed,
        "n_tubules": n_tubules,
        "width_range": tuple(width_range),
        "length_range": tuple(length_range),
        "branch_prob": branch_prob,
        "psf_sigma": tuple(float(s) for s in sigma),
        "photons": photons,
        "background": background,
        "read_noise": read_noise,
        "bits": bits,
        "gain": float(gain),
        "offset": float(offset),
    }
    return SyntheticImage(image, clean, labels, widths, branch_labels.astype(np.int32), metadata)


#: mitochondrial phenotypes of :func:`cell_population`:
#: ``(networks per cell, trunk length range in px, branches per px of centreline)``.
PHENOTYPES = {
    "tubular": (3, (12.0, 20.0), 0.0),
    "fragmented": (14, (1.0, 3.0), 0.0),
    "networked": (3, (12.0, 20.0), 0.15),
}


@dataclass
class CellPopulation:
    """Single-cell crops with known phenotype classes.

    Attributes
    ----------
    images : uint8 ``(N, Y, X)`` crops, one cell each, at a random position in its crop.
    classes : int64 ``(N,)`` index into ``class_names``.
    class_names : the phenotype of each class (keys of :data:`PHENOTYPES`).
    photons : float64 ``(N,)`` the noise level of each crop (peak photon count).
    """

    images: np.ndarray
    classes: np.ndarray
    class_names: list[str]
    photons: np.ndarray


def cell_population(
    n_per_class: int,
    size: int = 32,
    cell_size: int = 20,
    photons: Sequence[float] = (30.0, 100.0, 1000.0),
    seed: int = 0,
    background: float = 5.0,
    psf_sigma: float = 1.0,
    jitter: int | None = None,
) -> CellPopulation:
    """Crops of cells whose mitochondria are tubular, fragmented or networked, across noise levels.

    Each cell is an ellipse of faint cytoplasm (``cell_size`` px across) holding mitochondria
    drawn like :func:`mitochondria` with its class's :data:`PHENOTYPES` parameters, placed at a
    random offset in a ``size × size`` crop, blurred by a Gaussian PSF, given Poisson and read
    noise at one of the ``photons`` levels (cycled) and quantised to 8 bits with the gain that
    puts every level's peak at the same grey value (only the noise differs between levels).
    The class is what an embedding should recover; position and noise are nuisances.
    ``jitter`` limits the offset to ``±jitter`` px around the crop centre (as ``cellvae embed``
    crops cells at their centroid); ``None`` places cells anywhere in the crop.
    """
    check_range("n_per_class", n_per_class, low=1)
    check_range("cell_size", cell_size, low=8, high=size)
    rng = np.random.default_rng(seed)
    names = list(PHENOTYPES)
    box = (cell_size, cell_size)
    yy, xx = np.mgrid[:cell_size, :cell_size] - (cell_size - 1) / 2
    images, classes, levels = [], [], []
    for i in range(n_per_class * len(names)):
        label = i % len(names)
        n_net, lengths, branch = PHENOTYPES[names[label]]
        points, widths, nets = _centrelines(box, n_net, lengths, (1.0, 2.0), branch, rng)
        brightness = rng.uniform(0.7, 1.0, size=n_net)
        obj, _ = _render(box, points, widths / 2, nets, brightness)
        aspect, angle = rng.uniform(0.75, 1.0), rng.uniform(0, np.pi)
        u = xx * np.cos(angle) + yy * np.sin(angle)
        v = (-xx * np.sin(angle) + yy * np.cos(angle)) / aspect
        inside = (u**2 + v**2) <= (cell_size / 2) ** 2
        cell = np.where(inside, np.maximum(obj, 0.15), 0.0)
        crop = np.zeros((size, size), dtype=np.float32)
        free = size - cell_size
        lo, hi = (0, free) if jitter is None else (max(free // 2 - jitter, 0), free // 2 + jitter)
        oy, ox = rng.integers(lo, min(hi, free) + 1, size=2)
        crop[oy : oy + cell_size, ox : ox + cell_size] = cell
        blurred = ndimage.gaussian_filter(crop, psf_sigma, mode="constant")
        level = float(photons[(i // len(names)) % len(photons)])
        lam = background + level * blurred
        gain = 0.8 * 255 / (level * 0.6 + background)  # a bright tubule's blurred peak is ~0.6
        noisy = gain * rng.poisson(lam) + rng.normal(0.0, 1.0, size=lam.shape)
        images.append(np.clip(np.round(noisy), 0, 255).astype(np.uint8))
        classes.append(label)
        levels.append(level)
    return CellPopulation(
        np.stack(images), np.asarray(classes, dtype=np.int64), names, np.asarray(levels)
    )
