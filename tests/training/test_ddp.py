"""Two CPU processes (ddp_spawn, gloo) train together on rank-sharded patches."""

from __future__ import annotations

import lightning as L
import numpy as np
import pytest
import torch

from cellvae.training.module import VAEModule
from tests.training.conftest import TINY


class _RecordRank(L.Callback):
    """Save each rank's first batch and its final global step under ``folder``."""

    def __init__(self, folder: str) -> None:
        self.folder = folder

    def on_train_batch_start(self, trainer, module, batch, batch_idx) -> None:
        if batch_idx == 0:
            torch.save(batch, f"{self.folder}/batch_rank{trainer.global_rank}.pt")

    def on_train_end(self, trainer, module) -> None:
        first = next(module.model.parameters()).detach()
        torch.save(
            {"step": trainer.global_step, "param": first, "world": trainer.world_size},
            f"{self.folder}/end_rank{trainer.global_rank}.pt",
        )


@pytest.mark.slow
def test_ddp_spawn_two_cpu_processes_train_on_different_patches(tmp_path):
    import tifffile

    from cellvae.data.datamodule import CellDataModule
    from cellvae.io.ingest import ingest

    image = np.random.default_rng(0).integers(0, 256, (64, 64), dtype=np.uint8)
    tifffile.imwrite(tmp_path / "img.tif", image)
    zarr = ingest(tmp_path / "img.tif", tmp_path / "img.ome.zarr", axes="yx", progress=False)
    data = CellDataModule(
        [str(zarr)], [16, 16], sampler="random", batch_size=2, patches_per_epoch=8, seed=3
    )
    module = VAEModule(**{**TINY, "bits": data.bits, "in_channels": data.in_channels})
    trainer = L.Trainer(
        accelerator="cpu",
        devices=2,
        strategy="ddp_spawn",
        max_steps=2,
        limit_val_batches=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=str(tmp_path),
        callbacks=[_RecordRank(str(tmp_path))],
    )
    trainer.fit(module, datamodule=data)
    batches = [torch.load(tmp_path / f"batch_rank{r}.pt") for r in (0, 1)]
    ends = [torch.load(tmp_path / f"end_rank{r}.pt") for r in (0, 1)]
    assert [e["world"] for e in ends] == [2, 2]
    assert [e["step"] for e in ends] == [2, 2]
    assert not torch.equal(batches[0], batches[1])  # each rank reads its own shard
    torch.testing.assert_close(ends[0]["param"], ends[1]["param"])  # gradients were averaged


def test_every_tensor_reduced_after_validation_lives_on_the_modules_device(monkeypatch):
    """NCCL cannot reduce CPU tensors: a module on a GPU must hand the strategy GPU tensors.

    The module is told it lives on the ``meta`` device (no GPU here), so a tensor created on
    the CPU by mistake is caught by the patched reduce, which asserts the device of each one.
    """
    from types import SimpleNamespace

    module = VAEModule(**TINY)
    device = torch.device("meta")
    module._device = device  # what `.to("cuda")` records
    seen = []

    def reduce(tensor, reduce_op="mean"):
        seen.append(tensor.device)
        assert tensor.device == device, f"reduced a tensor on {tensor.device}"
        return torch.ones(tensor.shape)

    fake = SimpleNamespace(strategy=SimpleNamespace(reduce=reduce), sanity_checking=False)
    monkeypatch.setattr(VAEModule, "trainer", property(lambda self: fake))
    monkeypatch.setattr(module, "log", lambda *args, **kwargs: None)
    groups = len(module.eval_model.group_names)
    module._moments = [[torch.zeros(3, device=device)] * 2 + [5] for _ in range(groups)]
    module._log_active_units("val")
    assert len(seen) == 3 * groups


class _TileMeanVAE(VAEModule):
    """Its validation figure is each tile's mean intensity, so the right answer over all
    ranks is known: the mean over every validation tile. Padding, weighting and the reduces
    are cellvae's own."""

    def _batch_figures(self, x, batch_idx, stage):
        return {f"{stage}/tile_mean": x.mean()}, None


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_four_gloo_ranks_with_uneven_validation_shards_give_the_one_process_figures(tmp_path):
    """12 validation tiles in batches of 8 over 4 ranks: 8, 4, 0 and 0 real tiles. Ranks 2
    and 3 must still take part in every reduce (before: they skipped validation and the
    others hung), and the figure is weighted by tiles (before: an unweighted mean of ranks)."""
    from datetime import timedelta

    import tifffile
    from lightning.pytorch.strategies import DDPStrategy

    from cellvae.data.datamodule import CellDataModule
    from cellvae.io.ingest import ingest

    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (64, 192), dtype=np.uint8)
    image[:, 176:] //= 4  # the last validation tiles are darker: unweighted means would show
    tifffile.imwrite(tmp_path / "img.tif", image)
    zarr = ingest(tmp_path / "img.tif", tmp_path / "img.ome.zarr", axes="yx", progress=False)
    data = CellDataModule([str(zarr)], [16, 16], batch_size=8, val_fraction=0.25)
    tiles = list(data.val_set)
    assert len(tiles) == 12
    expected = float(torch.stack([t.mean() for t in tiles]).mean())

    module = _TileMeanVAE(**{**TINY, "bits": data.bits, "in_channels": data.in_channels})
    trainer = L.Trainer(
        accelerator="cpu",
        devices=4,
        strategy=DDPStrategy(
            start_method="spawn", process_group_backend="gloo", timeout=timedelta(seconds=120)
        ),
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=str(tmp_path),
    )
    (result,) = trainer.validate(module, datamodule=data)
    assert result["val/tile_mean"] == pytest.approx(expected, rel=1e-5)
