"""Schedules as pure functions of the optimiser step: KL weight β, learning-rate warm-up and
decay.

Keeping them pure (no state, no Lightning) makes resuming exact: the value at a step depends
only on the step, which the checkpoint restores.
"""

from __future__ import annotations

import math

from cellvae.errors import ConfigError, check_choice, check_range

BETA_SCHEDULES = ("constant", "linear", "cyclical")
LR_SCHEDULES = ("constant", "cosine", "step")


def validate_beta_schedule(
    schedule: str, beta: float, warmup_steps: int, cycle_steps: int, cycle_ratio: float
) -> None:
    """Raise :class:`ConfigError` naming the ``model.*`` field that is out of range."""
    check_choice("model.beta_schedule", schedule, BETA_SCHEDULES)
    check_range("model.beta", beta, 0.0)
    check_range("model.beta_warmup_steps", warmup_steps, 0)
    if schedule == "cyclical":
        check_range("model.beta_cycle_steps", cycle_steps, 1)
        if not 0.0 < cycle_ratio <= 1.0:
            raise ConfigError(
                f"model.beta_cycle_ratio: {cycle_ratio!r} is out of range; allowed (0, 1]"
            )


def beta_at(
    step: int,
    schedule: str = "constant",
    beta: float = 1.0,
    warmup_steps: int = 0,
    cycle_steps: int = 1000,
    cycle_ratio: float = 0.5,
) -> float:
    """KL weight β at optimiser step ``step`` (0-based).

    ``constant``: β. ``linear`` (KL warm-up, Sønderby et al. 2016): β·min(1, step/warmup_steps).
    ``cyclical`` (Fu et al. 2019): the step is taken modulo ``cycle_steps``; within a cycle β
    rises linearly from 0 over the first ``cycle_ratio`` of it, then stays at β.
    """
    if schedule == "constant":
        return float(beta)
    if schedule == "linear":
        if warmup_steps <= 0:
            return float(beta)
        return float(beta) * min(1.0, step / warmup_steps)
    if schedule == "cyclical":
        tau = (step % cycle_steps) / cycle_steps
        return float(beta) * min(1.0, tau / cycle_ratio)
    check_choice("model.beta_schedule", schedule, BETA_SCHEDULES)
    raise AssertionError("unreachable")


def lr_warmup_factor(step: int, warmup_steps: int) -> float:
    """Multiplier of the learning rate at step ``step``: linear from 1/warmup_steps to 1."""
    if warmup_steps <= 0:
        return 1.0
    return min(1.0, (step + 1) / warmup_steps)


def validate_lr_schedule(schedule: str, decay_steps: int, decay_factor: float) -> None:
    """Raise :class:`ConfigError` naming the ``model.lr_*`` field that is out of range."""
    check_choice("model.lr_schedule", schedule, LR_SCHEDULES)
    if schedule != "constant":
        check_range("model.lr_decay_steps", decay_steps, 1)
    check_range("model.lr_decay_factor", decay_factor, 0.0, 1.0)


def lr_factor(
    step: int,
    warmup_steps: int,
    schedule: str = "constant",
    decay_steps: int = 0,
    decay_factor: float = 0.1,
) -> float:
    """Multiplier of the learning rate at step ``step``: linear warm-up, then a decay.

    ``constant``: 1 after the warm-up. ``cosine``: from 1 down to ``decay_factor`` along half a
    cosine over ``decay_steps`` steps after the warm-up, then ``decay_factor``. ``step``:
    multiplied by ``decay_factor`` every ``decay_steps`` steps after the warm-up.
    """
    factor = lr_warmup_factor(step, warmup_steps)
    after = step + 1 - max(warmup_steps, 0)
    if schedule == "constant" or after <= 0:
        return factor
    if schedule == "cosine":
        t = min(1.0, after / decay_steps)
        return factor * (decay_factor + (1.0 - decay_factor) * 0.5 * (1.0 + math.cos(math.pi * t)))
    if schedule == "step":
        return factor * decay_factor ** (after // decay_steps)
    check_choice("model.lr_schedule", schedule, LR_SCHEDULES)
    raise AssertionError("unreachable")
