"""OME-Zarr streamed over HTTP and S3 from local servers on 127.0.0.1 that count their bytes.

Each server is a subprocess (``tests/io/serve.py``): a folder over HTTP with ``Range``
support, or moto's S3. Nothing here connects beyond 127.0.0.1 (``loopback_only``).
"""

from __future__ import annotations

import numpy as np
import pytest

import cellvae.io.remote as remote
from cellvae.cli import main
from cellvae.errors import CellvaeError
from cellvae.io.omezarr import open_image, open_labels
from tests.inference.helpers import save_checkpoint, two_cells, write_test_image
from tests.io.servers import (
    Server,
    loopback_only,  # noqa: F401  (fixture)
    s3_environment,
    stored_bytes,
    upload_folder,
)

pytest.importorskip("fsspec")
pytest.importorskip("aiohttp")

pytestmark = pytest.mark.usefixtures("loopback_only")


@pytest.fixture
def fast_retries(monkeypatch):
    """Retry pauses of milliseconds, so failing reads fail fast."""
    monkeypatch.setattr(remote, "RETRY_PAUSE_S", 0.01)


@pytest.fixture
def http_server(tmp_path):
    server = Server("http", tmp_path)
    yield server
    server.stop()


@pytest.fixture
def s3_server(monkeypatch):
    pytest.importorskip("s3fs")
    pytest.importorskip("moto")
    server = Server("s3")
    for key, value in s3_environment(server.port).items():
        monkeypatch.setenv(key, value)
    yield server
    server.stop()


def _url(kind: str, request, folder):
    """The image ``folder`` (under tmp_path) served by the ``kind`` server of the test."""
    if kind == "http":
        server = request.getfixturevalue("http_server")
        return server, f"{server.base}/{folder.name}"
    server = request.getfixturevalue("s3_server")
    url = upload_folder(server.port, folder, "bucket")
    server.reset()
    return server, url


@pytest.fixture
def image(tmp_path, rng):
    """A small 2-channel OME-Zarr with voxel sizes, names and statistics."""
    from cellvae.io.omezarr import write_image
    from cellvae.io.stats import intensity_stats

    data = rng.integers(0, 4000, (2, 70, 90), dtype=np.uint16)
    path = tmp_path / "img.ome.zarr"
    write_image(
        path,
        data,
        "cyx",
        {"y": 0.4, "x": 0.3},
        stats=intensity_stats(data, "cyx"),
        channel_names=["dna", "actin"],
        chunks=(1, 32, 32),
    )
    return path, data


# -- opening -----------------------------------------------------------------------------


def test_url_helpers():
    assert remote.is_url("https://h/a.zarr") and remote.is_url("s3://b/k")
    assert not remote.is_url("/data/a.zarr") and not remote.is_url("a.zarr")
    assert remote.join("https://h/a.zarr/", "labels", "cells") == "https://h/a.zarr/labels/cells"
    assert remote.name_of("s3://bucket/dir/img.ome.zarr/") == "img.ome.zarr"
    with pytest.raises(CellvaeError, match="unsupported URL scheme"):
        remote.check_url("ftp://host/a.zarr")


def test_s3_reads_anonymously_without_credentials(monkeypatch, tmp_path):
    pytest.importorskip("botocore")
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:1")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # no instance-metadata lookup
    assert remote.storage_options("s3://b/k") == {
        "anon": True,
        "endpoint_url": "http://127.0.0.1:1",
    }
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "key")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    assert remote.storage_options("s3://b/k")["anon"] is False
    assert remote.storage_options("https://h/a.zarr") == {}


@pytest.mark.parametrize("kind", ["http", "s3"])
def test_remote_image_opens_like_the_local_one(kind, request, image):
    path, data = image
    server, url = _url(kind, request, path)
    local, remote_image = open_image(path), open_image(url)
    assert remote_image.path == url and str(remote_image.array_path) == f"{url}/s0"
    for field in ("axes", "shape", "dtype", "voxel_size", "units", "stats", "channel_names"):
        assert getattr(remote_image, field) == getattr(local, field), field
    np.testing.assert_array_equal(remote_image.array[:, 10:20, 40:50], data[:, 10:20, 40:50])
    assert server.stats()["bytes"] > 0


