"""The mesh study through the harness: a tiny run, its report and pictures rebuilt from
``results.json``, the exact-solver check, result errors, the subcommand and the suites."""

import json

import pytest

from gnnagg.bench import cli
from gnnagg.bench.config import SuiteConfig
from gnnagg.bench.runner import run_suite
from gnnagg.bench.studies import SECTIONS
from gnnagg.bench.studies.mesh import MeshConfig
from gnnagg.data import mesh_simulation
from gnnagg.models import MeanDeltaBaseline, PersistenceBaseline, rollout_rmse

TINY = MeshConfig(
    nodes=200,
    trajectories=5,
    val_trajectories=1,
    test_trajectories=2,
    steps=4,
    ells=(1.0, 3.0),
    models=("mgn-2x8", "gt-1x8-adjacency", "gt-1x8-khop2+dilated+global"),
    heads=2,
    seeds=(0, 1),
    train_steps=6,
    warmup_steps=2,
    val_points=3,
    normalizer_batches=2,
    cache=False,
)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("mesh") / "out"
    results, out = run_suite(SuiteConfig("tiny", mesh=TINY), out, progress=False)
    return results, out


def test_tiny_run_is_trained_evaluated_and_summarised(tiny_run):
    results, _ = tiny_run
    result = results["mesh"]
    assert "status" not in result, result.get("traceback")
    assert [d["ell"] for d in result["data"]] == [1.0, 3.0]
    assert all(d["nodes"] == 200 and d["meshes"] == 5 for d in result["data"])
    assert len(result["runs"]) == 2 * 3 * 2  # ells x models x seeds
    rows = {(r["name"], r["ell"]): r for r in result["summary"]}
    assert set(rows) == {(m, e) for m in TINY.models for e in TINY.ells}
    for row in rows.values():
        assert row["seeds"] == [0, 1] and row["rollout_rmse"]["n"] == 2
        assert row["num_params"] > 0 and row["time_per_step_s"]["mean"] > 0
        assert row["inference_s_per_step"]["mean"] > 0
        assert len(row["rollout_rmse_per_step"]) == TINY.steps
        assert row["train_peak_extra_bytes"] >= 0
        # Equal steps for every model; a curve of val_points validation rollouts.
        assert row["steps"]["mean"] == TINY.train_steps and not row["capped"]
        assert [p["step"] for p in row["val_curve"]] == [2, 4, 6]
        assert row["converged"] in (True, False) and row["positions"] == "relative"
    assert rows[("mgn-2x8", 1.0)]["family"] == "mgn"
    assert rows[("gt-1x8-adjacency", 3.0)]["mask"] == "adjacency"
    # Different seeds train different models.
    runs = [r for r in result["runs"] if r["name"] == "mgn-2x8" and r["ell"] == 1.0]
    assert runs[0]["rollout_rmse"] != runs[1]["rollout_rmse"]
    assert result["cpu_time_s"] > 0 and result["wall_time_s"] > 0


def test_exact_solver_through_the_section_has_zero_error_and_baselines_are_honest(tiny_run):
    results, _ = tiny_run
    baselines = {(b["name"], b["ell"]): b for b in results["mesh"]["baselines"]}
    assert set(baselines) == {(b, e) for b in TINY.baselines for e in TINY.ells}
    for ell in TINY.ells:
        exact = baselines[("exact-solver", ell)]
        assert exact["rollout_rmse"] < 1e-6 and exact["one_step_rmse"] < 1e-6
        assert baselines[("persistence", ell)]["rollout_rmse"] > 1e-3
    sim = mesh_simulation(
        2, 200, 5, 4, ell=3.0, splits=TINY.splits(), geometry="varied", cache=False
    )
    direct = rollout_rmse(PersistenceBaseline(), sim)["rmse"]
    assert baselines[("persistence", 3.0)]["rollout_rmse"] == pytest.approx(direct, rel=1e-12)
    mean = rollout_rmse(MeanDeltaBaseline(sim), sim)["rmse"]
    assert baselines[("mean-delta", 3.0)]["rollout_rmse"] == pytest.approx(mean, rel=1e-12)


