"""The mesh study through the harness: a tiny run, its report and pictures rebuilt from
``results.json``, the exact-solver check, result errors, the subcommand and the suites."""

import json

import pytest
import torch

from gnnagg.bench import cli
from gnnagg.bench.config import SuiteConfig
from gnnagg.bench.runner import run_suite
from gnnagg.bench.studies import SECTIONS
from gnnagg.bench.studies.mesh import MeshConfig
from gnnagg.data import mesh_simulation
from gnnagg.models import MeanDeltaBaseline, PersistenceBaseline, rollout_rmse

TINY = MeshConfig(
    nodes=200,
    trajectories=4,
    steps=4,
    ells=(1.0, 3.0),
    models=("mgn-2x8", "gt-1x8-adjacency", "gt-1x8-khop2+dilated+global"),
    heads=2,
    seeds=(0, 1),
    epochs=1,
    max_seconds=None,
    warmup_batches=2,
    eval_trajectories=None,
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
    assert all(d["nodes"] == 200 for d in result["data"])
    assert len(result["runs"]) == 2 * 3 * 2  # ells x models x seeds
    rows = {(r["name"], r["ell"]): r for r in result["summary"]}
    assert set(rows) == {(m, e) for m in TINY.models for e in TINY.ells}
    for row in rows.values():
        assert row["seeds"] == [0, 1] and row["rollout_rmse"]["n"] == 2
        assert row["num_params"] > 0 and row["train_time_s"]["mean"] > 0
        assert row["inference_s_per_step"]["mean"] > 0
        assert len(row["rollout_rmse_per_step"]) == TINY.steps
        assert row["train_peak_extra_bytes"] >= 0
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
    sim = mesh_simulation(2, 200, 4, 4, ell=3.0, cache=False)
    direct = rollout_rmse(PersistenceBaseline(), sim)["rmse"]
    assert baselines[("persistence", 3.0)]["rollout_rmse"] == pytest.approx(direct, rel=1e-12)
    mean = MeanDeltaBaseline(sim)
    train = sim.split("train")
    expected = (sim.u[train, 1:] - sim.u[train, :-1]).double().mean(dim=(0, 1))
    torch.testing.assert_close(mean.mean_delta, expected)


def test_report_has_tables_claims_and_plots(tiny_run):
    _, out = tiny_run
    report = (out / "report.md").read_text()
    assert "## Mesh simulation" in report
    assert "| *persistence (u' = u)* |" in report and "| gt-1x8-adjacency |" in report
    assert "### ℓ = 1 (200 nodes" in report and "### ℓ = 3 (200 nodes" in report
    assert "What this run says about the paper's claims" in report
    assert "claim 1" in report and "claim 2" in report
    for name in ("mesh_rollout.png", "mesh_cost_accuracy.png", "mesh_field_ell1.png",
                 "mesh_field_ell3.png"):  # fmt: skip
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
    argv = ["mesh", "--jobs", "3", "--checkpoints", "--max-seconds", "0", "--epochs", "2"]
    argv += ["--eval-trajectories", "0", "--no-cache", "--seeds", "2", "--device", "cpu"]
    mesh = cli._suite(parse(argv)).mesh
    assert (mesh.jobs, mesh.checkpoints, mesh.max_seconds, mesh.epochs) == (3, True, None, 2)
    assert (mesh.eval_trajectories, mesh.cache, mesh.seeds) == (None, False, (0, 1))
