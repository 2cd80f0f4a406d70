"""Advice for a run whose latents carry no information, from what that run actually did.

A collapse warning that always says "warm up the KL" misleads a user whose run had a warm-up
(every preset has one). The usual causes are different: a run too short for the latents to
pay off (noisy data make the decoder's average image a good first answer, so the latents
start to carry information late), a KL weight or a spatial share that makes every bit in the
embedding too dear, or no floor under a group's rate. :func:`collapse_advice` reads the run's
hyper-parameters (a ``VAEModule``'s, or the ``model:`` section of a saved config) and the
step it reached, and lists only the changes this run did not already make.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

#: a run shorter than this is advised to train longer (the presets' length is 2000 steps)
SHORT_RUN_STEPS = 2000


def collapse_advice(hparams: Mapping[str, Any], steps: int | None, embedding: bool = False) -> str:
    """One sentence of remedies for posterior collapse that apply to this run.

    Parameters
    ----------
    hparams : mapping
        The run's model options (``beta``, ``beta_schedule``, ``beta_warmup_steps``,
        ``free_bits``, ``global_dim``, ``global_norm``, ``latent_channels``); missing keys
        take ``VAEModule``'s defaults.
    steps : int or None
        Optimiser steps the run reached (``None``: unknown).
    embedding : bool
        The advice is for the cell embedding (the global latent) rather than all latents.
    """
    advice = []
    steps = int(steps) if steps is not None else None
    schedule = hparams.get("beta_schedule", "constant")
    warmup = int(hparams.get("beta_warmup_steps", 0) or 0)
    if steps is not None and steps < SHORT_RUN_STEPS:
        advice.append(
            f"train longer (this run stopped at step {steps}; noisy data such as EM or "
            f"cryo-ET need {SHORT_RUN_STEPS} steps or more: --trainer.max_steps)"
        )
    if schedule == "constant" or (schedule == "linear" and warmup == 0):
        advice.append("warm up the KL (model.beta_schedule: linear, model.beta_warmup_steps: 100)")
    elif schedule == "linear" and steps is not None and steps < warmup:
        advice.append(f"let the KL warm-up finish (it runs {warmup} steps; this run stopped first)")
    free = float(hparams.get("free_bits", 0.0) or 0.0)
    if free <= 0:
        advice.append("keep a few nats per latent group (model.free_bits: 2)")
    else:
        advice.append(f"raise the free nats per group (model.free_bits: {2 * free:g})")
    beta = float(hparams.get("beta", 1.0))
    if beta >= 0.5:
        advice.append(f"lower the KL weight (model.beta: {beta / 2:g})")
    if embedding and int(hparams.get("global_dim", 0) or 0) > 0:
        if hparams.get("global_norm", "none") != "batch":
            advice.append("give the embedding a committed rate (model.global_norm: batch)")
        channels = hparams.get("latent_channels", 8)
        channels = channels if isinstance(channels, int) else max(channels)
        if channels > 1:
            advice.append(
                "give the spatial latents a smaller share so the embedding must carry the cell "
                f"(model.latent_channels: {max(channels // 2, 1)})"
            )
    return "; ".join(advice)