def test_missing_remote_image_is_one_line(http_server):
    with pytest.raises(CellvaeError, match="no Zarr group or array there"):
        open_image(f"{http_server.base}/missing.ome.zarr")


def test_labels_open_from_a_url(http_server, tmp_path, rng):
    labels, _ = two_cells(rng)
    write_test_image(tmp_path / "l.zarr", labels, "yx")
    opened = open_labels(f"{http_server.base}/l.zarr")
    np.testing.assert_array_equal(np.asarray(opened.to_dask()), labels)


def test_only_the_chunks_read_are_fetched(http_server, tmp_path, rng):
    data = rng.integers(0, 255, (512, 512), dtype=np.uint8)
    path = write_test_image(tmp_path / "big.zarr", data, "yx")
    array = open_image(f"{http_server.base}/big.zarr").array
    assert array.chunks == (256, 256)  # 4 chunks
    http_server.reset()
    np.testing.assert_array_equal(array[250:260, :8], data[250:260, :8])
    chunks = [path / "s0" / "c" / "0" / "0", path / "s0" / "c" / "1" / "0"]
    assert http_server.stats() == {"bytes": sum(c.stat().st_size for c in chunks), "requests": 2}


# -- retries and dropped connections ------------------------------------------------------


def test_a_dropped_connection_is_retried_with_a_warning(http_server, image, fast_retries):
    path, data = image
    url = f"{http_server.base}/{path.name}"
    http_server.drop(2, match="/s0/c/")
    with pytest.warns(RuntimeWarning, match=r"retrying in .* \(1 of 3\)") as record:
        read = open_image(url).array[:]
    np.testing.assert_array_equal(read, data)
    assert len(record) == 2  # one line per dropped fetch


def test_a_connection_that_keeps_dropping_is_one_error_line(http_server, image, fast_retries):
    path, _ = image
    http_server.drop(100, match="/s0/c/1/")
    with pytest.warns(RuntimeWarning), pytest.raises(remote.RemoteReadError) as err:
        open_image(f"{http_server.base}/{path.name}").array[:]
    message = str(err.value)
    assert "\n" not in message and "read failed after 4 tries" in message
    assert "/s0/c/1/" in message


def test_an_unreachable_server_is_one_error_line(fast_retries):
    with pytest.warns(RuntimeWarning), pytest.raises(CellvaeError, match="read failed"):
        open_image("http://127.0.0.1:1/img.ome.zarr")


# -- verbs on URLs ------------------------------------------------------------------------


@pytest.fixture
def recon_inputs(tmp_path, rng):
    y, x = np.mgrid[:60, :72]
    data = (100 + 80 * np.sin(y / 5) * np.cos(x / 7) + rng.normal(0, 5, y.shape)).clip(0, 255)
    image = write_test_image(tmp_path / "img.zarr", data.astype(np.uint8), "yx")
    return save_checkpoint(tmp_path / "m.ckpt"), image


def _reconstruct(source, ckpt, out, *extra) -> int:
    return main(["reconstruct", str(source), "--ckpt", str(ckpt), "-o", str(out), *extra])


@pytest.mark.parametrize("kind", ["http", "s3"])
def test_remote_reconstruct_is_voxel_identical_to_local(kind, request, recon_inputs, tmp_path):
    ckpt, image = recon_inputs
    server, url = _url(kind, request, image)
    assert _reconstruct(image, ckpt, tmp_path / "local.zarr", "--no-progress") == 0
    assert _reconstruct(url, ckpt, tmp_path / "remote.zarr", "--no-progress") == 0
    local = np.asarray(open_image(tmp_path / "local.zarr").array)
    far = open_image(tmp_path / "remote.zarr")
    np.testing.assert_array_equal(np.asarray(far.array), local)
    from cellvae.io.provenance import read_provenance

    assert read_provenance(tmp_path / "remote.zarr")["inputs"]["input"] == url
    assert server.stats()["bytes"] > 0


def test_reconstruct_with_dropped_connections_retries_and_matches(
    http_server, recon_inputs, tmp_path, fast_retries, capsys
):
    ckpt, image = recon_inputs
    url = f"{http_server.base}/{image.name}"
    assert _reconstruct(image, ckpt, tmp_path / "local.zarr", "--no-progress") == 0
    http_server.drop(1, match="/s0/c/")
    assert _reconstruct(url, ckpt, tmp_path / "r.zarr", "--no-progress") == 0
    warned = [ln for ln in capsys.readouterr().err.splitlines() if "retrying" in ln]
    assert len(warned) == 1 and warned[0].startswith("cellvae reconstruct: warning: "), warned
    np.testing.assert_array_equal(
        np.asarray(open_image(tmp_path / "r.zarr").array),
        np.asarray(open_image(tmp_path / "local.zarr").array),
    )


