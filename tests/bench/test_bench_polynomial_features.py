"""The polynomial-feature experiment: a tiny run on the ZINC fixture gives both MAE rows, the
poly model's inputs are wider by the feature channels and depend on the features, the full suite
runs it, and bad options are rejected with errors that name the argument."""

import json

import pytest
import torch

from gnnagg.bench.cli import _suite, build_parser, main
from gnnagg.bench.config import SuiteConfig, suite_config, suite_from_dict
from gnnagg.bench.real import load_real
from gnnagg.bench.runner import run_suite
from gnnagg.bench.sections.polynomial_features import PolyConfig, PolyGINE, add_poly_features


def _tiny(tmp_path) -> PolyConfig:
    return PolyConfig(
        seeds=(0, 1), hidden=8, layers=1, epochs=2, batch_size=64,
        data_root=str(tmp_path / "data"),
    )  # fmt: skip


def test_tiny_run_reports_both_variants_and_wider_inputs(tmp_path):
    config = SuiteConfig("poly", sizegen=None, speed=None, real=None, poly=_tiny(tmp_path))
    results, out = run_suite(config, tmp_path / "out", progress=False)
    poly = results["poly"]
    assert [(r["dataset"], r["variant"]) for r in poly["summary"]] == [
        ("zinc-plogp", "plain"),
        ("zinc-plogp", "poly"),
    ]
    for row in poly["summary"]:
        assert row["source"] == "fixture" and row["test"]["mae"]["n"] == 2
        assert 0.0 < row["test"]["mae"]["mean"] < float("inf")
    (features,) = poly["features"]
    channels = features["channels"]
    assert features["graphs"] == 200 and features["time_s"] >= 0.0
    assert channels["edge"] > 0
    plain, with_poly = (row["input_widths"] for row in poly["summary"])
    assert plain == {"node": 8, "edge": 8, "graph": 8}
    assert with_poly == {
        "node": 8 + channels["node"],
        "edge": 8 + channels["edge"],
        "graph": 8 + channels["graph"],
    }
    report = (out / "report.md").read_text()
    assert "## Polynomial features" in report
    assert "| zinc-plogp | fixture | GINE + polynomial features | " in report
    assert json.loads((out / "results.json").read_text())["poly"]["summary"]


def test_poly_model_reads_the_features_and_plain_model_ignores_them(tmp_path):
    from torch_geometric.data import Batch

    config = _tiny(tmp_path)
    dataset, split, _, _ = load_real("zinc-plogp", True, config.data_root)
    graphs, info = add_poly_features([dataset[i] for i in range(8)], config)
    assert graphs[0].poly_edge_attr.dtype == torch.float32
    batch = Batch.from_data_list(graphs)
    changed = batch.clone()
    changed.poly_edge_attr = changed.poly_edge_attr + 1.0
    changed.poly_x = changed.poly_x + 1.0
    torch.manual_seed(0)
    channels = info["channels"]
    poly = PolyGINE(8, 1, channels["graph"], channels["node"], channels["edge"]).eval()
    plain = PolyGINE(8, 1).eval()
    with torch.no_grad():
        assert not torch.allclose(poly(batch), poly(changed))
        assert torch.equal(plain(batch), plain(changed))


def test_full_suite_runs_the_experiment_and_round_trips():
    full = suite_config("full")
    assert full.poly is not None and not full.poly.fixture
    assert full.poly.datasets == ("zinc-plogp", "freesolv")
    assert full.poly.normalize == "log1p"
    assert suite_from_dict(json.loads(json.dumps(full.to_dict()))) == full
    assert suite_config("quick").poly is None


def test_cli_poly_modes():
    parse = build_parser().parse_args
    only = _suite(parse(["real", "--poly", "only", "--seeds", "3", "--device", "cpu"]))
    assert only.real is None and only.poly.seeds == (0, 1, 2) and only.poly.fixture
    both = _suite(
        parse(["real", "--poly", "with", "--poly-normalize", "density", "--device", "cpu"])
    )
    assert both.real is not None and both.poly.normalize == "density"
    assert _suite(parse(["real", "--device", "cpu"])).poly is None


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["real", "--poly", "maybe"], "choose from 'off', 'with', 'only'"),
        (["real", "--poly-normalize", "raw"], "'log1p'"),
        (["real", "--poly", "only", "--datasets", "mutag"], "--poly: needs a molecule"),
    ],
)
def test_cli_rejects_bad_poly_options(argv, expected, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([*argv, "--quiet"])
    assert exit_info.value.code == 2
    assert expected in capsys.readouterr().err


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"datasets": ("mutag",)}, "datasets: unknown"),
        ({"normalize": "raw"}, "normalize: expected one of"),
        ({"subset": "2-wl"}, "subset: expected one of"),
        ({"max_degree": 0}, "max_degree"),
        ({"lr": 0.0}, "lr"),
        ({"seeds": ()}, "seeds"),
    ],
)
def test_poly_config_errors_name_the_argument(kwargs, match):
    with pytest.raises(ValueError, match=match):
        PolyConfig(**kwargs)


def test_poly_model_rejects_negative_widths():
    with pytest.raises(ValueError, match="edge_poly"):
        PolyGINE(8, 1, edge_poly=-1)
