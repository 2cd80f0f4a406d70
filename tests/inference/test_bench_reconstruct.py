"""The reconstruction benchmark runs (tiny sizes) and reports what it claims to."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch


@pytest.fixture(scope="module")
def bench():
    path = Path(__file__).parents[2] / "benchmarks" / "bench_reconstruct.py"
    spec = importlib.util.spec_from_file_location("bench_reconstruct", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_throughput_reports_pixel_rates_and_redundancy(bench):
    r = bench.throughput(64, 32, 2, "flat", repeats=1, overlap=8, device="cpu")
    assert r["tiled_vox_per_s"] > 0 and r["batched_vox_per_s"] > 0
    assert r["model_redundancy"] == pytest.approx(r["grid_redundancy"])  # 3 x 3 tiles of 32
    assert r["model_redundancy"] == pytest.approx(9 * 32**2 / 64**2)
    assert np.isnan(r["gpu_busy"])  # only measured on a GPU


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal without a GPU")
def test_cuda_without_a_gpu_is_refused(bench, monkeypatch):
    monkeypatch.setattr("sys.argv", ["bench_reconstruct.py", "--device", "cuda"])
    with pytest.raises(SystemExit):
        bench.main()
