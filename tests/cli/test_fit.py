"""``cellvae fit | validate`` through LightningCLI on a tiny generated OME-Zarr image."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from cellvae.cli import main
from cellvae.training.checkpoint import load_vae

CONFIGS = Path(__file__).resolve().parents[2] / "configs"

TINY_MODEL = [
    "--model.arch=hierarchical",
    "--model.likelihood=dlogistic",
    "--model.widths=[4, 8]",
    "--model.latent_channels=2",
    "--model.iwae_samples=2",
    "--model.grid_images=2",
]


@pytest.fixture(scope="module")
def tiny_zarr(tmp_path_factory) -> Path:
    """A 64×64 uint8 image with smooth structure, ingested as OME-Zarr with statistics."""
    import tifffile
    from scipy.ndimage import gaussian_filter

    from cellvae.io.ingest import ingest

    folder = tmp_path_factory.mktemp("data")
    noise = np.random.default_rng(0).random((64, 64))
    image = (255 * (gaussian_filter(noise, 2) - 0.3).clip(0, 0.4) / 0.4).astype(np.uint8)
    tifffile.imwrite(folder / "tiny.tif", image)
    return ingest(folder / "tiny.tif", folder / "tiny.ome.zarr", axes="yx", progress=False)


def _fit_args(zarr: Path, root: Path, *extra: str) -> list[str]:
    return [
        "fit",
        f"--data.paths=[{zarr}]",
        "--data.patch_size=[16, 16]",
        "--data.batch_size=4",
        "--data.patches_per_epoch=16",
        "--data.val_fraction=0.25",
        "--data.bits=6",
        *TINY_MODEL,
        "--trainer.accelerator=cpu",
        "--trainer.enable_progress_bar=false",
        "--trainer.enable_model_summary=false",
        f"--trainer.default_root_dir={root}",
        *extra,
    ]


def test_fit_saves_config_and_checkpoint_then_resumes(tiny_zarr, tmp_path):
    validate_every_2 = ["--trainer.val_check_interval=2", "--trainer.check_val_every_n_epoch=null"]
    assert main(_fit_args(tiny_zarr, tmp_path, "--trainer.max_steps=3", *validate_every_2)) == 0
    run = tmp_path / "lightning_logs" / "version_0"
    assert (run / "config.yaml").is_file()
    assert list((run / "images").glob("*.png"))  # no tensorboard: the grid is a PNG
    last = run / "checkpoints" / "last.ckpt"
    ckpt = torch.load(last, weights_only=True)
    assert ckpt["global_step"] == 3
    vae, hparams = load_vae(last)
    assert (hparams["bits"], hparams["in_channels"], hparams["patch_size"]) == (6, 1, [16, 16])
    assert vae.likelihood.bits == 6  # linked from data.bits

    resumed = _fit_args(tiny_zarr, tmp_path, "--trainer.max_steps=5", f"--ckpt_path={last}")
    assert main(resumed) == 0
    ckpt = torch.load(tmp_path / "lightning_logs" / "version_1" / "checkpoints" / "last.ckpt")
    assert ckpt["global_step"] == 5
    adam = ckpt["optimizer_states"][0]["state"]
    assert {float(s["step"]) for s in adam.values()} == {5.0}

    assert main(["validate", "--config", str(run / "config.yaml"), f"--ckpt_path={last}"]) == 0


def test_fast_dev_run_smoke(tiny_zarr, tmp_path):
    args = _fit_args(tiny_zarr, tmp_path, "--trainer.max_steps=3", "--trainer.fast_dev_run=2")
    assert main(args) == 0


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("--model.likelihood=poisson", "model.likelihood: 'poisson' is not allowed; choose one"),
        ("--data.bits=17", "bits: 17 is out of range; allowed [1, 16]"),
        ("--data.patch_size=[15, 15]", "model.patch_size"),
        ("--model.latent_channels=0", "model.latent_channels: 0 is out of range"),
        ("--data.paths=[missing.ome.zarr]", "paths: missing.ome.zarr does not exist"),
    ],
)
def test_bad_config_fails_before_training_with_one_line(
    tiny_zarr, tmp_path, capsys, override, message
):
    code = main([*_fit_args(tiny_zarr, tmp_path, "--trainer.max_steps=3"), override])
    err = capsys.readouterr().err
    assert code != 0
    assert message in err
    assert "Traceback" not in err
    assert not (tmp_path / "lightning_logs").exists()


@pytest.mark.parametrize("preset", sorted(p.name for p in CONFIGS.glob("*.yaml")))
def test_presets_parse(preset, capsys):
    with pytest.raises(SystemExit) as done:
        from cellvae.cli.lightning import _cli_class
        from cellvae.data.datamodule import CellDataModule
        from cellvae.training.module import VAEModule

        _cli_class()(
            VAEModule,
            CellDataModule,
            args=["fit", "--config", str(CONFIGS / preset), "--print_config"],
            auto_configure_optimizers=False,
        )
    assert done.value.code == 0
    assert "data/generated/" in capsys.readouterr().out


@pytest.mark.parametrize("preset", sorted(p.name for p in CONFIGS.glob("*.yaml")))
def test_presets_say_how_to_make_their_data(preset):
    """Every preset trains without edits once the one ingest command it names has run."""
    import re

    import yaml

    from cellvae.data.samples import SAMPLES

    text = (CONFIGS / preset).read_text()
    pattern = r"cellvae ingest --sample (\w+) -o (\S+\.ome\.zarr)"
    commands = {path: name for name, path in re.findall(pattern, text)}
    for path in yaml.safe_load(text)["data"]["paths"]:
        assert path in commands, f"{preset}: no ingest command for {path}"
        assert commands[path] in SAMPLES


def test_missing_data_path_names_the_command_that_makes_it(tiny_zarr, tmp_path, capsys):
    code = main([*_fit_args(tiny_zarr, tmp_path), "--data.paths=[nowhere.ome.zarr]"])
    err = capsys.readouterr().err
    assert code != 0
    assert "cellvae ingest IMAGE -o nowhere.ome.zarr" in err
    assert "cellvae ingest --sample NAME -o nowhere.ome.zarr" in err
