"""The polynomial-feature section: a tiny run on the ZINC fixture through the harness gives a
row per model and feature mode with the baselines, curves, plot and verdicts; the models read
the features (and the plain ones ignore them); the predefined studies and the subcommand build
valid configs; bad options are rejected with errors that name the argument."""

import dataclasses
import json
import math

import pytest
import torch

from gnnagg.bench.cli import _suite, build_parser, main
from gnnagg.bench.config import SuiteConfig, suite_config, suite_from_dict
from gnnagg.bench.datasets import load_real
from gnnagg.bench.runner import run_suite
from gnnagg.bench.studies.poly.config import PolyConfig
from gnnagg.bench.studies.poly.data import prepare_features, regression_baselines
from gnnagg.bench.studies.poly.model import PolyGINE
from gnnagg.bench.studies.poly.report import feature_verdicts


def _tiny(tmp_path, **changes) -> PolyConfig:
    settings = dict(
        seeds=(0, 1), hidden_channels=8, num_layers=2, epochs=2, batch_size=64, max_degree=3,
        features=("none", "all"),
    )  # fmt: skip
    settings.update(changes)
    return PolyConfig(**settings)


def _splits(config, data_root):
    dataset, split, _, _ = load_real("zinc-plogp", False, data_root)
    return {part: [dataset[i] for i in split[part].tolist()] for part in split}


def test_tiny_run_reports_every_model_and_feature_mode(tmp_path):
    config = _tiny(tmp_path, models=("gine", "gine_vn"), schedule="cosine")
    results, out = run_suite(
        SuiteConfig("poly", poly=config), tmp_path / "out", progress=False,
        data_root=tmp_path / "data",
    )  # fmt: skip
    poly = results["poly"]
    assert [(r["model"], r["features"]) for r in poly["summary"]] == [
        ("gine", "none"),
        ("gine_vn", "none"),
        ("gine", "all"),
        ("gine_vn", "all"),
    ]
    for row in poly["summary"]:
        assert row["source"] == "fixture" and row["metric"] == "mae"
        assert row["test"]["mae"]["n"] == 2
        assert 0.0 < row["test"]["mae"]["mean"] < math.inf
        assert row["epoch_time_s"] > 0 and row["epoch_cpu_s"] > 0 and row["num_params"] > 0
    (features,) = poly["features"]
    kept = features["kept_channels"]
    assert features["graphs"] == 200 and features["time_s"] >= 0.0
    assert 0 < features["graphs_with_features"] <= 200
    assert 0 < kept["edge"] <= features["channels"]["edge"]
    plain, with_features = (r["input_widths"] for r in poly["summary"][::2][:2])
    assert plain == {"node": 8, "edge": 8, "graph": 8}
    assert with_features == {
        "node": 8 + kept["node"],
        "edge": 8 + kept["edge"],
        "graph": 8 + kept["graph"],
    }
    assert [b["baseline"] for b in poly["baselines"]] == [
        "predict the training mean",
        "predict the training median",
    ]
    for run in poly["runs"]:
        assert len(run["curve"]["val"]) == len(run["curve"]["lr"]) == 2
        # Cosine annealing: the second epoch trains with a lower rate than the first.
        assert run["curve"]["lr"][1] < run["curve"]["lr"][0] == config.lr
    report = (out / "report.md").read_text()
    assert "## Polynomial features" in report
    assert "| zinc-plogp | fixture | GINE + virtual node | all | " in report
    assert "*predict the training median*" in report and "CPU hours" in report
    assert "**Do the features help?**" in report and "**Against the paper.**" in report
    assert "0.079 for PPGN and 0.071 for PPGN++(6)" in report
    assert (out / "poly_curves_zinc-plogp.png").is_file()
    saved = json.loads((out / "results.json").read_text())
    assert saved["poly"]["summary"] and "poly_curves_zinc-plogp" in str(saved["plots"])


