"""The one timer and the one peak-memory probe of the harness."""

import torch

from gnnagg.bench.measure import MIB, median_time_ms, peak_extra_memory, peak_method, significant


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
