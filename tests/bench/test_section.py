"""The study interface: a study registered in one place is run, reported, listed, given a
subcommand (its options from its config's fields) and read back from results.json, with no
other file of the harness changed."""

import dataclasses
import json
from dataclasses import dataclass

import pytest

from gnnagg.bench import section as section_module
from gnnagg.bench.cli import main
from gnnagg.bench.config import SuiteConfig, suite_config, suite_from_dict
from gnnagg.bench.fields import StudyConfig, integer, setting
from gnnagg.bench.runner import run_suite
from gnnagg.bench.section import ReportBlock, Section
from gnnagg.bench.studies import SECTIONS, SUITES


def _words(value, name):
    if isinstance(value, str) or not all(isinstance(w, str) for w in value):
        raise ValueError(f"{name}: expected words, got {value!r}")
    return tuple(value)


@dataclass
class EchoConfig(StudyConfig):
    words: tuple[str, ...] = setting(("hello",), _words, "the words to say")
    repeat: int = setting(1, integer(), "how often")


class EchoSection(Section):
    name = "echo"
    title = "Echo"
    config_type = EchoConfig
    command = "echo"
    command_help = "say the words"
    result_keys = "`echo` {`said`}"

    def suite_config(self, suite, seeds):
        return EchoConfig(repeat=2) if suite == "smoke" else None

    def choices(self):
        return {"echo_words": ["hello", "world"]}

    def run(self, config, context):
        return {"said": list(config.words) * config.repeat, "device": context.device}

    def check_result(self, result):
        super().check_result(result)
        if not isinstance(result.get("said"), list):
            raise ValueError("echo.said: expected a list")

    def report(self, result, config, out_dir):
        path = out_dir / "echo.txt"
        path.write_text(" ".join(result["said"]))
        return ReportBlock([" ".join(result["said"]), ""], {"echo": path})


@pytest.fixture
def echo(monkeypatch):
    """EchoSection registered, as one line in gnnagg/bench/studies/__init__.py would."""
    monkeypatch.setitem(SECTIONS, "echo", EchoSection())
    return SECTIONS["echo"]


def test_a_registered_section_runs_and_reports(echo, tmp_path):
    config = SuiteConfig("echoes", echo=EchoConfig(words=("a", "b"), repeat=2))
    assert config.echo.repeat == 2 and config.sizegen is None
    results, out = run_suite(config, tmp_path / "out", progress=False)
    assert results["echo"] == {"said": ["a", "b", "a", "b"], "device": "cpu"}
    conditions = results["conditions"]["echo"]
    assert conditions["torch_threads"] == 1 and "OMP_WAIT_POLICY" in conditions
    assert set(conditions["load_average"]) == {"start", "end"}
    report = (out / "report.md").read_text()
    assert "## Echo" in report and "a b a b" in report and "`echo` {`said`}" in report
    assert "torch thread(s)" in report
    assert (out / "echo.txt").read_text() == "a b a b"
    again = suite_from_dict(json.loads((out / "results.json").read_text())["config"])
    assert again == config


def test_a_registered_section_joins_the_suites_and_the_command_line(echo, tmp_path, capsys):
    assert suite_config("smoke").echo == EchoConfig(repeat=2)
    assert suite_config("quick").echo is None
    out = tmp_path / "out"
    assert main(["echo", "--words", "x", "y", "--out", str(out), "--quiet"]) == 0
    assert json.loads((out / "results.json").read_text())["echo"]["said"] == ["x", "y"]
    capsys.readouterr()
    assert main(["list", "--json"]) == 0
    listing = json.loads(capsys.readouterr().out)
    assert listing["echo_words"] == ["hello", "world"] and "echo" in listing["sections"]


def test_only_selects_registered_sections(echo, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["run", "--suite", "smoke", "--only", "echo", "--out", str(out), "--quiet"]) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["echo"]["said"] == ["hello", "hello"]
    assert results["config"]["sizegen"] is None


def test_every_registered_section_is_complete():
    for name, section in SECTIONS.items():
        assert section.name == name and section.title and section.result_keys
        assert dataclasses.is_dataclass(section.config_type)
        # Every section takes part in the smoke suite, the one CI runs from a wheel.
        assert isinstance(section.suite_config("smoke", (0,)), section.config_type), name
    assert set(SUITES) >= {"quick", "full", "smoke"}
    assert "one registration line" in section_module.__doc__


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        (dict(nope=EchoConfig()), ValueError, "sections: unknown \\['nope'\\]"),
        (dict(sizegen=EchoConfig()), TypeError, "sizegen: expected a SizeGenConfig"),
        (dict(name="../../x"), ValueError, "name: expected a plain name"),
        (dict(name="/tmp/x"), ValueError, "name"),
        (dict(name=".hidden"), ValueError, "name"),
        (dict(name=""), ValueError, "name"),
        (dict(name="a" * 65), ValueError, "name"),
    ],
)
def test_bad_suite_configs_name_the_argument(kwargs, error, match):
    with pytest.raises(error, match=match):
        SuiteConfig(**kwargs)


def test_a_config_file_cannot_write_outside_the_results_folder(tmp_path, capsys):
    """A --config whose name is a path would have made the default output folder
    experiments/results/<name>-<stamp> point anywhere."""
    for name in ("../../escaped", "/tmp/escaped", "a/b"):
        data = suite_config("smoke").to_dict()
        data["name"] = name
        config_file = tmp_path / "config.json"
        config_file.write_text(json.dumps(data))
        assert main(["run", "--config", str(config_file), "--quiet"]) == 2
        err = capsys.readouterr().err
        assert "name: expected a plain name" in err and "Traceback" not in err
    assert not (tmp_path.parent / "escaped").exists()
