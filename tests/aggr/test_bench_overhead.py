"""The overhead benchmark counts launching ops the way it says (the timed run is not a test)."""

import importlib.util
from pathlib import Path

import pytest
import torch

_PATH = Path(__file__).resolve().parents[2] / "experiments" / "bench_overhead.py"
_SPEC = importlib.util.spec_from_file_location("bench_overhead", _PATH)
bench_overhead = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(bench_overhead)


def test_counts_top_level_kernels_not_views():
    x = torch.randn(8, 4)

    def fn():
        rows = x.view(4, 8).t().t()  # views: no kernel
        return torch.addmm(x[:4], rows, x)  # one call, whatever ATen does inside it

    counts = bench_overhead.count_launching_ops(fn)
    assert counts == {"aten::addmm": 1}


def test_measures_a_row_per_method():
    row = bench_overhead.measure("uniform", "gnnagg LCM[gru]", repeats=1)
    assert row["max_degree"] <= 12 and row["ops"] > 0 and row["ms"] > 0
    table = bench_overhead.format_table([row])
    assert "gnnagg LCM[gru]" in table and str(row["ops"]) in table


def test_triton_row_counts_launches_without_running_kernels():
    pytest.importorskip("triton")
    row = bench_overhead.measure("uniform", bench_overhead.TRITON_METHOD, repeats=1)
    levels = 4  # degrees 10 ± 2
    assert row["triton_launches"] == {
        "triton::pair_forward_kernel": levels,
        "triton::pair_backward_kernel": levels,
    }
    assert row["ms"] is None
