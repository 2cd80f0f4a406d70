"""β and learning-rate schedules against hand-computed values."""

import pytest

from cellvae.errors import ConfigError
from cellvae.training.schedules import beta_at, lr_warmup_factor, validate_beta_schedule


def test_constant_beta_ignores_step():
    assert beta_at(0, "constant", 0.5) == 0.5
    assert beta_at(10_000, "constant", 0.5) == 0.5


@pytest.mark.parametrize(("step", "expected"), [(0, 0.0), (25, 0.5), (50, 1.0), (99, 2.0 * 0.99)])
def test_linear_warmup_ramps_to_beta(step, expected):
    assert beta_at(step, "linear", 2.0, warmup_steps=100) == pytest.approx(expected)
    assert beta_at(500, "linear", 2.0, warmup_steps=100) == 2.0


@pytest.mark.parametrize(
    ("step", "expected"),
    [
        (0, 0.0),
        (10, 0.25),
        (20, 0.5),
        (40, 1.0),
        (79, 1.0),
        (80, 0.0),
        (100, 0.5),
        (130, 1.0),
        (170, 0.25),
    ],
)
def test_cyclical_beta_restarts_each_cycle(step, expected):
    # cycle of 80 steps, rising over the first half (40 steps), then flat at β = 1
    assert beta_at(step, "cyclical", 1.0, cycle_steps=80, cycle_ratio=0.5) == pytest.approx(
        expected
    )


def test_lr_warmup_factor_is_linear_then_one():
    assert [lr_warmup_factor(s, 4) for s in range(6)] == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]
    assert lr_warmup_factor(0, 0) == 1.0


def test_bad_schedule_names_the_field():
    with pytest.raises(ConfigError, match=r"model\.beta_schedule.*'constant', 'linear'"):
        validate_beta_schedule("sigmoid", 1.0, 0, 10, 0.5)
    with pytest.raises(ConfigError, match=r"model\.beta_cycle_ratio"):
        validate_beta_schedule("cyclical", 1.0, 0, 10, 0.0)


def test_lr_decay_after_warm_up_cosine_and_step():
    from cellvae.training.schedules import lr_factor

    assert [lr_factor(s, 2) for s in (0, 1, 50)] == [0.5, 1.0, 1.0]  # constant: warm-up only
    cos = [lr_factor(s, 2, "cosine", 10, 0.1) for s in (1, 6, 11, 100)]
    assert cos == pytest.approx([1.0, 0.55, 0.1, 0.1])  # 1 -> 0.1 over 10 steps after warm-up
    step = [lr_factor(s, 2, "step", 5, 0.5) for s in (0, 1, 5, 6, 11)]
    assert step == pytest.approx([0.5, 1.0, 1.0, 0.5, 0.25])


def test_lr_schedule_config_errors_name_the_field():
    from cellvae.errors import ConfigError
    from cellvae.training.schedules import validate_lr_schedule

    with pytest.raises(ConfigError, match=r"model\.lr_schedule"):
        validate_lr_schedule("linear", 10, 0.1)
    with pytest.raises(ConfigError, match=r"model\.lr_decay_steps"):
        validate_lr_schedule("cosine", 0, 0.1)
