"""``cellvae presets`` and ``cellvae fit --preset``: the presets shipped with the package."""

from __future__ import annotations

from pathlib import Path

import pytest

from cellvae.cli import main
from cellvae.cli.presets import expand_presets
from cellvae.cli.shipped import PRESETS, preset_names, preset_path, shipped_folder
from cellvae.errors import ConfigError

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
#: every YAML under configs/, as the names `cellvae presets` must list
ON_DISK = sorted(p.relative_to(CONFIGS).with_suffix("").as_posix() for p in CONFIGS.rglob("*.yaml"))


def test_the_checkout_serves_its_configs_folder():
    assert shipped_folder(PRESETS) == CONFIGS
    assert sorted(preset_names()) == ON_DISK
    assert preset_names()[0] == "2d_flat_gaussian" and preset_names()[-1] == "layers/slurm_ddp"


def test_list_names_every_preset_with_its_first_line(capsys):
    assert main(["presets"]) == 0
    lines = capsys.readouterr().out.splitlines()
    rows = {line.split()[0]: line.split(maxsplit=1)[1] for line in lines[: len(ON_DISK)]}
    assert sorted(rows) == ON_DISK
    assert rows["2d_hier_dlogistic"].startswith("2D hierarchical VAE with a discretized-logistic")
    assert rows["layers/slurm_ddp"].startswith("data-parallel training under SLURM")
    assert main(["presets", "list"]) == 0
    assert capsys.readouterr().out.splitlines() == lines


def test_show_prints_the_file(capsys):
    assert main(["presets", "show", "3d_hier_dlogistic"]) == 0
    assert capsys.readouterr().out == (CONFIGS / "3d_hier_dlogistic.yaml").read_text()


def test_copy_writes_the_file_then_refuses_to_overwrite(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["presets", "copy", "2d_hier_dlogistic"]) == 0
    copied = tmp_path / "2d_hier_dlogistic.yaml"
    assert copied.read_text() == (CONFIGS / "2d_hier_dlogistic.yaml").read_text()
    assert "cellvae fit --config 2d_hier_dlogistic.yaml" in capsys.readouterr().out

    copied.write_text("mine")
    assert main(["presets", "copy", "2d_hier_dlogistic.yaml", "-o", "."]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "output exists; pass --overwrite" in err
    assert copied.read_text() == "mine"
    assert main(["presets", "copy", "layers/slurm_ddp", "-o", "my.yaml"]) == 0
    assert (tmp_path / "my.yaml").read_text() == (CONFIGS / "layers/slurm_ddp.yaml").read_text()


@pytest.mark.parametrize("argv", [["presets", "show", "nope"], ["fit", "--preset", "nope"]])
def test_an_unknown_preset_is_one_line_naming_the_choices(capsys, argv):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "'nope' is not a shipped preset; choose one of 2d_flat_gaussian, " in err


def test_preset_becomes_config_in_place_so_later_options_override_it():
    path = str(preset_path("2d_hier_dlogistic"))
    argv = ["--preset", "2d_hier_dlogistic", "--trainer.max_steps", "20"]
    assert expand_presets(argv) == ["--config", path, "--trainer.max_steps", "20"]
    layered = ["--preset=ddp_cpu", "--preset", "layers/slurm_ddp.yaml", "--model.lr=1"]
    assert expand_presets(layered) == [
        "--config",
        str(CONFIGS / "ddp_cpu.yaml"),
        "--config",
        str(CONFIGS / "layers" / "slurm_ddp.yaml"),
        "--model.lr=1",
    ]
    for bad in (["--preset"], ["--preset", "--trainer.max_steps=2"], ["--preset="]):
        with pytest.raises(ConfigError, match=r"^--preset: give a preset name"):
            expand_presets(bad)


def test_fit_with_a_preset_trains_with_its_values(tmp_path):
    """The 2D preset on a tiny image: its global latent and likelihood are what got built."""
    import numpy as np
    import tifffile
    import yaml

    from cellvae.io.ingest import ingest

    image = np.random.default_rng(0).integers(0, 255, (64, 64), dtype=np.uint8)
    tifffile.imwrite(tmp_path / "tiny.tif", image)
    zarr = ingest(tmp_path / "tiny.tif", tmp_path / "tiny.ome.zarr", axes="yx", progress=False)
    argv = [
        "fit",
        "--preset",
        "2d_hier_dlogistic",
        f"--data.paths=[{zarr}]",
        "--data.patch_size=[16, 16]",
        "--data.batch_size=2",
        "--data.patches_per_epoch=4",
        "--model.widths=[4, 8]",
        "--model.iwae_samples=2",
        "--trainer.max_steps=2",
        "--trainer.accelerator=cpu",
        "--trainer.enable_progress_bar=false",
        f"--trainer.default_root_dir={tmp_path / 'run'}",
    ]
    assert main(argv) == 0
    saved = yaml.safe_load((tmp_path / "run/lightning_logs/version_0/config.yaml").read_text())
    preset = yaml.safe_load((CONFIGS / "2d_hier_dlogistic.yaml").read_text())
    assert saved["model"]["global_dim"] == preset["model"]["global_dim"] == 32
    assert saved["model"]["likelihood"] == "dlogistic"
    assert saved["model"]["finest_latent"] == preset["model"]["finest_latent"]
    assert saved["model"]["widths"] == [4, 8] and saved["trainer"]["max_steps"] == 2
