"""Fine-tune a trained VAE on cell-centred crops (as cytoself trains on single-cell crops).

A model trained on random patches of a crowded field learns to describe fields: several cells
cut by the patch edge at any position. ``cellvae embed`` shows it one cell at a time, centred,
with everything else masked. A few hundred updates on exactly those crops (when labels say
where the cells are) teach the global latent to describe the cell it will be asked about;
the symmetries of a microscope image (flips, and quarter turns in the Y/X plane when it is
square) multiply the crops. The objective is the training layer's own ELBO (β = 1).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from cellvae.training.objective import elbo_terms
from cellvae.training.schedules import lr_warmup_factor

#: learning rate and warm-up of the fine-tuning (the presets train at 2e-3)
FINETUNE_LR = 1e-3
FINETUNE_WARMUP = 20


def augment(x: Tensor, generator: torch.Generator) -> Tensor:
    """A random symmetry of a batch ``(B, C, *S)``: a flip of each spatial axis with
    probability 1/2, then a quarter turn (0-3) in the last two axes when they are square."""
    for axis in range(2, x.ndim):
        if int(torch.randint(2, (1,), generator=generator)):
            x = x.flip(axis)
    if x.shape[-1] == x.shape[-2]:
        x = torch.rot90(x, int(torch.randint(4, (1,), generator=generator)), (-2, -1))
    return x


def finetune(
    vae: nn.Module,
    crops: Tensor,
    steps: int,
    batch_size: int = 8,
    lr: float = FINETUNE_LR,
    seed: int = 0,
) -> nn.Module:
    """Train ``vae`` for ``steps`` updates on ``crops`` ``(N, C, *patch)`` (model inputs).

    AdamW with a short linear warm-up, batches drawn with replacement and :func:`augment`-ed,
    gradient norm clipped at 200 (as training). Seeded (batches and posterior draws; the
    caller's random state is left as it was), so the same call gives the same model.
    Returns ``vae`` in eval mode.
    """
    if steps <= 0 or len(crops) == 0:
        return vae.eval()
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(vae.parameters(), lr=lr, weight_decay=0.0)
    device = next(vae.parameters()).device
    vae.train()
    devices = [device] if device.type == "cuda" else []
    with torch.enable_grad(), torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        for step in range(steps):
            for group in opt.param_groups:
                group["lr"] = lr * lr_warmup_factor(step, FINETUNE_WARMUP)
            index = torch.randint(len(crops), (max(batch_size, 2),), generator=gen)
            x = augment(crops[index], gen).to(device)
            loss = elbo_terms(vae, x, beta=1.0).loss
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(vae.parameters(), 200.0)
            opt.step()
    return vae.eval()
