"""Poisoned configs and malformed results.json files fail with one clear line (exit code 2),
never a traceback, a run with nonsense values, or an allocation they cannot hold."""

import copy
import json
import re

import pytest

from gnnagg.bench.cli import main
from gnnagg.bench.config import suite_config
from gnnagg.bench.results import check_results
from gnnagg.bench.studies.poly.config import PolyConfig
from gnnagg.bench.studies.real.config import RealConfig
from gnnagg.bench.studies.sizegen.config import SizeGenConfig
from gnnagg.bench.studies.speed.config import SpeedConfig
from gnnagg.bench.validation import check_shape, read_json


def _one_line_error(capsys) -> str:
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("gnnagg-bench: error: ")
    return lines[0]


# ---------------------------------------------------------------- configs -------------------
@pytest.mark.parametrize(
    ("build", "match"),
    [
        (lambda: SizeGenConfig(lr=float("inf")), "lr must be finite"),
        (lambda: SizeGenConfig(lr=float("nan")), "lr must be finite"),
        (lambda: SizeGenConfig(lr=-1e-3), "lr must be positive"),
        (lambda: SizeGenConfig(lr="0.01"), "lr must be a real number"),
        (lambda: SizeGenConfig(reg_weight=float("nan")), "reg_weight must be finite"),
        (lambda: SizeGenConfig(reg_weight=float("inf")), "reg_weight must be finite"),
        (lambda: SizeGenConfig(num_train=10**12), "would need about .* of memory, more than"),
        (lambda: SizeGenConfig(num_train=1e12), "num_train must be an integer"),
        (lambda: SizeGenConfig(num_test=10**9, test_sizes=(1 << 20,)), "of memory"),
        (lambda: SizeGenConfig(test_sizes=(2**40,)), "test_sizes.* must be at most"),
        (lambda: SizeGenConfig(epochs=True), "epochs must be an integer"),
        (lambda: SizeGenConfig(regularise="no"), "regularise must be a bool"),
        (lambda: SizeGenConfig(seeds=(0, 0)), "seeds: seeds repeat"),
        (lambda: SizeGenConfig(seeds=(2**40,)), "seeds"),
        (lambda: SizeGenConfig(tasks="maximum"), "tasks must be a list"),
        (lambda: SizeGenConfig(aggregators=(1,)), "aggregators"),
        (lambda: SizeGenConfig(hidden_channels=10**9), "hidden_channels must be at most"),
        (lambda: RealConfig(lr=float("inf")), "lr must be finite"),
        (lambda: RealConfig(reg_weight=-0.5), "reg_weight must be non-negative"),
        (lambda: RealConfig(download="no"), "download must be a bool"),
        (lambda: PolyConfig(max_degree=20), "max_degree must be at most 8"),
        (lambda: PolyConfig(lr=0), "lr must be positive"),
        (lambda: SpeedConfig(cap_gb=float("inf")), "cap_gb must be finite"),
        (lambda: SpeedConfig(timeout_s=-1), "timeout_s"),
        (lambda: SpeedConfig(aggr_cases=("hub0",)), "aggr_cases: expected 'uniform'"),
        (lambda: SpeedConfig(aggr_cases=("hub999999",)), "aggr_cases"),
        (lambda: SpeedConfig(recurrent_cases=("random",)), "recurrent_cases has unknown entries"),
        (lambda: SpeedConfig(quick=1), "quick must be a bool"),
    ],
)
def test_poisoned_config_values_are_refused_naming_the_field(build, match):
    with pytest.raises(ValueError, match=match):
        build()


