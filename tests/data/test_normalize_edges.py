"""Quantizer edges: whole dtype ranges, clipping, refused arguments and the stored defaults."""

from __future__ import annotations

import numpy as np
import pytest

from cellvae.data.normalize import Quantizer, range_bits, stored_percentile
from cellvae.errors import CellvaeError, ConfigError
from tests.data.conftest import image_stats


@pytest.mark.parametrize(
    ("dtype", "bits"), [(np.uint8, 8), (np.int8, 8), (np.uint16, 16), (np.int16, 16)]
)
def test_a_dtype_spanning_the_range_gets_one_level_per_value(dtype, bits):
    # lo, hi = the dtype's own limits with 2**bits levels: level k is value - min, so the
    # table must hold an exact entry for every value, both ends included
    info = np.iinfo(dtype)
    q = Quantizer(float(info.min), float(info.max), bits=bits)
    v = np.arange(info.min, info.max + 1).astype(dtype)
    k = np.arange(2**bits)
    expected = ((2 * k - (2**bits - 1)) / (2**bits - 1)).astype(np.float32)
    np.testing.assert_array_equal(q.quantize(v), expected)
    np.testing.assert_array_equal(q.quantize(v.astype(np.float64)), expected)


def test_quantize_fills_out_on_both_paths():
    q = Quantizer(0.0, 3.0, bits=2)
    for v in (np.array([[0, 1], [2, 3]], np.uint8), np.array([[0.0, 1.0], [2.0, 3.0]])):
        out = np.full((2, 2), 7.0, np.float32)
        result = q.quantize(v, out=out)
        np.testing.assert_array_equal(out, np.float32([[-1.0, -1 / 3], [1 / 3, 1.0]]))
        assert result is out


def test_inputs_outside_minus_one_one_map_to_the_end_levels():
    q = Quantizer(0.0, 1.0, bits=3)
    x = np.array([-3.0, -1.0, 1.0, 2.5])
    np.testing.assert_array_equal(q.input_to_levels(x), [0, 0, 7, 7])


def test_levels_are_int32_and_round_half_to_even():
    q = Quantizer(0.0, 6.0, bits=2)  # one raw unit = half a level
    k = q.levels(np.array([1.0, 3.0, 5.0]))  # 0.5, 1.5, 2.5 levels
    assert k.dtype == np.int32
    assert k.tolist() == [0, 2, 2]


def test_repr_names_the_range_and_bits():
    assert repr(Quantizer(1.5, 9.0, bits=4)) == "Quantizer(lo=1.5, hi=9.0, bits=4)"


@pytest.mark.parametrize(
    ("args", "error", "message"),
    [
        ((0.0, float("inf")), CellvaeError, r"^intensity range \[0\.0, inf\] is not finite"),
        ((float("-inf"), 0.0), CellvaeError, r"^intensity range \[-inf, 0\.0\] is not finite"),
        ((0.0, 1.0, True), ConfigError, r"^bits: True is not an integer$"),
        ((0.0, 1.0, 8.0), ConfigError, r"^bits: 8\.0 is not an integer$"),
        ((0.0, 1.0, 0), ConfigError, r"^bits: 0 is out of range; allowed \[1, 16\]$"),
        ((0.0, 1.0, 17), ConfigError, r"^bits: 17 is out of range; allowed \[1, 16\]$"),
        ((2.0, 1.0), CellvaeError, r"^intensity range is inverted: lo=2\.0 > hi=1\.0$"),
    ],
)
def test_refused_arguments(args, error, message):
    with pytest.raises(error, match=message):
        Quantizer(*args)


def test_one_and_sixteen_bits_are_allowed():
    assert Quantizer(0.0, 1.0, bits=1).n_levels == 2
    assert Quantizer(0.0, 1.0, bits=16).n_levels == 65536


def test_constant_range_warning_points_at_the_caller():
    with pytest.warns(RuntimeWarning, match=r"^constant intensity 5\.0: normalisation") as rec:
        Quantizer(5.0, 5.0)
    assert rec[0].filename == __file__


def test_from_stats_defaults_are_the_0_1_and_99_9_percentiles_and_8_bits():
    data = np.arange(2000, dtype=np.uint16).reshape(2, 1000)
    stats = image_stats(data, "cyx")
    q = Quantizer.from_stats(stats)
    ch = stats["channels"][0]
    assert (q.lo, q.hi, q.bits) == (ch["percentiles"]["0.1"], ch["percentiles"]["99.9"], 8)
    q1 = Quantizer.from_stats(stats, channel=1)
    assert q1.lo == stats["channels"][1]["percentiles"]["0.1"]


@pytest.mark.parametrize("channel", [-1, 2])
def test_from_stats_refuses_channels_just_out_of_range(channel):
    stats = image_stats(np.arange(40, dtype=np.uint8).reshape(2, 2, 10), "cyx")
    with pytest.raises(
        ConfigError, match=rf"^channel: {channel} is out of range; the image has 2$"
    ):
        Quantizer.from_stats(stats, channel=channel)


@pytest.mark.parametrize(
    ("lo", "hi", "data_bits", "expected"),
    [
        (0, 2.5, 16, 2),  # raw values 0, 1, 2: three levels need 2 bits
        (0, 3, 16, 2),
        (0, 4, 16, 3),
        (0, 1, 16, 1),
        (3, 2, 16, 1),  # an inverted range has no span
        (0, 255, 1, 1),
        (0, 255, 16, 8),
    ],
)
def test_range_bits_known_answers(lo, hi, data_bits, expected):
    assert range_bits({"bits": data_bits}, lo, hi) == expected


@pytest.mark.parametrize("data_bits", [None, 0, 17, 8.0])
def test_range_bits_refuses_unusable_bit_depths(data_bits):
    with pytest.raises(
        ConfigError,
        match=rf"^bits: the data's bit depth {data_bits!r} \(dtype float32\) cannot be used; "
        r"set bits to an integer in \[1, 16\]$",
    ):
        range_bits({"bits": data_bits, "dtype": "float32"}, 0, 10)


def test_stored_percentile_lists_the_stored_ones():
    ch = {"percentiles": {"1": 3.0, "99.9": 8.0, "0.1": 2.0}}
    assert stored_percentile(ch, 99.9, "f") == 8.0
    assert stored_percentile(ch, 1, "f") == 3.0
    with pytest.raises(
        ConfigError, match=r"^low: 5 is not stored; choose one of \[0\.1, 1\.0, 99\.9\]$"
    ):
        stored_percentile(ch, 5, "low")
    with pytest.raises(ConfigError, match=r"^low: 5 is not stored; choose one of \[\]$"):
        stored_percentile({}, 5, "low")


def test_float32_intensities_get_the_levels_of_their_exact_values():
    # levels are computed in float64: float32 arithmetic would move values that lie near a
    # level boundary (about 1 in 600 here) to the next level
    q = Quantizer(3.0, 70000.0, bits=16)
    v = np.random.default_rng(0).uniform(0, 70000, 20000).astype(np.float32)
    np.testing.assert_array_equal(q.levels(v), q.levels(v.astype(np.float64)))
    np.testing.assert_array_equal(q.quantize(v), q.quantize(v.astype(np.float64)))
