"""Does an EMA of the weights help? Held-out bits/dim of the raw and EMA weights of one run.

One hierarchical discretized-logistic VAE (the training benchmark's preset) trains on 32×32
patches of the top 3/4 of the bundled ``mitochondria_2d`` sample with the module's optimiser
settings; every ``--every`` steps the held-out bits/dim (bottom 1/4) of the raw weights and
of EMAs with decays 0.99 and 0.999 (all fed by the same run) are printed.

Run: ``python benchmarks/bench_ema.py [--steps 600] [--every 200] [--threads 1]``
"""

from __future__ import annotations

import argparse

import torch
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from cellvae.data.samples import mitochondria_2d
from cellvae.experiments._train import evaluate, random_patches
from cellvae.training.module import VAEModule
from cellvae.training.objective import elbo_terms
from cellvae.training.schedules import lr_factor

DECAYS = (0.99, 0.999)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--every", type=int, default=200)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    image = mitochondria_2d().image
    train_x = random_patches(image[:384], 32, 2048, seed=0)
    test_x = random_patches(image[400:], 32, 256, seed=1)
    torch.manual_seed(0)
    module = VAEModule(
        arch="hierarchical",
        likelihood="dlogistic",
        widths=[16, 32, 64],
        latent_channels=4,
        patch_size=32,
        iwae_samples=0,
        grid_images=0,
    )
    model, hp = module.model, module.hparams
    emas = {d: AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(d)) for d in DECAYS}
    opt = torch.optim.AdamW(model.parameters(), lr=hp.lr, weight_decay=hp.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, hp.lr_warmup_steps))
    gen = torch.Generator().manual_seed(0)
    print("step   raw    " + "  ".join(f"ema {d}" for d in DECAYS) + "   (held-out bits/dim)")
    for step in range(1, args.steps + 1):
        model.train()
        x = train_x[torch.randint(len(train_x), (args.batch,), generator=gen)]
        terms = elbo_terms(model, x, 1.0)
        opt.zero_grad(set_to_none=True)
        terms.loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), hp.grad_clip)
        opt.step()
        sched.step()
        for ema in emas.values():
            ema.update_parameters(model)
        if step % args.every == 0:
            torch.manual_seed(1)
            raw = evaluate(model, test_x)["bits_per_dim"]
            scores = []
            for ema in emas.values():
                torch.manual_seed(1)
                scores.append(evaluate(ema.module, test_x)["bits_per_dim"])
            print(f"{step:5d}  {raw:.4f}  " + "  ".join(f"{s:.4f}   " for s in scores), flush=True)


if __name__ == "__main__":
    main()