@pytest.mark.parametrize(
    ("section", "field", "value", "match"),
    [
        ("sizegen", "lr", "Infinity", "Infinity is not a number JSON allows"),
        ("sizegen", "reg_weight", "NaN", "NaN is not a number JSON allows"),
        ("sizegen", "lr", "1e999", "lr must be finite"),
        ("sizegen", "num_train", "1000000000000", "num_train, num_val, num_test, test_sizes"),
        ("sizegen", "epochs", "-3", "epochs must be positive"),
        ("sizegen", "bogus", "1", "sizegen: unknown fields \\['bogus'\\]"),
        ("real", "lr", "0", "lr must be positive"),
        ("real", "download", '"no"', "download must be a bool"),
        ("speed", "parts", '["gpu"]', "parts has unknown entries \\['gpu'\\]"),
    ],
)
def test_a_poisoned_config_file_fails_in_one_line(tmp_path, capsys, section, field, value, match):
    data = suite_config("smoke").to_dict()
    text = json.dumps(data).replace(f'"{section}": {{', f'"{section}": {{"{field}": {value}, ', 1)
    if field in data[section]:
        section_data = dict(data[section])
        section_data.pop(field)
        data[section] = section_data
        text = json.dumps(data).replace(
            f'"{section}": {{', f'"{section}": {{"{field}": {value}, ', 1
        )
    path = tmp_path / "config.json"
    path.write_text(text)
    assert main(["run", "--config", str(path), "--out", str(tmp_path / "out"), "--quiet"]) == 2
    line = _one_line_error(capsys)
    assert f"--config {path}" in line
    assert re.search(match, line), line
    assert not (tmp_path / "out").exists()  # refused before anything ran


@pytest.mark.parametrize(
    ("argv", "match"),
    [
        (["sizegen", "--lr", "inf"], "argument --lr: expected a finite number"),
        (["sizegen", "--lr", "nan"], "argument --lr: expected a finite number"),
        (["sizegen", "--num-train", "1000000000000"], "of memory"),
    ],
)
def test_poisoned_options_are_usage_errors(tmp_path, capsys, argv, match):
    with pytest.raises(SystemExit) as exit_info:
        main([*argv, "--out", str(tmp_path / "out"), "--quiet"])
    assert exit_info.value.code == 2
    assert match in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------- results.json ---------------
def _valid_results() -> dict:
    config = suite_config("smoke").to_dict()
    stats = {"mean": 0.5, "std": 0.1, "n": 2}
    return {
        "schema": "gnnagg-bench/1",
        "suite": "smoke",
        "created": "2026-01-01T00:00:00+00:00",
        "command": "gnnagg-bench run --suite smoke",
        "config": config,
        "machine": {"cpu": "x", "memory_gb": 24.0, "load_average": {"start": 1.0, "end": 2.0}},
        "wall_time_s": {"sizegen": 1.0, "total": 1.0},
        "conditions": {
            "sizegen": {
                "torch_threads": 1,
                "OMP_NUM_THREADS": "1",
                "OMP_WAIT_POLICY": None,
                "usable_cores": 2,
                "load_average": {"start": 0.5, "end": 0.7},
                "overloaded": False,
            }
        },
        "sizegen": {
            "runs": [],
            "summary": [
                {
                    "task": "maximum",
                    "aggregator": "sum",
                    "val": stats,
                    "test": {"20": stats},
                    "train_time_s": 0.1,
                }
            ],
        },
        "speed": {"segment": {"status": "error", "reason": "kernel exploded"}},
        "real": {"status": "error", "reason": "no data"},
        "poly": None,
        "plots": [],
        "notes": [],
    }


def _set(path: str, value):
    def change(results: dict) -> dict:
        results = copy.deepcopy(results)
        *parents, last = path.split(".")
        target = results
        for key in parents:
            target = target[int(key)] if isinstance(target, list) else target[key]
        if value is _DELETE:
            del target[last]
        elif isinstance(target, list):
            target[int(last)] = value
        else:
            target[last] = value
        return results

    return change


