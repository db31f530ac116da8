"""The compile part of the speed study: a tiny run of one method (a cold Inductor compile in
a fresh process: about 20 s) and its table."""

from gnnagg.bench.studies.speed import compile as part
from gnnagg.bench.studies.speed.config import SPEED_PARTS, SpeedConfig


def test_tiny_run_measures_eager_and_compiled_in_one_process():
    config = SpeedConfig(parts=("compile",), smoke=True, compile_methods=("gnnagg LCM[softmax]",))
    rows = []
    result, notes = part.run_part(config, "cpu", rows.append)
    assert "compile" in SPEED_PARTS and part.expected_rows(config) == 1 == len(rows)
    for row in result["rows"]:
        assert row["status"] == "ok", row
        assert row["eager_ms"] > 0 and row["compiled_ms"] > 0 and row["threads"] == 1
        assert row["graph_breaks"] == 0 and row["graphs"] >= 1
    table = part.format_table(result)
    assert "gnnagg LCM[softmax]" in table and "speed-up" in table
    assert notes and "smoke" in notes[0]