def test_reconstruct_that_cannot_read_writes_no_output_and_resumes(
    http_server, recon_inputs, tmp_path, fast_retries, capsys
):
    ckpt, image = recon_inputs
    url = f"{http_server.base}/{image.name}"
    out = tmp_path / "r.zarr"
    http_server.drop(1000, match="/s0/c/")
    assert _reconstruct(url, ckpt, out, "--no-progress") == 1
    err = [ln for ln in capsys.readouterr().err.splitlines() if "error" in ln]
    assert len(err) == 1 and "read failed after 4 tries" in err[0], err
    assert not out.exists()  # only the resumable out.partial, never a half-written image
    http_server.drop(0)
    assert _reconstruct(url, ckpt, out, "--no-progress") == 0
    assert _reconstruct(image, ckpt, tmp_path / "local.zarr", "--no-progress") == 0
    np.testing.assert_array_equal(
        np.asarray(open_image(out).array), np.asarray(open_image(tmp_path / "local.zarr").array)
    )


def test_embed_blur_and_ingest_take_urls(http_server, tmp_path, rng):
    import pandas as pd

    labels, data = two_cells(rng)
    image = write_test_image(tmp_path / "i.zarr", data, "yx")
    write_test_image(tmp_path / "l.zarr", labels, "yx")
    ckpt = save_checkpoint(tmp_path / "m.ckpt")
    base = http_server.base
    for source, labels_at, out in [
        (image, tmp_path / "l.zarr", tmp_path / "local.parquet"),
        (f"{base}/i.zarr", f"{base}/l.zarr", tmp_path / "remote.parquet"),
    ]:
        argv = ["embed", str(source), "--ckpt", str(ckpt), "--labels", str(labels_at)]
        assert main([*argv, "-o", str(out), "--no-progress"]) == 0
    pd.testing.assert_frame_equal(
        pd.read_parquet(tmp_path / "remote.parquet"), pd.read_parquet(tmp_path / "local.parquet")
    )

    copy_to = str(tmp_path / "copy.zarr")
    assert main(["ingest", f"{base}/i.zarr", "-o", copy_to, "--no-progress"]) == 0
    copy = open_image(tmp_path / "copy.zarr")
    np.testing.assert_array_equal(np.asarray(copy.array), data)
    assert copy.voxel_size == open_image(image).voxel_size

    pairs = {
        "local": (image, tmp_path / "copy.zarr"),
        "remote": (f"{base}/i.zarr", f"{base}/copy.zarr"),
    }
    for name, (original, recon) in pairs.items():
        out = ["-o", str(tmp_path / f"{name}.zarr"), "--summary", str(tmp_path / f"{name}.json")]
        assert main(["blur", str(original), str(recon), *out, "--window", "16"]) == 0
    np.testing.assert_array_equal(
        np.asarray(open_image(tmp_path / "remote.zarr").array),
        np.asarray(open_image(tmp_path / "local.zarr").array),
    )


# -- training streams only what its patches need -----------------------------------------

#: side of the served image and of the training patches; patches per epoch
SIDE, PATCH, PATCHES = 4096, 64, 100


