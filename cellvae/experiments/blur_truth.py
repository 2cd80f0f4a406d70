"""The noise-aware blur map against ground truth, on synthetic mitochondria.

Each case scores one reconstruction of a noisy synthetic image twice: with the noisy original
and the camera model (what ``cellvae blur`` sees), and with the noise-free truth in its place
(the right answer). Reconstructions: the truth itself (a perfect denoiser, nothing lost), the
truth blurred by a Gaussian of σ = 0.5, 1, 2 px (structure really lost), the truth blurred by
a σ that grows from 0 to 2 px across the image (so windows differ and their ranks mean
something) and a small hierarchical VAE trained on the noisy image itself. Used by
``cellvae experiment blur`` and ``benchmarks/bench_blur_truth.py``.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
from scipy import ndimage

from cellvae.data.synthetic import mitochondria
from cellvae.metrics.blur_summary import truth_figures
from cellvae.metrics.noise import NoiseModel, camera_model
from cellvae.metrics.structure import structure_map

#: the blurs of the truth that stand for reconstructions that lost structure
SIGMAS = (0.5, 1.0, 2.0)
#: the 3D samples' PSF, twice as long in z (as the bundled mitochondria_3d)
PSF_3D = (2.0, 1.0, 1.0)


def noisy_sample(shape: tuple[int, ...], photons: float, seed: int):
    """Synthetic mitochondria and the noise line of their camera (gain, read noise 2)."""
    options = {"psf_sigma": PSF_3D} if len(shape) == 3 else {}
    synth = mitochondria(shape, seed=seed, photons=photons, **options)
    meta = synth.metadata
    return synth, NoiseModel(meta["gain"], meta["read_noise"] ** 2 + 1 / 12 - meta["gain"] * 0.0)


def graded_blur(clean: np.ndarray, top: float = 2.0) -> np.ndarray:
    """``clean`` blurred by σ rising in steps of 0.5 px from 0 to ``top`` along the last axis."""
    sigmas = np.arange(0.0, top + 1e-9, 0.5)
    blurs = np.stack([ndimage.gaussian_filter(clean, s) for s in sigmas])
    step = np.round(np.linspace(0, len(sigmas) - 1, clean.shape[-1])).astype(int)
    return np.take_along_axis(blurs, np.broadcast_to(step, clean.shape)[None], axis=0)[0]


def trained_reconstruction(
    image: np.ndarray, steps: int, seed: int = 0
) -> tuple[np.ndarray, float]:
    """Train a small hierarchical discretized-logistic VAE on random patches of ``image``
    (2D: 32², 3D: 16³) for ``steps`` steps (batch 32), reconstruct the whole image tile by tile;
    returns the reconstruction (raw units) and the training time in CPU seconds."""
    import torch

    from cellvae.data.normalize import Quantizer
    from cellvae.experiments._train import train
    from cellvae.inference.field import margin_for, overlap_for, receptive_radius
    from cellvae.inference.model import Reconstructor
    from cellvae.inference.tiling import tile_reconstruct
    from cellvae.models import build_model

    ndim = image.ndim
    patch = (32, 32) if ndim == 2 else (16, 16, 16)
    lo, hi = (float(v) for v in np.percentile(image, [0.1, 99.9]))
    quantizer = Quantizer(lo, hi, 8)
    x = quantizer.quantize(image.astype(np.float32))
    rng = np.random.default_rng(seed)
    starts = [rng.integers(0, n - p + 1, 2048) for n, p in zip(image.shape, patch)]
    crops = np.stack([x[tuple(slice(s, s + p) for s, p in zip(o, patch))] for o in zip(*starts)])
    torch.manual_seed(seed)
    vae = build_model(
        arch="hierarchical",
        ndim=ndim,
        in_channels=1,
        likelihood="dlogistic",
        patch_size=patch,
        latent_dim=16,
        bits=8,
        widths=(16, 32),
        blocks_per_scale=1,
        latent_channels=4,
    )
    started = time.process_time()
    train(
        vae,
        torch.from_numpy(crops[:, None].astype(np.float32)),
        steps,
        seed=seed,
        warmup=steps // 3,
    )
    seconds = time.process_time() - started
    radius = receptive_radius(vae, patch)
    overlap = overlap_for(radius, patch)
    out = np.zeros(image.shape, np.float32)
    tile_reconstruct(
        image.astype(np.float32),
        [out],
        Reconstructor(vae, [quantizer]),
        "zyx"[-ndim:],
        ndim,
        patch,
        overlap,
        block=image.shape,
        batch_size=16,
        progress=False,
        margin=margin_for(radius, overlap),
    )
    return out, seconds


def score(synth, noise: NoiseModel, recon: np.ndarray, window: int = 32) -> dict:
    """The map from the noisy original and from the truth, and how far apart they are."""
    bmap = structure_map(synth.image, recon, noise, truth=synth.clean, window=window)
    truth = truth_figures(bmap)
    res = bmap.resolution
    grown = ndimage.binary_dilation(synth.labels > 0, iterations=3)
    background = ~ndimage.maximum_filter(grown, size=window)
    stride = bmap.stride
    before = (window - stride) // 2
    centres = tuple(
        np.clip(np.arange(g) * stride - before + window // 2, 0, n - 1)
        for g, n in zip(bmap.share.shape, synth.image.shape)
    )
    empty = background[np.ix_(*centres)]
    return {
        "median_share_noisy": float(np.nanmedian(bmap.share))
        if np.isfinite(bmap.share).any()
        else np.nan,
        "median_share_truth": float(np.nanmedian(bmap.truth_share))
        if np.isfinite(bmap.truth_share).any()
        else np.nan,
        "global_share_noisy": bmap.global_share,
        "global_share_truth": bmap.truth_global_share,
        "spearman": truth["map_spearman"],
        "spearman_windows": truth["map_spearman_windows"],
        "median_abs_diff": truth["median_abs_difference"],
        "background_no_signal": float(np.mean(np.isnan(bmap.share[empty])))
        if empty.any()
        else np.nan,
        "windows_with_signal": int(np.isfinite(bmap.share).sum()),
        "resolves_px": res.original_resolves_px,
        "keeps_px_noisy": res.reconstruction_keeps_px,
        "keeps_px_truth": res.truth_keeps_px,
    }


def cases(synth, model_steps: int = 0, seed: int = 0) -> list[tuple[str, Callable[[], np.ndarray]]]:
    """The reconstructions to score, as ``(name, make)`` pairs (made lazily)."""
    clean = synth.clean.astype(np.float64)
    out: list[tuple[str, Callable[[], np.ndarray]]] = [("perfect denoiser", lambda: clean)]
    out += [(f"blur sigma={s:g}", lambda s=s: ndimage.gaussian_filter(clean, s)) for s in SIGMAS]
    out.append(("graded blur sigma=0..2", lambda: graded_blur(clean)))
    if model_steps:
        out.append(
            (
                f"trained VAE ({model_steps} steps)",
                lambda: trained_reconstruction(synth.image, model_steps, seed)[0],
            )
        )
    return out


def validate(
    shape: tuple[int, ...],
    photons: float,
    seed: int,
    model_steps: int = 0,
    window: int = 32,
    estimate_camera: bool = True,
) -> list[dict]:
    """One row per reconstruction case: the noisy map against the truth map, with the
    camera from the generator; where the image is not clipped, also the global share with an
    estimated camera (``global_share_estimated_camera``)."""
    synth, noise = noisy_sample(shape, photons, seed)
    estimated = None
    if estimate_camera:
        try:
            estimated = camera_model(synth.image).noise
        except Exception:  # clipped at 0 (1000 photons in 8 bits): no estimate, said so
            estimated = None
    rows = []
    for name, make in cases(synth, model_steps, seed):
        started = time.process_time()
        recon = make()
        row = {
            "dims": f"{len(shape)}D {'x'.join(map(str, shape))}",
            "photons": photons,
            "seed": seed,
            "case": name,
            **score(synth, noise, recon, window),
        }
        if estimated is not None:
            est = structure_map(synth.image, recon, estimated, window=window)
            row["global_share_estimated_camera"] = est.global_share
        else:
            row["global_share_estimated_camera"] = np.nan
        row["cpu_seconds"] = time.process_time() - started
        rows.append(row)
    return rows
