"""Thread settings and load beside every section's numbers, a warning on a busy machine, and
bandwidths printed to three significant figures."""

import pytest

from gnnagg.bench import runner
from gnnagg.bench.config import SuiteConfig
from gnnagg.bench.measure import significant
from gnnagg.bench.runner import run_conditions, run_suite
from gnnagg.bench.studies.sizegen.config import SizeGenConfig
from gnnagg.bench.studies.speed.segment import format_table

TINY = SizeGenConfig(
    tasks=("maximum",), aggregators=("sum",), seeds=(0,), hidden_channels=4, num_train=16,
    num_val=4, num_test=4, test_sizes=(20,), epochs=1, batch_size=8,
)  # fmt: skip


def test_conditions_record_threads_and_environment(monkeypatch):
    monkeypatch.setenv("OMP_WAIT_POLICY", "PASSIVE")
    monkeypatch.delenv("MKL_NUM_THREADS", raising=False)
    conditions = run_conditions()
    assert conditions["OMP_WAIT_POLICY"] == "PASSIVE" and conditions["MKL_NUM_THREADS"] is None
    assert conditions["torch_threads"] >= 1 and conditions["usable_cores"] >= 1
    assert conditions["load_average"]["end"] is None


@pytest.mark.parametrize(("load", "overloaded"), [(0.1, False), (50.0, True)])
def test_a_busy_machine_is_noted_in_results_and_report(tmp_path, monkeypatch, load, overloaded):
    monkeypatch.setattr(runner, "_load", lambda: load)
    monkeypatch.setattr(runner, "_usable_cores", lambda: 4)
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    results, out = run_suite(SuiteConfig("busy", sizegen=TINY), tmp_path / "out", progress=False)
    conditions = results["conditions"]["sizegen"]
    assert conditions["load_average"] == {"start": load, "end": load}
    assert conditions["torch_threads"] == 1 and conditions["OMP_NUM_THREADS"] == "1"
    assert conditions["OMP_WAIT_POLICY"] == "ACTIVE" and conditions["usable_cores"] == 4
    assert conditions["overloaded"] is overloaded
    notes = [n for n in results["notes"] if "busy machine" in n]
    report = (out / "report.md").read_text()
    assert "OMP_WAIT_POLICY=ACTIVE" in report and f"load average (1 min) {load}" in report
    if overloaded:
        assert notes == [
            "section sizegen ran on a busy machine (load average 50.0 at its start, with 3 free "
            "core(s); 1 torch thread(s)): its timings are slower than on an idle machine"
        ]
        assert "busier than the free cores" in report
    else:
        assert notes == [] and "busier" not in report


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (1.234, "1.23"),
        (2.0, "2.00"),
        (0.898, "0.898"),
        (12.34, "12.3"),
        (123.4, "123"),
        (1234.5, "1230"),
        (0.000123456, "0.000123"),
        (0.0, "0"),
    ],
)
def test_significant_figures(value, text):
    assert significant(value) == text


def test_segment_bandwidth_column_has_three_significant_figures():
    row = dict(rows=1_000_000, channels=32, method="copy", order="-", reduce="-", ms=290.0)
    table = format_table({"rows": [dict(row, gb_per_s=1.4), dict(row, gb_per_s=0.898)]})
    assert table.splitlines()[2].endswith("| 1.40 |")
    assert table.splitlines()[3].endswith("| 0.898 |")