def test_report_has_tables_claims_and_plots(tiny_run):
    _, out = tiny_run
    report = (out / "report.md").read_text()
    assert "## Mesh simulation" in report
    assert "| *persistence (u' = u)* |" in report and "| gt-1x8-adjacency |" in report
    assert "### ℓ = 1 (200 nodes" in report and "### ℓ = 3 (200 nodes" in report
    assert "What this run says" in report and "| model | parameters | train steps |" in report
    assert "claim 1" in report and "claim 2" in report
    for name in ("mesh_rollout.png", "mesh_learning_curves.png", "mesh_cost_accuracy.png",
                 "mesh_field_ell1.png", "mesh_field_ell3.png"):  # fmt: skip
        assert (out / name).stat().st_size > 1000, name
        assert f"({name})" in report
    written = json.loads((out / "results.json").read_text())
    assert "mesh_field_ell3.png" in written["plots"]
    SECTIONS["mesh"].check_result(written["mesh"])
    # The report is rebuilt from results.json alone (fields included).
    assert cli.main(["report", str(out / "results.json"), "--out", str(out / "again")]) == 0
    assert (out / "again" / "mesh_field_ell1.png").exists()


def test_malformed_result_is_refused_naming_the_place(tiny_run):
    results, _ = tiny_run
    section = SECTIONS["mesh"]
    broken = json.loads(json.dumps(results["mesh"]))
    broken["summary"][0]["rollout_rmse"] = {"mean": "low"}
    with pytest.raises(ValueError, match=r"mesh\.summary\[0\]\.rollout_rmse"):
        section.check_result(broken)
    with pytest.raises(ValueError, match=r"mesh: missing key 'baselines'"):
        section.check_result({k: v for k, v in results["mesh"].items() if k != "baselines"})


def test_subcommand_options_are_validated_in_one_line(capsys):
    for argv, match in (
        (["mesh", "--models", "gt-2x32-everything"], "models"),
        (["mesh", "--ells", "0"], "ells"),
        (["mesh", "--nodes", "5"], "nodes"),
    ):
        with pytest.raises(SystemExit) as exit_info:
            cli.main(argv)
        assert exit_info.value.code == 2
        error = capsys.readouterr().err.strip().splitlines()[-1]
        assert "error:" in error and match in error


def test_every_suite_config_is_valid_and_options_reach_it():
    section = SECTIONS["mesh"]
    for suite in ("quick", "full", "smoke"):
        assert isinstance(section.suite_config(suite, (0, 1)), MeshConfig)
    # The full study is hours long: it keeps its finished jobs, and `run --jobs` reaches it.
    assert section.suite_config("full", (0,)).checkpoints
    parse = cli.build_parser().parse_args
    full = cli._suite(parse(["run", "--suite", "full", "--jobs", "2", "--device", "cpu"]))
    assert full.mesh.jobs == 2
    argv = ["mesh", "--jobs", "3", "--checkpoints", "--max-seconds", "0", "--train-steps", "9"]
    argv += ["--warmup-steps", "3", "--val-points", "3", "--positions", "absolute"]
    argv += ["--no-cache", "--seeds", "3"]
    mesh = cli._suite(parse(argv + ["--device", "cpu"])).mesh
    assert (mesh.jobs, mesh.checkpoints, mesh.max_seconds, mesh.train_steps) == (3, True, None, 9)
    assert (mesh.positions, mesh.cache, mesh.seeds) == ("absolute", False, (0, 1, 2))
    # The protocol is the default of the subcommand and of every suite.
    default = cli._suite(parse(["mesh", "--device", "cpu"])).mesh
    protocol = ("varied", "relative", None)
    assert (default.geometry, default.positions, default.max_seconds) == protocol
    for suite in ("quick", "full", "smoke"):
        config = section.suite_config(suite, (0, 1))
        assert (config.geometry, config.positions, config.max_seconds) == protocol
        assert config.test_trajectories >= 1 and config.train_steps >= 1
    full = section.suite_config("full", (0, 1))
    assert full.test_trajectories >= 8 and full.train_steps >= 4000 and full.ells == (1.0, 4.0)
