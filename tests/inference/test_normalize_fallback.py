"""Images without stored statistics: reconstruct and embed estimate the percentiles themselves.

An OME-Zarr image not written by ``cellvae ingest`` has no ``cellvae`` statistics; inference
then takes the 0.1 and 99.9 percentiles of (a strided sample of) each channel. The data below
hold their extremes often enough that those percentiles are exact known numbers.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cellvae.data.normalize import Quantizer
from cellvae.inference import reconstruct as rec
from cellvae.inference.embed import embed_file
from cellvae.inference.model import quantizers_for
from cellvae.io.omezarr import open_image, write_image
from cellvae.io.stats import intensity_stats
from tests.inference.helpers import IdentityVAE, stand_in

RANGES = [(100, 900), (2000, 3000)]  # known 0.1 / 99.9 percentiles of channels 0 and 1


def ranged(rng, shape: tuple[int, ...], lo: int, hi: int) -> np.ndarray:
    """uint16 values strictly inside ``(lo, hi)`` but for 2 % exactly ``lo`` and 2 % ``hi``."""
    data = rng.integers(lo + 1, hi, shape).astype(np.uint16)
    flat = data.reshape(-1)
    n = max(flat.size // 50, 1)
    flat[rng.permutation(flat.size)[: 2 * n]] = [lo] * n + [hi] * n
    return data


def two_channels(rng, shape=(36, 44)) -> np.ndarray:
    return np.stack([ranged(rng, shape, lo, hi) for lo, hi in RANGES])


def test_quantizers_take_low_and_high_percentiles_per_channel(rng):
    data = two_channels(rng)
    quantizers = quantizers_for(None, 2, 8, lambda c: data[c])
    assert [(q.lo, q.hi, q.bits) for q in quantizers] == [(100.0, 900.0, 8), (2000.0, 3000.0, 8)]
    # other percentiles are honoured, still low first
    q = quantizers_for(None, 1, 4, lambda c: np.arange(1001), low_pct=1.0, high_pct=99.0)[0]
    assert (q.lo, q.hi, q.bits) == (10.0, 990.0, 4)


def test_stored_statistics_win_over_the_estimate(rng):
    data = two_channels(rng)
    stats = intensity_stats(data, "cyx")
    for ch in stats["channels"]:
        ch["percentiles"]["0.1"], ch["percentiles"]["99.9"] = 0.0, 5000.0
    quantizers = quantizers_for(stats, 2, 8, lambda c: data[c])
    assert [(q.lo, q.hi) for q in quantizers] == [(0.0, 5000.0)] * 2


def _unstored(path, data, axes):
    write_image(path, data, axes, {a: 0.5 for a in axes if a in "zyx"}, n_levels=1)
    assert open_image(path).stats is None
    return path


@pytest.mark.parametrize("axes", ["cyx", "tcyx"])
def test_reconstruct_without_stored_statistics_uses_each_channels_range(
    tmp_path, rng, monkeypatch, axes
):
    data = two_channels(rng)
    data = data[None] if axes == "tcyx" else data
    src = _unstored(tmp_path / "in.zarr", data, axes)
    stand_in(monkeypatch, IdentityVAE(channels=2))
    out = tmp_path / "out.zarr"
    rec.reconstruct_image("x.ckpt", src, out, 16, 4, block=32, progress=False)
    got = open_image(out).array[...]
    c = axes.index("c")
    for i, (lo, hi) in enumerate(RANGES):
        q = Quantizer(lo, hi, 8)  # identity model: the input on the level grid of [lo, hi]
        channel = np.take(data, i, axis=c)
        expected = np.asarray(q.input_to_raw(q.quantize(channel)), np.float32)
        np.testing.assert_allclose(np.take(got, i, axis=c), expected, rtol=1e-6)


def test_embed_without_stored_statistics_equals_embed_with_them(tmp_path, rng, monkeypatch):
    data = two_channels(rng, (40, 40))
    labels = np.zeros((40, 40), np.uint16)
    labels[5:12, 6:15], labels[20:31, 25:33], labels[33:38, 2:9] = 1, 2, 3
    lab = tmp_path / "labels.zarr"
    write_image(lab, labels, "yx", n_levels=1, method="nearest")
    stats = intensity_stats(data, "cyx")  # exact percentiles (small image), as ingest stores
    assert [(ch["percentiles"]["0.1"], ch["percentiles"]["99.9"]) for ch in stats["channels"]] == [
        (float(lo), float(hi)) for lo, hi in RANGES
    ]
    voxel = {"y": 0.5, "x": 0.5}
    with_stats = write_image(tmp_path / "a.zarr", data, "cyx", voxel, stats=stats, n_levels=1)
    without = _unstored(tmp_path / "b.zarr", data, "cyx")
    stand_in(monkeypatch, IdentityVAE(channels=2))
    a = embed_file("x.ckpt", with_stats, lab, tmp_path / "a.parquet", progress=False)
    b = embed_file("x.ckpt", without, lab, tmp_path / "b.parquet", progress=False)
    assert len(a) == 3
    pd.testing.assert_frame_equal(a, b)