def test_jobs_in_processes_give_the_runs_of_one_process(tmp_path):
    # One torch thread in both runs, as each of the two worker processes gets: a reduction
    # split over more threads rounds differently.
    config = _tiny(tmp_path, models=("gine", "gine_vn"), seeds=(0,), epochs=1)
    data = tmp_path / "data"
    one, _ = run_suite(
        SuiteConfig("one", poly=config, threads=1), tmp_path / "1", progress=False, data_root=data
    )
    two, _ = run_suite(
        SuiteConfig("two", poly=dataclasses.replace(config, jobs=2), threads=2),
        tmp_path / "2",
        progress=False,
        data_root=data,
    )
    keys = ("dataset", "model", "features", "seed", "val", "test", "num_params", "input_widths")
    one_runs, two_runs = (
        [{k: r[k] for k in keys} for r in res["poly"]["runs"]] for res in (one, two)
    )
    assert len(one_runs) == 4 and two_runs == one_runs
    assert [r["source"] for r in two["poly"]["runs"]] == ["fixture"] * 4
    assert (
        two["poly"]["features"][0]["kept_channels"] == one["poly"]["features"][0]["kept_channels"]
    )


def test_features_are_cached_and_standardised(tmp_path):
    config = _tiny(tmp_path)
    splits = _splits(config, tmp_path / "data")
    cache = tmp_path / "cache"
    first, record = prepare_features(splits, "all", config, cache)
    again, cached = prepare_features(splits, "all", config, cache)
    assert not record["cached"] and cached["cached"]
    assert cached["time_s"] == record["time_s"]
    for part in ("train", "val", "test"):
        for a, b in zip(first[part], again[part]):
            assert torch.equal(a.poly_edge_attr, b.poly_edge_attr)
    train_edges = torch.cat([g.poly_edge_attr for g in first["train"]]).double()
    assert train_edges.mean(0).abs().max() < 1e-4
    assert (train_edges.std(0) - 1).abs().max() < 1e-4
    # Channels constant on the training graphs are dropped.
    assert record["kept_channels"]["edge"] < record["channels"]["edge"] or (
        record["kept_channels"] == record["channels"]
    )
    graph = first["train"][0]
    assert graph.poly_x.shape == (graph.num_nodes, record["kept_channels"]["node"])
    assert graph.poly_edge_attr.shape[0] == graph.edge_index.shape[1]


def test_models_read_the_features_and_plain_models_ignore_them(tmp_path):
    from torch_geometric.data import Batch

    config = _tiny(tmp_path)
    splits, record = prepare_features(_splits(config, tmp_path / "data"), "all", config, None)
    batch = Batch.from_data_list(splits["train"][:8])
    changed = batch.clone()
    changed.poly_edge_attr = changed.poly_edge_attr + 1.0
    changed.poly_x = changed.poly_x + 1.0
    channels = record["kept_channels"]
    for virtual_node in (False, True):
        torch.manual_seed(0)
        poly = PolyGINE(8, 2, *channels.values(), virtual_node=virtual_node).eval()
        plain = PolyGINE(8, 2, virtual_node=virtual_node).eval()
        with torch.no_grad():
            assert not torch.allclose(poly(batch), poly(changed))
            assert torch.equal(plain(batch), plain(changed))


def test_virtual_node_model_trains_on_a_single_graph_batch(tmp_path):
    from torch_geometric.data import Batch

    config = _tiny(tmp_path)
    batch = Batch.from_data_list(_splits(config, tmp_path / "data")["train"][:1])
    model = PolyGINE(8, 3, virtual_node=True).train()
    out = model(batch)
    out.sum().backward()
    assert out.shape == (1, 1)
    assert model.virtual_mlps[0][0].weight.grad is not None


def test_regression_baselines_use_the_training_mean_and_median():
    train = torch.tensor([0.0, 1.0, 2.0, 10.0])
    test = torch.tensor([1.0, 3.0])
    mean, median = regression_baselines(train, test)
    assert mean["value"] == pytest.approx(3.25) and median["value"] == pytest.approx(1.0)
    assert mean["test"]["mae"] == pytest.approx((2.25 + 0.25) / 2)
    # torch.median takes the lower of the two middle values.
    assert median["test"]["mae"] == pytest.approx(1.0)
    assert median["test"]["rmse"] == pytest.approx(math.sqrt((0 + 4) / 2))


