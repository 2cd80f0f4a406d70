"""A results folder made from a remote image: the original layer streams from its URL."""

from __future__ import annotations

import numpy as np
import pytest
import zarr

from cellvae.napari.results import results_layers
from tests.io.servers import Server, loopback_only  # noqa: F401  (fixture)
from tests.napari.helpers import write_results

pytest.importorskip("aiohttp")
pytestmark = pytest.mark.usefixtures("loopback_only")


def test_original_named_by_a_url_loads_from_it(tmp_path, rng):
    out = write_results(tmp_path, rng)
    image = tmp_path / "inputs" / "image.ome.zarr"
    server = Server("http", image.parent)
    try:
        url = f"{server.base}/{image.name}"
        group = zarr.open_group(str(out / "recon.ome.zarr"), mode="r+")
        entry = dict(group.attrs["cellvae"])
        entry["provenance"] = entry["provenance"] | {"inputs": {"input": url}}
        group.attrs["cellvae"] = entry
        layers, _ = results_layers(out)
        original = next(layer for layer in layers if layer[1]["name"].startswith("original"))
        assert original[1]["metadata"]["path"] == url
        data = original[0][0] if isinstance(original[0], list) else original[0]
        local = zarr.open_group(str(image), mode="r")["s0"][:]
        np.testing.assert_array_equal(np.asarray(data).squeeze(), local.squeeze())
        assert server.stats()["bytes"] > 0
    finally:
        server.stop()
