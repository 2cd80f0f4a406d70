"""Quantizer: the documented raw -> level -> [-1, 1] mapping, exact and invertible."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cellvae.data.normalize import Quantizer
from cellvae.errors import CellvaeError, ConfigError
from tests.data.conftest import image_stats


def test_levels_of_exact_level_intensities_round_trip():
    q = Quantizer(100.0, 3100.0, bits=8)
    k = np.arange(256)
    v = 100.0 + k / 255 * 3000.0
    assert np.array_equal(q.levels(v), k)
    assert np.array_equal(q.input_to_levels(q.quantize(v)), k)
    np.testing.assert_allclose(q.input_to_raw(q.levels_to_input(k)), v, rtol=1e-12)


def test_inputs_lie_on_the_level_grid(rng):
    q = Quantizer(0.0, 1000.0, bits=4)
    x = q.quantize(rng.uniform(-100, 1100, size=5000))
    k = np.rint((x + 1) / 2 * 15)
    np.testing.assert_allclose(x, 2 * k / 15 - 1, atol=1e-6)
    assert set(np.unique(k)) == set(range(16))
    assert x.dtype == np.float32


def test_hand_computed_values():
    q = Quantizer(0.0, 255.0, bits=8)
    x = q.quantize(np.array([0.0, 1.0, 127.4, 127.6, 255.0]))
    np.testing.assert_allclose(x, [-1.0, 2 / 255 - 1, 2 * 127 / 255 - 1, 2 * 128 / 255 - 1, 1.0])
    assert q.bin_width == pytest.approx(2 / 255)


def test_monotonic_and_clipped():
    q = Quantizer(10.0, 20.0, bits=3)
    v = np.linspace(0.0, 30.0, 301)
    k = q.levels(v)
    assert np.all(np.diff(k) >= 0)
    assert np.all(k[v <= 10.0] == 0) and np.all(k[v >= 20.0] == 7)
    assert q.quantize(np.array([-1e9, 1e9])).tolist() == [-1.0, 1.0]


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int16])
def test_lookup_table_matches_the_formula(rng, dtype):
    info = np.iinfo(dtype)
    v = rng.integers(info.min, info.max, size=4000, endpoint=True).astype(dtype)
    q = Quantizer(float(info.min) + 7.3, float(info.max) / 3, bits=8)
    assert np.array_equal(q.quantize(v), q.quantize(v.astype(np.float64)))


def test_torch_inputs_map_back_to_levels():
    q = Quantizer(0.0, 1.0, bits=8)
    x = torch.from_numpy(q.levels_to_input(np.arange(256)).astype(np.float32))
    assert torch.equal(q.input_to_levels(x), torch.arange(256, dtype=torch.float32))


def test_constant_image_warns_and_falls_back():
    with pytest.warns(RuntimeWarning, match="constant intensity"):
        q = Quantizer(5.0, 5.0, bits=8)
    assert q.hi == 6.0
    assert q.quantize(np.full(3, 5.0)).tolist() == [-1.0, -1.0, -1.0]


def test_non_finite_range_is_a_user_error():
    with pytest.raises(CellvaeError, match="not finite"):
        Quantizer(float("nan"), 1.0)


def test_from_stats_reads_percentiles_and_bit_depth():
    data = np.arange(1001, dtype=np.uint16).reshape(1, 7, 143)
    stats = image_stats(data, "cyx")
    q = Quantizer.from_stats(stats, channel=0, low_pct=1, high_pct=99, bits=None)
    # 981 raw values in [10, 990] get 2**10 levels, not a comb of 2**16 (the uint16 depth)
    assert (q.lo, q.hi, q.bits) == (10.0, 990.0, 10)
    assert Quantizer.from_stats(stats, 0, 1, 99, bits=16).bits == 16  # explicit bits win


@pytest.mark.parametrize(
    ("lo", "hi", "data_bits", "expected"),
    [(100, 3100, 16, 12), (0, 4095, 12, 12), (0, 4095, 16, 12), (5, 5, 16, 1), (0, 1e6, 16, 16)],
)
def test_range_bits_give_each_raw_value_a_level(lo, hi, data_bits, expected):
    from cellvae.data.normalize import range_bits

    assert range_bits({"bits": data_bits}, lo, hi) == expected
    levels = Quantizer(lo, hi, expected).levels(np.arange(lo, min(hi, lo + 5000) + 1))
    if hi > lo and hi - lo < 2**16:
        assert len(np.unique(levels)) == len(levels)  # no two raw values share a level


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"low_pct": 5.0}, "low_percentile"),
        ({"high_pct": 95.0}, "high_percentile"),
        ({"channel": 3}, "channel"),
        ({"bits": 0}, "bits"),
        ({"bits": 17}, "bits"),
    ],
)
def test_from_stats_errors_name_the_field(kwargs, field):
    stats = image_stats(np.arange(100, dtype=np.uint8).reshape(10, 10), "yx")
    with pytest.raises(ConfigError, match=f"^{field}"):
        Quantizer.from_stats(stats, **kwargs)


def test_float_data_needs_explicit_bits():
    stats = image_stats(np.linspace(0, 1, 100, dtype=np.float32).reshape(10, 10), "yx")
    with pytest.raises(ConfigError, match=r"^bits"):
        Quantizer.from_stats(stats, bits=None)