def _row(model, features, mean, std, n=3):
    stats = {"mean": mean, "std": std, "n": n}
    return {
        "dataset": "d",
        "model": model,
        "features": features,
        "metric": "mae",
        "test": {"mae": stats, "rmse": stats},
    }


def test_feature_verdicts_compare_the_difference_with_the_seed_spread():
    summary = [
        _row("gine", "none", 0.50, 0.01),
        _row("gine", "all", 0.40, 0.01),
        _row("gine", "beyond-2fwl", 0.49, 0.05),
        _row("gine_vn", "none", 0.30, 0.01),
        _row("gine_vn", "all", 0.40, 0.01),
        _row("gine_vn", "beyond-2fwl", 0.20, 0.0, n=1),
    ]
    helps, within, hurts, single = feature_verdicts(summary)
    assert "the features help here" in helps and "-0.100" in helps
    assert "no effect distinguishable from seeds" in within
    assert "the features hurt here" in hurts
    assert "no verdict" in single
    summary[2]["input_widths"] = summary[0]["input_widths"] = {"graph": 8, "node": 8, "edge": 8}
    assert "no feature channel varies" in feature_verdicts(summary)[1]


def test_studies_are_suites_and_round_trip():
    zinc = suite_config("poly-zinc")
    assert list(zinc.sections) == ["poly"]
    assert zinc.poly.datasets == ("zinc-plogp",) and zinc.poly.download
    assert zinc.poly.models == ("gine", "gine_vn")
    assert zinc.poly.features == ("none", "beyond-2fwl", "all")
    assert zinc.poly.seeds == (0, 1, 2) and zinc.poly.schedule == "cosine"
    assert zinc.threads == 1
    freesolv = suite_config("poly-freesolv")
    assert freesolv.poly.datasets == ("ogbg-molfreesolv",)
    for config in (zinc, freesolv, suite_config("full"), suite_config("smoke")):
        assert suite_from_dict(json.loads(json.dumps(config.to_dict()))) == config
    assert suite_config("quick").poly is None
    parse = build_parser().parse_args
    assert _suite(parse(["run", "--suite", "poly-zinc", "--device", "cpu"])) == zinc


def test_poly_subcommand_builds_its_config():
    parse = build_parser().parse_args
    config = _suite(
        parse(
            ["poly", "--datasets", "freesolv", "--models", "gine_vn", "--features", "none",
             "within-2fwl", "--schedule", "plateau", "--seeds", "3", "--no-cache-features",
             "--jobs", "2", "--device", "cpu"]
        )
    ).poly  # fmt: skip
    assert config.datasets == ("freesolv",) and config.models == ("gine_vn",)
    assert config.features == ("none", "within-2fwl") and config.schedule == "plateau"
    assert config.seeds == (0, 1, 2) and not config.download and not config.cache_features
    assert config.jobs == 2
    zinc = _suite(parse(["run", "--suite", "poly-zinc", "--jobs", "2", "--device", "cpu"]))
    assert zinc.poly.jobs == 2


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["poly", "--normalize", "raw"], "'log1p'"),
        (["poly", "--features", "some"], "invalid choice: 'some'"),
        (["poly", "--datasets", "mutag"], "datasets: unknown 'mutag'"),
        (["poly", "--datasets", "ogbg-molesol"], "has no committed fixture"),
        (["poly", "--lr", "nan"], "lr"),
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
        ({"datasets": ("mutag",)}, "datasets: unknown 'mutag'"),
        ({"datasets": "zinc-plogp"}, "datasets: expected a non-empty list"),
        ({"datasets": ("zinc-plogp", "zinc-plogp")}, "datasets: names repeat"),
        ({"datasets": ("ogbg-molhiv",)}, "datasets: 'ogbg-molhiv' has no committed fixture"),
        ({"models": ("pna",)}, "models has unknown entries"),
        ({"models": ("gine", "gine")}, "models: names repeat"),
        ({"features": ()}, "features must name at least one"),
        ({"features": ("2-wl",)}, "features has unknown entries"),
        ({"schedule": "linear"}, "schedule: expected one of"),
        ({"normalize": "raw"}, "normalize: expected one of"),
        ({"max_degree": 0}, "max_degree"),
        ({"max_degree": 9}, "max_degree"),
        ({"lr": 0.0}, "lr"),
        ({"seeds": ()}, "seeds"),
        ({"cache_features": "yes"}, "cache_features"),
        ({"jobs": 0}, "jobs"),
        ({"jobs": 10**6}, "jobs"),
        ({"jobs": 1.5}, "jobs"),
    ],
)
def test_poly_config_errors_name_the_argument(kwargs, match):
    with pytest.raises(ValueError, match=match):
        PolyConfig(**kwargs)


