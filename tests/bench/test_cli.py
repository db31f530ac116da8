"""gnnagg-bench end to end: --help, clear errors, a tiny run with results.json and PNGs,
reruns from a results.json, speed parts that are faked or broken."""

import json
import os

import pytest

from gnnagg.bench.cli import _suite, build_parser, main
from gnnagg.bench.config import SuiteConfig, suite_config
from gnnagg.bench.results import SCHEMA
from gnnagg.bench.runner import run_suite
from gnnagg.bench.studies import SECTIONS, SUITES
from gnnagg.bench.studies.real.config import RealConfig
from gnnagg.bench.studies.sizegen.config import SizeGenConfig
from gnnagg.bench.studies.speed import aggr as aggr_part
from gnnagg.bench.studies.speed import segment as segment_part
from gnnagg.bench.studies.speed.config import SpeedConfig

TOP_KEYS = {
    "schema",
    "suite",
    "created",
    "command",
    "config",
    "machine",
    "wall_time_s",
    "conditions",
    "sizegen",
    "plots",
    "notes",
}
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

TINY_SIZEGEN = [
    "sizegen",
    "--tasks", "maximum",
    "--aggregators", "sum", "lcm_softmax",
    "--seeds", "2", "--epochs", "1",
    "--num-train", "32", "--num-val", "8", "--num-test", "8",
    "--test-sizes", "20", "40", "--hidden-channels", "8", "--batch-size", "16",
    "--quiet",
]  # fmt: skip


def _assert_png(path):
    import matplotlib.image

    assert path.read_bytes()[:8] == PNG_MAGIC
    image = matplotlib.image.imread(path)
    assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100


