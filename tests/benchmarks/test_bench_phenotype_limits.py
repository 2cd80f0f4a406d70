"""The phenotype-limits benchmark's pieces score what they claim to (known answers)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

BENCHMARKS = Path(__file__).parents[2] / "benchmarks"


@pytest.fixture(scope="module")
def bench():
    sys.path.insert(0, str(BENCHMARKS))  # it imports bench_embed as its neighbour
    try:
        path = BENCHMARKS / "bench_phenotype_limits.py"
        spec = importlib.util.spec_from_file_location("bench_phenotype_limits", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(BENCHMARKS))
    return module


def test_symmetries_are_the_eight_flips_and_quarter_turns(bench):
    x = torch.arange(16.0).reshape(1, 1, 4, 4)
    views = [v.flatten().tolist() for v in bench.symmetries(x)]
    assert len({tuple(v) for v in views}) == 8  # all distinct on an asymmetric image
    assert views[0] == x.flatten().tolist()  # the identity is one of them
    # the group is closed: each view's own eight views are the same set
    again = {tuple(w.flatten().tolist()) for w in bench.symmetries(torch.rot90(x, 1, (-2, -1)))}
    assert again == {tuple(v) for v in views}


def test_scores_are_perfect_on_separated_codes_and_chance_on_noise(bench):
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1, 2], 60)
    photons = np.tile([30.0, 100.0, 1000.0], 60)
    separated = np.eye(3)[y] * 10 + rng.normal(0, 0.1, (180, 3))
    out = bench.scores(separated[::2], separated[1::2], y[::2], y[1::2], photons[1::2])
    assert out["knn"] == out["linear"] == out["knn_1000"] == 1.0
    assert np.array_equal(np.diag(out["knn_confusion"]), [30, 30, 30])
    noise = rng.normal(size=(180, 3))
    out = bench.scores(noise[::2], noise[1::2], y[::2], y[1::2], photons[1::2])
    assert out["knn"] < 0.6 and out["linear"] < 0.6  # chance is 1/3


def test_shifted_views_keep_every_pixel(bench):
    x = torch.rand(40, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    y = bench.shifted(x, torch.Generator().manual_seed(1))
    assert y.shape == x.shape
    # a symmetry and a circular shift move pixels, they neither add nor lose any
    torch.testing.assert_close(y.flatten(1).sort(1).values, x.flatten(1).sort(1).values)


def test_the_linear_probe_reads_a_class_that_nuisance_dimensions_hide_from_knn(bench):
    # one informative direction among 40 of equal-variance nuisance: what the benchmark's
    # two probes tell apart (information present vs. dominating distances)
    rng = np.random.default_rng(1)
    y = np.repeat([0, 1, 2], 100)
    codes = np.concatenate([y[:, None] * 3.0 + rng.normal(0, 0.5, (300, 1)),
                            rng.normal(0, 3.0, (300, 40))], 1)  # fmt: skip
    photons = np.full(150, 1000.0)
    out = bench.scores(codes[::2], codes[1::2], y[::2], y[1::2], photons)
    assert out["linear"] > 0.9 and out["knn"] < 0.7


def test_the_intensity_floor_is_the_mean_and_90th_percentile(bench):
    crops = np.arange(20.0).reshape(2, 1, 2, 5)  # 0..9 and 10..19
    np.testing.assert_allclose(bench.intensity(crops), [[4.5, 8.1], [14.5, 18.1]])