def test_ogb_names_are_accepted_without_fixture():
    config = PolyConfig(datasets=("ogbg-molesol", "ogbg-molfreesolv"), download=True)
    assert config.datasets == ("ogbg-molesol", "ogbg-molfreesolv")
    # ogbg-molfreesolv is served by the freesolv recipe, fixture included.
    assert not PolyConfig(datasets=("ogbg-molfreesolv",)).download


def test_poly_model_rejects_bad_arguments():
    with pytest.raises(ValueError, match="edge_poly"):
        PolyGINE(8, 1, edge_poly=-1)
    with pytest.raises(TypeError, match="virtual_node"):
        PolyGINE(8, 1, virtual_node=1)


def _result():
    row = _row("gine", "none", 0.5, 0.1)
    row.update(val={"mean": 0.5, "std": 0.1, "n": 3}, input_widths={"graph": 8, "node": 8,
               "edge": 8}, num_params=10, epoch_time_s=1.0)  # fmt: skip
    return {"runs": [], "summary": [row], "features": [], "baselines": []}


@pytest.mark.parametrize(
    ("damage", "match"),
    [
        (lambda r: r.pop("summary"), "poly: missing key 'summary'"),
        (lambda r: r["summary"][0].pop("model"), r"poly.summary\[0\]: missing key 'model'"),
        (lambda r: r["summary"][0]["test"].pop("mae"), "test: missing key 'mae'"),
        (lambda r: r["summary"][0].update(metric="auc"), "test has no 'auc'"),
        (lambda r: r["summary"][0].update(epoch_time_s="1"), "epoch_time_s: expected a number"),
        (lambda r: r.update(features=[{"dataset": "d"}]), r"features\[0\]: missing key"),
    ],
)
def test_malformed_results_are_refused(damage, match):
    from gnnagg.bench.studies import SECTIONS

    section = SECTIONS["poly"]
    section.check_result(_result())
    broken = _result()
    damage(broken)
    with pytest.raises(ValueError, match=match):
        section.check_result(broken)


class _FakeOgb(list):
    def __init__(self, task_type, num_tasks, eval_metric):
        super().__init__()
        self.task_type, self.num_tasks, self.eval_metric = task_type, num_tasks, eval_metric

    def get_idx_split(self):
        empty = torch.zeros(0, dtype=torch.long)
        return {"train": empty, "valid": empty, "test": empty}


@pytest.mark.parametrize(
    ("fake", "match"),
    [
        (_FakeOgb("binary classification", 1, "rocauc"), "binary classification set"),
        (_FakeOgb("regression", 12, "mae"), "with 12 tasks"),
        (_FakeOgb("regression", 1, "r2"), "scored by 'r2'"),
    ],
)
def test_ogb_sets_other_than_single_target_regression_are_refused(fake, match, monkeypatch):
    import gnnagg.data
    from gnnagg.bench.studies.poly.data import load_poly_dataset

    monkeypatch.setattr(gnnagg.data, "fetch", lambda name, root=None: fake)
    with pytest.raises(ValueError, match=match):
        load_poly_dataset("ogbg-molhiv", False, None)
    fake.task_type, fake.num_tasks, fake.eval_metric = "regression", 1, "rmse"
    _, split, source, note, metric = load_poly_dataset("ogbg-molesol", False, None)
    assert (source, note, metric) == ("full", None, "rmse")
    assert set(split) == {"train", "val", "test"}