@pytest.fixture(scope="module")
def big_image(tmp_path_factory):
    """A 4096² uint8 image stored as ``cellvae ingest --chunks 16 16`` stores it: 16² chunks
    inside 64² shards. Encoding its 65536 chunks would take a minute, so a 512² tile
    (Poisson counts over blurred structure) is written through zarr and its 16 shard files
    are copied over the grid: a periodic image with the same bytes per shard and the same
    intensity statistics as the tile."""
    import shutil

    from scipy.ndimage import gaussian_filter

    from cellvae.io.atomic import temporary_path
    from cellvae.io.omezarr import create_image, finalize_image
    from cellvae.io.stats import intensity_stats
    from cellvae.io.store import default_shards

    chunks = (16, 16)  # the README's --chunks 16 16
    shards = default_shards((SIDE, SIDE), chunks, "yx")
    assert shards == (64, 64)
    rng = np.random.default_rng(0)
    field = np.kron(gaussian_filter(rng.random((64, 64)), 2), np.ones((8, 8)))
    tile = rng.poisson(10 + 150 * (field > np.quantile(field, 0.7))).clip(0, 255)
    tile = tile.astype(np.uint8)
    out = tmp_path_factory.mktemp("big") / "big.ome.zarr"
    array = create_image(out, (SIDE, SIDE), np.uint8, "yx", chunks=chunks, shards=shards)
    array[: tile.shape[0], : tile.shape[1]] = tile
    grid = temporary_path(out) / "s0" / "c"
    n, k = SIDE // shards[0], tile.shape[0] // shards[0]
    for i in range(n):
        for j in range(n):
            if i >= k or j >= k:
                (grid / str(i)).mkdir(exist_ok=True)
                shutil.copyfile(grid / str(i % k) / str(j % k), grid / str(i) / str(j))
    return finalize_image(temporary_path(out), out, stats=intensity_stats(tile, "yx"), n_levels=1)


def _fit(url: str, root) -> list[str]:
    return [
        "fit",
        f"--data.paths=[{url}]",
        f"--data.patch_size=[{PATCH}, {PATCH}]",
        "--data.sampler=random",
        "--data.batch_size=10",
        f"--data.patches_per_epoch={PATCHES}",
        "--data.val_fraction=0",
        "--model.arch=flat",
        "--model.widths=[4, 8]",
        "--model.latent_dim=4",
        "--trainer.max_epochs=1",
        "--trainer.limit_val_batches=0",
        "--trainer.accelerator=cpu",
        "--trainer.logger=false",
        "--trainer.enable_checkpointing=false",
        "--trainer.enable_progress_bar=false",
        "--trainer.enable_model_summary=false",
        f"--trainer.default_root_dir={root}",
    ]


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["http", "s3"])
def test_an_epoch_of_100_patches_reads_under_5_percent(kind, big_image, tmp_path, monkeypatch):
    if kind == "http":
        server = Server("http", big_image.parent)
        url = f"{server.base}/{big_image.name}"
    else:
        pytest.importorskip("s3fs")
        pytest.importorskip("moto")
        server = Server("s3", big_image, "train")  # 4096 shard files, put in at start
        for key, value in s3_environment(server.port).items():
            monkeypatch.setenv(key, value)
        url = f"s3://train/{big_image.name}"
    try:
        _check_epoch_bytes(server, url, big_image, tmp_path)
    finally:
        server.stop()


def _check_epoch_bytes(server, url, big_image, tmp_path) -> None:
    server.reset()
    assert main(_fit(url, tmp_path)) == 0
    served = server.stats()["bytes"]
    pixels = SIDE * SIDE  # uint8: the image's bytes
    level0 = stored_bytes(big_image / "s0")
    # at least the patches themselves (2.4 % of the pixels, compressed), at most 5 % of either
    assert 0.01 * level0 < served < 0.05 * min(pixels, level0), (served, pixels, level0)


def test_ingest_with_small_chunks_shards_them(tmp_path, rng, monkeypatch):
    """``--chunks 16 16`` on a large image: 16² chunks for streaming, grouped into 64² shard
    files so the folder does not hold one file per chunk (a large image: shards start at
    4096 chunks, lowered here to 64 to keep the test small)."""
    import tifffile

    import cellvae.io.store as store
    from cellvae.io.ingest import ingest

    assert store.default_shards((1024, 1024), (16, 16), "yx") == (64, 64)
    monkeypatch.setattr(store, "SHARD_MIN_CHUNKS", 64)
    data = rng.integers(0, 255, (128, 128), dtype=np.uint8)
    tifffile.imwrite(tmp_path / "in.tif", data)
    out = ingest(tmp_path / "in.tif", tmp_path / "o.zarr", chunks=(16, 16), progress=False)
    array = open_image(out).array
    assert array.chunks == (16, 16) and array.shards == (64, 64)
    files = [p.relative_to(out / "s0").as_posix() for p in out.glob("s0/c/*/*")]
    assert sorted(files) == ["c/0/0", "c/0/1", "c/1/0", "c/1/1"]  # 2 x 2 shards of 64²
    np.testing.assert_array_equal(array[:], data)
