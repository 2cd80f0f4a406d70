"""``cellvae export``: bioimage.io packages of the 2D and 3D presets' models.

Each package is tested with ``bioimageio.core.test_model`` (what the Model Zoo's CI runs) and
its network, run through bioimage.io's own prediction, must equal ``cellvae reconstruct`` of
the same tile within 1e-4. Nothing may leave 127.0.0.1 (``loopback_only``).
"""

from __future__ import annotations

import sys
import zipfile

import numpy as np
import pytest
import torch
import yaml

from cellvae.cli import main
from cellvae.errors import CellvaeError
from cellvae.io.omezarr import open_image, write_image
from cellvae.io.stats import intensity_stats
from tests.inference.helpers import save_checkpoint
from tests.io.servers import loopback_only  # noqa: F401  (fixture)

pytest.importorskip("bioimageio.core")
pytestmark = [pytest.mark.usefixtures("loopback_only"), pytest.mark.slow]

CONFIGS = {2: "configs/2d_hier_dlogistic.yaml", 3: "configs/3d_hier_dlogistic.yaml"}


def _preset_model(ndim: int) -> dict:
    """The model section of the 2D / 3D preset, as ``cellvae fit`` saves it."""
    with open(CONFIGS[ndim]) as f:
        config = yaml.safe_load(f)
    model = dict(config["model"])
    for key in list(model):
        if key in ("beta", "beta_schedule", "beta_warmup_steps", "lr", "lr_warmup_steps"):
            model.pop(key)
    data = config["data"]
    return model | {"ndim": ndim, "patch_size": data["patch_size"], "bits": data["bits"]}


def _image(path, ndim: int, rng) -> tuple:
    """A smooth uint8 image larger than the preset's patch, with its statistics."""
    from scipy.ndimage import gaussian_filter

    shape = (48, 80) if ndim == 2 else (24, 40, 40)
    axes = "yx" if ndim == 2 else "zyx"
    voxel = {"y": 0.1, "x": 0.1} | ({"z": 0.5} if ndim == 3 else {})
    data = gaussian_filter(rng.random(shape), 2)
    data = (255 * (data - data.min()) / np.ptp(data)).astype(np.uint8)
    data = np.pad(data, [(0, 0)] * (ndim - 2) + [(8, 8), (0, 0)])  # some background
    write_image(path, data, axes, voxel, stats=intensity_stats(data, axes), n_levels=1)
    return path, voxel


@pytest.fixture(params=[2, 3], ids=["2d", "3d"])
def trained(request, tmp_path, rng):
    """A checkpoint of the preset's architecture (a few random steps from its init) that
    names its training image the way ``cellvae fit`` does."""
    ndim = request.param
    image, voxel = _image(tmp_path / "train.ome.zarr", ndim, rng)
    spatial = "zyx"[-ndim:]
    ckpt = save_checkpoint(
        tmp_path / "model.ckpt",
        **_preset_model(ndim),
        voxel_size=[voxel[a] for a in spatial],
    )
    saved = torch.load(ckpt, weights_only=True)
    with torch.no_grad():  # perturb the zero-initialised layers so every path matters
        for value in saved["state_dict"].values():
            if value.is_floating_point():
                value.add_(0.02 * torch.randn_like(value))
    saved["datamodule_hyper_parameters"] = {"paths": [str(image)], "sampler": "foreground"}
    torch.save(saved, ckpt)
    return ndim, ckpt, image


def _predict(package, raw: np.ndarray) -> dict[str, np.ndarray]:
    """The package's outputs for ``raw``, through bioimage.io's prediction pipeline."""
    from bioimageio.core import load_description, predict

    descr = load_description(str(package))
    sample = predict(model=descr, inputs={"raw": raw})
    return {str(k): v.data.to_numpy() for k, v in sample.members.items()}


def test_export_passes_the_package_test_and_equals_cellvae_reconstruct(trained, tmp_path, capsys):
    ndim, ckpt, image = trained
    package = tmp_path / "model.zip"
    assert main(["export", "--ckpt", str(ckpt), "-o", str(package)]) == 0
    out = capsys.readouterr().out
    assert "bioimageio test: passed" in out and "Reproduce test outputs" in out
    with zipfile.ZipFile(package) as z:
        names = set(z.namelist())
        rdf = yaml.safe_load(z.read("rdf.yaml"))
        doc = z.read("README.md").decode()
    assert {"rdf.yaml", "weights.pt", "cover.png", "README.md", "raw.npy"} <= names
    assert [o["id"] for o in rdf["outputs"]] == ["reconstruction", "embedding", "local_summary"]
    assert rdf["license"] == "BSD-3-Clause" and rdf["cite"] and "## Validation" in doc
    assert "bits/dim" in doc and str(image) in doc

    with zipfile.ZipFile(package) as z:
        raw = np.load(z.open("raw.npy"))
    predicted = _predict(package, raw)

    # the same tile through cellvae reconstruct, normalised by the training image's stats
    tile = tmp_path / "tile.ome.zarr"
    source = open_image(image)
    axes = "zyx"[-ndim:]
    write_image(tile, raw[0, 0], axes, source.voxel_size, stats=source.stats, n_levels=1)
    recon = tmp_path / "recon.ome.zarr"
    argv = ["reconstruct", str(tile), "--ckpt", str(ckpt), "-o", str(recon), "--no-progress"]
    assert main(argv) == 0
    expected = np.asarray(open_image(recon).array)
    got = predicted["reconstruction"][0, 0]
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-4)
    assert np.ptp(expected) > 0.01  # not a constant: the input reaches the output

    from cellvae.export.module import ExportedVAE
    from cellvae.inference.model import load_model, quantizers_for

    vae, hparams = load_model(ckpt)
    q = quantizers_for(source.stats, 1, int(hparams["bits"]), None)
    x = ExportedVAE(vae, q).to_input(torch.from_numpy(raw))
    with torch.no_grad():
        code = vae.embed(x)[0].numpy()
        local = vae.local_summary(x).numpy()
    np.testing.assert_allclose(predicted["embedding"], code, rtol=0, atol=1e-5)
    # the rest of the description cellvae embed writes (its local_* columns)
    assert local.shape[1] > 0 and f"`local_summary`: `(batch, {local.shape[1]})`" in doc
    assert f"embedding {code.shape[1]} + local summary {local.shape[1]}," in out
    np.testing.assert_allclose(predicted["local_summary"], local, rtol=0, atol=1e-5)


def test_export_refusals_are_one_line(tmp_path, capsys, monkeypatch):
    ckpt = save_checkpoint(tmp_path / "m.ckpt")  # no training image recorded
    argv = ["export", "--ckpt", str(ckpt), "-o", str(tmp_path / "m.zip")]
    assert main(argv) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "give the training image with --image" in err
    assert main(["export", "--ckpt", str(ckpt), "-o", str(tmp_path / "m.tar")]) == 1
    assert "is a .zip file" in capsys.readouterr().err
    assert not list(tmp_path.glob("m.*.partial")) and not (tmp_path / "m.zip").exists()

    from cellvae.export.bioimageio import export_model

    monkeypatch.setitem(sys.modules, "bioimageio.spec", None)
    with pytest.raises(CellvaeError, match=r"needs the export extra"):
        export_model(ckpt, tmp_path / "x.zip")
