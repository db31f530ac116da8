"""The one timer and the one peak-memory probe of the harness."""

import pytest
import torch

from gnnagg.bench.measure import (
    MIB,
    median_time_ms,
    paired_median_times_ms,
    paired_times_ms,
    peak_extra_memory,
    peak_method,
    significant,
)


def test_peak_memory_sees_a_temporary_allocation_that_is_freed_before_the_end():
    def spike():
        buffer = torch.ones(64 * MIB // 4)  # 64 MiB, touched, then freed
        return float(buffer[0])

    result, extra = peak_extra_memory(spike)
    assert result == 1.0
    assert extra >= 48 * MIB, (extra / MIB, peak_method())
    _, small = peak_extra_memory(lambda: None)
    assert small < 16 * MIB


def test_timer_and_formatting():
    assert median_time_ms(lambda: None, "cpu", repeats=3) >= 0
    assert significant(1.2345) == "1.23" and significant(1234.5) == "1230"


def test_paired_timer_calls_in_turns_and_counts_cpu_time():
    calls = []
    first = lambda: calls.append("a")  # noqa: E731
    busy = lambda: calls.append("b") or sum(range(20_000))  # noqa: E731
    times = paired_median_times_ms([first, busy], "cpu", repeats=3, warmup=1, clock="cpu")
    assert calls == ["a", "b"] * 4
    assert len(times) == 2 and all(t >= 0 for t in times)
    samples = paired_times_ms([first, busy], "cpu", repeats=4, warmup=0)
    assert [len(s) for s in samples] == [4, 4]
    with pytest.raises(ValueError, match="clock"):
        paired_median_times_ms([first], "cpu", clock="gpu")