_DELETE = object()
# (how the file is broken, what the one-line error names)
MALFORMED_RESULTS = [
    (lambda r: [], "results: expected an object, got list"),
    (lambda r: "results", "results: expected an object, got str"),
    (_set("schema", _DELETE), "results: missing key 'schema'"),
    (_set("schema", "gnnagg-bench/99"), "results.schema: expected 'gnnagg-bench/1'"),
    (_set("config", _DELETE), "results: missing key 'config'"),
    (_set("config", []), "results.config: expected an object"),
    (_set("config.name", "../../x"), "results.config: name: expected a plain name"),
    (_set("config.sizegen.lr", -1), "results.config: lr must be positive"),
    (_set("config.sizegen", None), "results.sizegen: a result without its config"),
    (_set("config.threads", "all"), "threads must be an integer"),
    (_set("machine", "fast"), "results.machine: expected an object"),
    (_set("machine.memory_gb", "24"), "results.machine.memory_gb"),
    (_set("machine.load_average", 3), "results.machine.load_average"),
    (_set("wall_time_s.total", "1 s"), "results.wall_time_s.total: expected a number"),
    (_set("conditions.sizegen.load_average", [1, 2]), "results.conditions.sizegen.load_average"),
    (_set("notes", "none"), "results.notes: expected a list"),
    (_set("notes", [1]), "results.notes[0]: expected str"),
    (_set("sizegen.summary", _DELETE), "results.sizegen: missing key 'summary'"),
    (_set("sizegen.summary", {}), "results.sizegen.summary: expected a list"),
    (_set("sizegen.summary.0.val", 0.5), "results.sizegen.summary[0].val: expected an object"),
    (_set("sizegen.summary.0.val.mean", None), "sizegen.summary[0].val.mean: expected a number"),
    (_set("sizegen.summary.0.test", {"big": {"mean": 1, "std": 0}}), "expected sizes as keys"),
    (_set("sizegen.summary.0.test", {}), "expected sizes as keys"),
    (_set("sizegen.summary.0.task", 3), "sizegen.summary[0].task: expected str"),
    (_set("speed.segment", "ok"), "results.speed.segment: expected an object"),
    (_set("speed.segment", {"status": "ok"}), "results.speed.segment: missing key 'result'"),
    (
        _set("speed.aggr", {"status": "ok", "result": {"rows": [{"case": "u"}]}}),
        "speed.aggr.result.rows[0]: missing key 'method'",
    ),
    (
        _set(
            "speed.aggr",
            {"status": "ok", "result": {"rows": [{"case": "u", "method": "m", "status": "ok"}]}},
        ),
        "speed.aggr.result.rows[0]: missing key 'ms'",
    ),
    (_set("real", {"status": "error", "reason": 5}), "results.real.reason: expected str"),
    (_set("real", {"summary": [{"dataset": "x"}]}), "results.real.summary[0]: missing key"),
]


@pytest.mark.parametrize(("corrupt", "match"), MALFORMED_RESULTS)
def test_malformed_results_are_refused_naming_the_key(corrupt, match):
    with pytest.raises(ValueError, match=re.escape(match)):
        check_results(corrupt(_valid_results()))


def test_the_valid_results_pass_and_report(tmp_path, capsys):
    path = tmp_path / "results.json"
    path.write_text(json.dumps(_valid_results()))
    assert main(["report", str(path), "--out", str(tmp_path / "report")]) == 0
    report = (tmp_path / "report" / "report.md").read_text()
    assert "| sum (pyg) |" in report and "Failed: `no data`" in report


@pytest.mark.parametrize(("corrupt", "match"), MALFORMED_RESULTS)
def test_report_on_malformed_results_fails_in_one_line(tmp_path, capsys, corrupt, match):
    path = tmp_path / "results.json"
    path.write_text(json.dumps(corrupt(_valid_results())))
    assert main(["report", str(path), "--out", str(tmp_path / "report")]) == 2
    line = _one_line_error(capsys)
    assert match in line and str(path) in line
    assert not (tmp_path / "report" / "report.md").exists()


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("[" * 100_000 + "]" * 100_000, "nested deeper than 64 levels"),
        ('{"a":' * 5000 + "1" + "}" * 5000, "nested deeper than 64 levels"),
        ("{", "not valid JSON"),
        ("", "not valid JSON"),
        ('{"schema": NaN}', "NaN is not a number JSON allows"),
        ('{"x": -Infinity}', "-Infinity is not a number JSON allows"),
    ],
)
def test_unreadable_json_fails_in_one_line(tmp_path, capsys, text, match):
    path = tmp_path / "results.json"
    path.write_text(text)
    with pytest.raises(ValueError, match=match):
        read_json(path)
    assert main(["report", str(path)]) == 2
    assert match in _one_line_error(capsys)


def test_binary_and_missing_files_fail_in_one_line(tmp_path, capsys):
    binary = tmp_path / "results.json"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    assert main(["report", str(binary)]) == 2
    assert "not UTF-8" in _one_line_error(capsys)
    assert main(["report", str(tmp_path / "absent.json")]) == 2
    assert "cannot read it" in _one_line_error(capsys)


def test_shapes_name_the_path():
    with pytest.raises(ValueError, match=r"x\.a\[1\]\.b: expected a number, got str"):
        check_shape({"a": [{"b": 1}, {"b": "2"}]}, {"a": [{"b": "number"}]}, "x")
    with pytest.raises(ValueError, match="x: expected int, got bool"):
        check_shape(True, int, "x")