@pytest.mark.parametrize("command", [[], ["run"], ["sizegen"], ["speed"], ["real"], ["train"]])
def test_help_works_for_every_subcommand(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([*command, "--help"])
    assert exit_info.value.code == 0
    assert "usage: gnnagg-bench" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["run", "--suite", "huge"], "choose from 'quick', 'full'"),
        (["sizegen", "--aggregators", "sum", "median"], "'lcm_gru'"),
        (["sizegen", "--tasks", "sorting"], "'second_minimum'"),
        (["real", "--datasets", "cora"], "'zinc-plogp'"),
        (["speed", "--parts", "gpu"], "'segment'"),
        (["run", "--device", "tpu"], "'cpu'"),
        (["run", "--seeds", "0"], "positive integer"),
        (["frobnicate"], "'run'"),
    ],
)
def test_bad_options_list_the_valid_choices(argv, expected, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    assert expected in capsys.readouterr().err


def test_config_errors_name_the_argument(capsys, tmp_path):
    with pytest.raises(SystemExit):
        main(["sizegen", "--lr", "-1", "--out", str(tmp_path), "--quiet"])
    assert "lr" in capsys.readouterr().err


def test_run_options_are_applied_or_refused(tmp_path, capsys):
    config_file = tmp_path / "config.json"
    quick = _suite(build_parser().parse_args(["run"]))
    config_file.write_text(json.dumps(quick.to_dict()))
    args = build_parser().parse_args(["run", "--config", str(config_file), "--seeds", "1"])
    config = _suite(args)
    assert config.sizegen.seeds == (0,) and config.real.seeds == (0,)
    for argv, match in (
        (["run", "--config", str(config_file), "--suite", "full"], "--suite and --config"),
        (["run", "--only", "poly"], "has no poly section"),
        (["train", "--out", str(tmp_path), "--epochs", "0"], "epochs"),
        (["train", "--out", str(tmp_path), "--seeds", "0"], "--seeds"),
    ):
        with pytest.raises(SystemExit):
            main(argv)
        assert match in capsys.readouterr().err


def test_unsorted_test_sizes_are_sorted():
    config = SizeGenConfig(test_sizes=(64, 20, 64))
    assert config.test_sizes == (20, 64)
    with pytest.raises(ValueError, match="test_sizes"):
        SizeGenConfig(test_sizes=(0, 20))


def test_list_names_everything(capsys):
    assert main(["list", "--json"]) == 0
    listing = json.loads(capsys.readouterr().out)
    assert "lcm_conjugated_sum" in listing["aggregators"]
    assert "second_minimum" in listing["tasks"]
    assert listing["suites"] == list(SUITES)
    expected = {"quick", "full", "smoke", "paper", "paper-cpu", "poly-zinc", "poly-freesolv"}
    assert expected <= set(SUITES)
    assert listing["sections"] == list(SECTIONS)
    assert {"sizegen", "speed", "real", "poly", "attention", "mesh"} <= set(listing["sections"])


def test_tiny_run_writes_results_report_and_plots_and_reruns(tmp_path, capsys):
    out = tmp_path / "first"
    assert main([*TINY_SIZEGEN, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"Report:  {out / 'report.md'}" in printed

    results = json.loads((out / "results.json").read_text())
    assert set(results) == TOP_KEYS
    assert results["schema"] == SCHEMA and results["suite"] == "sizegen"
    assert results["config"]["sizegen"]["aggregators"] == ["sum", "lcm_softmax"]
    for key in ("cpu", "torch", "torch_geometric", "torch_threads", "load_average"):
        assert key in results["machine"]
    runs = results["sizegen"]["runs"]
    assert [(r["aggregator"], r["seed"]) for r in runs] == [
        ("sum", 0),
        ("lcm_softmax", 0),
        ("sum", 1),
        ("lcm_softmax", 1),
    ]
    assert set(runs[0]["test_acc"]) == {"20", "40"}
    summary = results["sizegen"]["summary"]
    assert summary[0]["test"]["40"]["n"] == 2
    assert results["plots"] == ["matched_maximum.png", "sizegen_maximum.png"]
    _assert_png(out / "sizegen_maximum.png")
    _assert_png(out / "matched_maximum.png")
    report = (out / "report.md").read_text()
    assert "| aggregator | sizes 2–16 (val) | size 20 | size 40 |" in report
    assert "lcm_softmax (gnnagg)" in report

    # The same config and seeds give the same models.
    again = tmp_path / "again"
    assert main(["run", "--config", str(out / "results.json"), "--out", str(again), "--quiet"]) == 0
    rerun = json.loads((again / "results.json").read_text())
    assert rerun["config"] == results["config"]
    digests = [r["param_digest"] for r in runs]
    assert [r["param_digest"] for r in rerun["sizegen"]["runs"]] == digests

    # The report can be rebuilt from results.json alone.
    rebuilt = tmp_path / "rebuilt"
    assert main(["report", str(out / "results.json"), "--out", str(rebuilt)]) == 0
    assert (rebuilt / "report.md").read_text() == report


def _fake_aggr(monkeypatch):
    """The aggr part with its measurements replaced: it records the rows it was asked for
    and the OMP_NUM_THREADS its worker processes would see."""

    def run(
        quick=False,
        device="cpu",
        cases=(),
        methods=None,
        cap_gb=16.0,
        timeout_s=600.0,
        progress=None,
        num_nodes=10_000,
    ):
        rows = []
        for case in cases:
            degree = 12 if case == "uniform" else int(case[3:])
            for i, method in enumerate(methods):
                row = dict(
                    case=case,
                    method=method,
                    edges=100,
                    max_degree=degree,
                    status="ok",
                    ms=1.0 + i + degree / 100,
                    extra_mb=2.0 + i,
                )
                rows.append(row)
                if progress is not None:
                    progress(row)
        omp = os.environ.get("OMP_NUM_THREADS")
        return {"benchmark": "aggr", "machine": {}, "channels": 64, "rows": rows, "omp": omp}

    methods = {"pyg Sum": None, "pyg LCM": None, "gnnagg LCM[gru]": None}
    monkeypatch.setattr(aggr_part, "run", run)
    monkeypatch.setattr(aggr_part, "aggregator_methods", lambda: methods)
    monkeypatch.setattr(
        aggr_part, "format_table", lambda r: f"| fake aggr table | {len(r['rows'])} rows |"
    )


def test_speed_parts_ok_skipped_and_broken(tmp_path, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "7")
    _fake_aggr(monkeypatch)

    def broken(config, device, progress=None):
        raise RuntimeError("kernel exploded")

    monkeypatch.setattr(segment_part, "run_part", broken)
    config = SuiteConfig(
        "speed",
        speed=SpeedConfig(
            parts=("aggr", "segment"),
            aggr_methods=None,
            aggr_cases=("uniform", "hub200"),
            aggr_unpadded_cases=("hub5000",),
        ),
    )
    results, out = run_suite(config, tmp_path / "out", progress=False)
    speed = results["speed"]
    assert speed["segment"] == {"status": "error", "reason": "RuntimeError: kernel exploded"}
    # Worker processes get the suite's thread count; the caller's setting comes back after.
    assert speed["aggr"]["result"]["omp"] == "1"
    assert os.environ["OMP_NUM_THREADS"] == "7"
    rows = speed["aggr"]["result"]["rows"]
    assert [(r["case"], r["method"], r["status"]) for r in rows] == [
        ("uniform", "pyg Sum", "ok"),
        ("uniform", "pyg LCM", "ok"),
        ("uniform", "gnnagg LCM[gru]", "ok"),
        ("hub200", "pyg Sum", "ok"),
        ("hub200", "pyg LCM", "ok"),
        ("hub200", "gnnagg LCM[gru]", "ok"),
        ("hub5000", "pyg Sum", "ok"),
        ("hub5000", "pyg LCM", "skipped"),
        ("hub5000", "gnnagg LCM[gru]", "ok"),
    ]
    assert "12.8 GB" in rows[7]["reason"]
    assert results["plots"] == ["speed_aggr.png"]
    _assert_png(out / "speed_aggr.png")
    report = (out / "report.md").read_text()
    assert "| fake aggr table | 9 rows |" in report
    assert "kernel exploded" in report


def test_unknown_aggr_methods_are_an_error_naming_the_valid_ones():
    with pytest.raises(ValueError, match=r"aggr_methods: unknown \['pyg GAT'\]; valid methods"):
        SpeedConfig(parts=("aggr",), aggr_methods=("pyg Sum", "pyg GAT"))
    # Every method the aggr part can build is a valid name (the Triton one needs CUDA).
    from gnnagg.bench.studies.speed.config import AGGR_METHODS

    assert set(aggr_part.aggregator_methods()) <= set(AGGR_METHODS)


def test_a_failing_section_is_recorded_and_the_others_still_run(tmp_path, monkeypatch):
    config = SuiteConfig(
        "mixed",
        sizegen=SizeGenConfig(
            tasks=("maximum",), aggregators=("sum",), seeds=(0,), hidden_channels=4, num_train=16,
            num_val=4, num_test=4, test_sizes=(20,), epochs=1, batch_size=8,
        ),
        speed=SpeedConfig(parts=("aggr",)),
        real=None,
    )  # fmt: skip

    def broken(config, device, progress):
        raise OSError("no such device")

    monkeypatch.setattr("gnnagg.bench.studies.speed.section.run_speed", broken)
    results, out = run_suite(config, tmp_path / "out", progress=False)
    assert results["speed"]["status"] == "error"
    assert "no such device" in results["speed"]["reason"]
    assert results["sizegen"]["runs"][0]["aggregator"] == "sum"
    assert any("speed failed" in n for n in results["notes"])
    assert "Failed:" in (out / "report.md").read_text()


def test_real_data_on_fixtures(tmp_path):
    config = SuiteConfig(
        "real",
        sizegen=None,
        speed=None,
        real=RealConfig(
            datasets=("zinc-plogp", "mutag"), aggregators=("sum", "pna"), seeds=(0,),
            hidden_channels=8, num_layers=1, epochs=1,
        ),
    )  # fmt: skip
    results, out = run_suite(
        config, tmp_path / "out", progress=False, data_root=tmp_path / "data"
    )
    summary = results["real"]["summary"]
    assert [(r["dataset"], r["aggregator"], r["metric"]) for r in summary] == [
        ("zinc-plogp", "sum", "mae"),
        ("zinc-plogp", "pna", "mae"),
        ("mutag", "sum", "accuracy"),
        ("mutag", "pna", "accuracy"),
    ]
    assert summary[0]["sizes"] == {"train": 160, "val": 20, "test": 20}
    assert all(r["source"] == "fixture" for r in summary)
    assert set(results["real"]["runs"][0]["test"]) == {"mae", "rmse"}
    baselines = results["real"]["baselines"]
    assert [b["baseline"] for b in baselines] == [
        "predict the training mean",
        "predict the most frequent training class",
    ]
    assert 0.0 <= baselines[1]["test"]["accuracy"] <= 1.0
    assert "| zinc-plogp | fixture | sum (pyg) | mae" in (out / "report.md").read_text()


def test_parser_defaults_are_the_quick_suite():
    args = build_parser().parse_args(["run"])
    assert args.suite is None and args.device == "auto" and not args.quiet
    assert _suite(args).name == "quick"


def test_report_reads_the_largest_test_size_whatever_the_key_order():
    """Results written before test sizes were sorted may list them in command-line order."""
    from gnnagg.bench.studies.sizegen.report import lcm_paper_comparison, sizegen_table

    def row(aggregator, at_20, at_64):
        stats = {"20": {"mean": at_20, "std": 0.0}, "64": {"mean": at_64, "std": 0.0}}
        test = {"64": stats["64"], "20": stats["20"]}  # unsorted on purpose
        return {
            "task": "t",
            "aggregator": aggregator,
            "val": {"mean": 0.9, "std": 0.0},
            "test": test,
            "train_time_s": 1.0,
        }

    summary = [row("sum", 0.9, 0.1), row("lcm_softmax", 0.5, 0.6)]
    assert lcm_paper_comparison(summary, "t")[0].startswith("Best at size 64")
    header = sizegen_table(summary, "t").splitlines()[0]
    assert header.index("size 20") < header.index("size 64")


@pytest.mark.parametrize("command", [["sizegen", "--quiet"], ["train"]])
def test_an_out_that_cannot_be_a_folder_is_one_line_and_exit_2(command, tmp_path, capsys):
    afile = tmp_path / "afile"
    afile.write_text("x")
    for out, reason in ((afile, "exists and is not a folder"), (afile / "sub", "is a file")):
        assert main([*command, "--out", str(out), "--epochs", "1"]) == 2
        err = capsys.readouterr().err
        assert reason in err and len(err.strip().splitlines()) == 1


def test_a_config_file_never_chooses_where_data_is_built(tmp_path, capsys):
    config = suite_config("smoke").to_dict()
    config["real"]["data_root"] = str(tmp_path / "elsewhere")
    path = tmp_path / "results.json"
    path.write_text(json.dumps({"schema": "gnnagg-bench/1", "config": config}))
    parsed = _suite(build_parser().parse_args(["run", "--config", str(path)]))
    assert "ignored real.data_root" in capsys.readouterr().err
    assert parsed.real == suite_config("smoke").real
    assert not (tmp_path / "elsewhere").exists()


def test_a_data_root_that_is_a_file_and_absurd_seed_counts_are_one_line_and_exit_2(
    tmp_path, capsys
):
    afile = tmp_path / "afile"
    afile.write_text("x")
    argv = ["run", "--suite", "smoke", "--only", "real", "--out", str(tmp_path / "o")]
    assert main([*argv, "--data-root", str(afile)]) == 2
    err = capsys.readouterr().err
    assert "--data-root" in err and "not a folder" in err and len(err.strip().splitlines()) == 1
    with pytest.raises(SystemExit) as exit:
        main(["run", "--suite", "smoke", "--seeds", "1000000000000"])
    assert exit.value.code == 2 and "seeds must be at most" in capsys.readouterr().err
