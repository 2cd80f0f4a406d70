"""Axis roles of an image for a model, and moving blocks to and from the canonical order."""

import numpy as np
import pytest

from cellvae.errors import CellvaeError
from cellvae.inference.layout import ChannelView, Layout


def test_layout_roles_of_known_axes():
    lay = Layout.of("tczyx", 2)
    assert (lay.loop, lay.channel, lay.spatial) == ((0, 2), 1, (3, 4))
    lay = Layout.of("tczyx", 3)
    assert (lay.loop, lay.channel, lay.spatial) == ((0,), 1, (2, 3, 4))
    lay = Layout.of("yxc", 2)
    assert (lay.loop, lay.channel, lay.spatial) == ((), 2, (0, 1))
    lay = Layout.of("zyx", 3)
    assert (lay.loop, lay.channel, lay.spatial) == ((), None, (0, 1, 2))
    assert lay.axes == "zyx"
    with pytest.raises(CellvaeError, match=r"^in.zarr: axes 'cyx' lack 'zyx' needed by a 3D"):
        Layout.of("cyx", 3, "in.zarr")
    with pytest.raises(CellvaeError, match=r"^image: axes 'zy'"):
        Layout.of("zy", 2)


def test_channels_and_index():
    lay = Layout.of("tczyx", 2)
    assert lay.channels((2, 3, 4, 5, 6)) == 3
    assert Layout.of("zyx", 2).channels((4, 5, 6)) == 1
    idx = lay.index([slice(1, 2), slice(3, 4)], [slice(0, 5), slice(2, 6)])
    assert idx == (slice(1, 2), slice(None), slice(3, 4), slice(0, 5), slice(2, 6))


@pytest.mark.parametrize(
    ("axes", "ndim", "canonical"),
    [
        ("yxc", 2, "cyx"),  # channels last: a three-way reorder, not a swap
        ("xcy", 2, "cyx"),
        ("czyx", 2, "zcyx"),
        ("tzcyx", 3, "tczyx"),
        ("zyx", 2, "zyx"),  # no channel axis: one is added after the loop axes
    ],
)
def test_to_canonical_moves_each_axis_to_its_role_and_back(axes, ndim, canonical):
    sizes = dict(zip("tczyx", (2, 3, 4, 5, 6)))
    rng = np.random.default_rng(0)
    block = rng.random(tuple(sizes[a] for a in axes))
    lay = Layout.of(axes, ndim)
    out = lay.to_canonical(block)
    order = [axes.index(a) for a in canonical]
    expected = np.transpose(block, order)
    if "c" not in axes:
        expected = np.expand_dims(expected, len(lay.loop))
    np.testing.assert_array_equal(out, expected)
    np.testing.assert_array_equal(lay.from_canonical(out), block)


def test_channel_view_reads_one_loop_position():
    data = np.arange(2 * 3 * 4 * 5 * 6).reshape(2, 3, 4, 5, 6)  # t c z y x
    lay = Layout.of("tczyx", 2)
    view = ChannelView(data, lay, (1, 2))
    assert view.shape == (3, 5, 6)
    got = view[(slice(0, 2), slice(1, 3), slice(2, 5))]
    np.testing.assert_array_equal(got, data[1, 0:2, 2, 1:3, 2:5])
    first = ChannelView(data, lay)  # default: the first loop position
    np.testing.assert_array_equal(first[(slice(None), slice(None), slice(None))], data[0, :, 0])
    flat = ChannelView(data[0, 0], Layout.of("zyx", 2), (3,))
    assert flat.shape == (1, 5, 6)
    np.testing.assert_array_equal(
        flat[(slice(None), slice(0, 2), slice(0, 6))][0], data[0, 0, 3, :2]
    )
