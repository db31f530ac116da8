"""The mesh-simulation section: a tiny run through the harness, its report and plots, the
exact-solver check through the section path, config and result errors, the subcommand."""

import dataclasses
import json

import pytest
import torch

from gnnagg.bench import cli
from gnnagg.bench.config import SuiteConfig
from gnnagg.bench.mesh_rollout import peak_extra_memory_bytes, plot_field_arrays
from gnnagg.bench.runner import run_suite
from gnnagg.bench.sections.mesh import (
    MeshConfig,
    claims_lines,
    mesh_job_path,
    parse_model_name,
    run_mesh,
)
from gnnagg.bench.studies import SECTIONS
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


def _summary(name, family, params, rmse, std=0.0, epoch=1.0, infer=0.01, mask=None, size="1x8"):
    depth, hidden = (int(v) for v in size.split("x"))
    return {
        "name": name, "ell": 1.0, "family": family, "mask": mask, "depth": depth,
        "hidden": hidden, "num_params": params,
        "rollout_rmse": {"mean": rmse, "std": std}, "one_step_rmse": {"mean": rmse, "std": std},
        "time_per_epoch_s": {"mean": epoch, "std": 0.0},
        "inference_s_per_step": {"mean": infer, "std": 0.0},
        "steps": {"mean": 13.0, "std": 0.0},
    }  # fmt: skip


def _claims(summary, persistence=1.0, mean_delta=None):
    baselines = [{"name": "persistence", "ell": 1.0, "rollout_rmse": persistence}]
    if mean_delta is not None:
        baselines.append({"name": "mean-delta", "ell": 1.0, "rollout_rmse": mean_delta})
    result = {
        "data": [{"ell": 1.0}],
        "summary": summary,
        "baselines": baselines,
        "cpu_time_s": 60.0,
        "wall_time_s": 60.0,
    }
    config = {"dim": 2, "nodes": 1000, "trajectories": 8, "steps": 20, "epochs": None,
              "max_seconds": 8.0, "seeds": [0, 1]}  # fmt: skip
    return "\n".join(claims_lines(result, config))


def test_claims_paragraph_follows_the_numbers():
    mgn = _summary("mgn-15x128", "mgn", 2_000_000, 0.10, epoch=10.0, infer=0.1)
    small = _summary("gt-1x8-adjacency", "gt", 100_000, 0.105, 0.001, 1.0, 0.01, "adjacency")
    wide = _summary("gt-1x8-khop2", "gt", 100_001, 0.05, 0.001, 1.5, 0.02, "khop2")
    text = _claims([mgn, small, wide])
    assert "claim 1 (the smallest masked transformer" in text
    assert "is **supported**: `gt-1x8-adjacency`" in text
    assert "claim 2 (K-hop, dilated windows and global attention lower the rollout error) is " \
        "**supported**" in text  # fmt: skip
    assert "3 of 3 models beat the persistence (u' = u) baseline (1)" in text
    # The stronger trivial baseline is the bar.
    assert "1 of 3 models beat the mean Δu per node baseline (0.1)" in _claims(
        [mgn, small, wide], mean_delta=0.1
    )
    # A transformer twice as bad as MeshGraphNet does not match it; a wider mask that is worse
    # beyond the spread over seeds does not support claim 2.
    worse = _summary("gt-1x8-khop2", "gt", 100_001, 0.3, 0.001, mask="khop2")
    text = _claims([mgn, dict(small, rollout_rmse={"mean": 0.2, "std": 0.0}), worse])
    assert "is **not supported**: `gt-1x8-adjacency`" in text
    assert "lower the rollout error) is **not supported**" in text
    # Within the noise: not resolved; nothing beats persistence: said plainly.
    noisy = _summary("gt-1x8-khop2", "gt", 100_001, 0.104, 0.01, mask="khop2")
    text = _claims([mgn, small, noisy], persistence=0.01)
    assert "**not resolved**" in text and "no model beats the persistence" in text
    # A MeshGraphNet no better than a trivial predictor is no reference for accuracy.
    text = _claims([mgn, small, wide], mean_delta=0.09)
    assert "is **not resolved**: `gt-1x8-adjacency`" in text
    assert "`mgn-15x128` does not beat the mean Δu per node baseline (0.09) in this budget " \
        "(13 training steps)" in text  # fmt: skip
    # The budget names its clock.
    assert "8 s of training" in text
    cpu_timed = [dict(row, clock="cpu") for row in (mgn, small, wide)]
    assert "8 CPU-s of training" in _claims(cpu_timed)


@pytest.mark.parametrize(
    "field, value, match",
    [
        ("nodes", 10, "nodes"),
        ("dim", 4, "dim"),
        ("trajectories", 2, "trajectories"),
        ("ells", [], "ells"),
        ("ells", [1.0, float("inf")], "ells"),
        ("ells", [2.0, 2.0], "ells"),
        ("models", ["transformer"], "models"),
        ("models", ["gt-2x30-adjacency"], "models"),  # 30 not divisible by 4 heads
        ("models", ["gt-2x32-khop3"], "models"),
        ("models", ["mgn-0x32"], "models"),
        ("models", "mgn-2x8", "models"),
        ("seeds", [0, 0], "seeds"),
        ("max_seconds", float("nan"), "max_seconds"),
        ("budget_clock", "process", "budget_clock"),
        ("lr", -1.0, "lr"),
        ("lr_final", 1.0, "lr_final"),
        ("eval_trajectories", 0, "eval_trajectories"),
        ("one_step_stride", 0, "one_step_stride"),
        ("one_step_stride", 10**6, "one_step_stride"),
        ("baselines", ["oracle"], "baselines"),
        ("cache", "yes", "cache"),
        ("jobs", 0, "jobs"),
        ("jobs", 10**6, "jobs"),
        ("checkpoints", 1, "checkpoints"),
    ],
)
def test_bad_config_names_the_field(field, value, match):
    with pytest.raises(ValueError, match=match):
        MeshConfig(**{field: value})


def test_config_needs_a_budget_and_refuses_huge_fields():
    with pytest.raises(ValueError, match="epochs, max_seconds"):
        MeshConfig(epochs=None, max_seconds=None)
    with pytest.raises(ValueError, match="nodes, trajectories, steps"):
        MeshConfig(nodes=2_000_000, trajectories=1000, steps=1000)


def test_model_names_parse():
    assert parse_model_name("mgn-15x128") == {"family": "mgn", "depth": 15, "hidden": 128}
    assert parse_model_name("gt-2x32-khop2+dilated+global")["mask"] == "khop2+dilated+global"


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


def test_every_suite_config_is_valid():
    section = SECTIONS["mesh"]
    for suite in ("quick", "full", "smoke"):
        assert isinstance(section.suite_config(suite, (0, 1)), MeshConfig)
    # The full study is hours long: it keeps its finished jobs, and `run --jobs` reaches it.
    assert section.suite_config("full", (0,)).checkpoints
    parse = cli.build_parser().parse_args
    full = cli._suite(parse(["run", "--suite", "full", "--jobs", "2", "--device", "cpu"]))
    assert full.mesh.jobs == 2
    mesh = cli._suite(parse(["mesh", "--jobs", "3", "--checkpoints", "--device", "cpu"])).mesh
    assert (mesh.jobs, mesh.checkpoints) == (3, True)


def test_trivial_baselines_and_helpers(tmp_path):
    sim = mesh_simulation(2, 200, 4, 3, ell=2.0, cache=False)
    mean = MeanDeltaBaseline(sim)
    train = sim.split("train")
    expected = (sim.u[train, 1:] - sim.u[train, :-1]).double().mean(dim=(0, 1))
    torch.testing.assert_close(mean.mean_delta, expected)
    u = sim.u[[0], 0]
    torch.testing.assert_close(
        mean.predict_next(u, torch.tensor([0]), sim), (u.double() + expected).float()
    )
    torch.testing.assert_close(PersistenceBaseline().predict_next(u, torch.tensor([0]), sim), u)
    value, extra = peak_extra_memory_bytes(lambda: torch.ones(4_000_000).sum())
    assert float(value) == 4_000_000 and extra >= 0
    pos, cells = sim.mesh.pos, sim.mesh.cells
    path = plot_field_arrays(pos, cells, sim.u[0, 1], sim.u[0, 0], tmp_path / "f.png", "t")
    assert path.stat().st_size > 1000
    with pytest.raises(ValueError, match="cells"):
        plot_field_arrays(pos, cells + 10_000, sim.u[0, 1], sim.u[0, 0], tmp_path / "g.png")
    with pytest.raises(ValueError, match="predicted"):
        plot_field_arrays(pos, cells, sim.u[0, 1], sim.u[0, :5], tmp_path / "g.png")


def _scores(result):
    keys = ("name", "seed", "ell", "num_params", "one_step_rmse", "rollout_rmse")
    return [{k: run[k] for k in keys} for run in result["runs"]]


def test_jobs_in_processes_and_kept_jobs_give_the_same_runs(tmp_path):
    config = dataclasses.replace(
        TINY, ells=(2.0,), models=("mgn-2x8", "gt-1x8-adjacency"), seeds=(0,)
    )
    one = run_mesh(config, progress=False)
    kept = dataclasses.replace(config, jobs=2, checkpoints=True)
    # One torch thread in each of the two worker processes, as in this one.
    two = run_mesh(kept, progress=False, out_dir=tmp_path, threads=2)
    assert _scores(two) == _scores(one) and two["resumed_jobs"] == 0
    assert two["fields"][0]["predicted"] == one["fields"][0]["predicted"]
    assert mesh_job_path(tmp_path, 2.0, "gt-1x8-adjacency", 0).is_file()
    # Repeated into the same folder: nothing is trained again, the field is redrawn from the
    # kept weights, and an added seed is the only job that trains.
    again = run_mesh(kept, progress=False, out_dir=tmp_path)
    assert _scores(again) == _scores(one) and again["resumed_jobs"] == 2
    assert again["fields"] == two["fields"]
    assert again["cpu_time_all_runs_s"] >= again["cpu_time_s"]
    more = run_mesh(dataclasses.replace(kept, seeds=(0, 1)), progress=False, out_dir=tmp_path)
    assert more["resumed_jobs"] == 2 and len(more["runs"]) == 4
    # Other settings are not taken from the folder: the jobs train again.
    other = run_mesh(dataclasses.replace(kept, lr=5e-4), progress=False, out_dir=tmp_path)
    assert other["resumed_jobs"] == 0


def test_each_job_in_processes_is_handed_over_as_it_finishes():
    from gnnagg.bench.jobs import run_in_processes
    from gnnagg.bench.sections.mesh import _mesh_job

    config = dataclasses.asdict(dataclasses.replace(TINY, ells=(2.0,), seeds=(0,)))
    calls = [(2.0, name, 0, config, "cpu") for name in ("mgn-2x8", "gt-1x8-adjacency")]
    handed: dict[int, object] = {}

    class Bar:
        def update(self, n):
            pass

        def set_postfix_str(self, text):
            pass

    results = run_in_processes(_mesh_job, calls, 2, 2, Bar(), on_result=handed.__setitem__)
    assert sorted(handed) == [0, 1]
    assert [handed[i][0]["name"] for i in (0, 1)] == ["mgn-2x8", "gt-1x8-adjacency"]
    assert [r[0]["rollout_rmse"] for r in results] == [handed[i][0]["rollout_rmse"] for i in (0, 1)]


def test_kept_jobs_are_hash_checked_and_need_a_folder(tmp_path):
    config = dataclasses.replace(
        TINY, ells=(2.0,), models=("mgn-2x8",), seeds=(0,), checkpoints=True
    )
    with pytest.raises(ValueError, match="out_dir: checkpoints need"):
        run_mesh(config, progress=False)
    run_mesh(config, progress=False, out_dir=tmp_path)
    path = mesh_job_path(tmp_path, 2.0, "mgn-2x8", 0)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="sha256 mismatch"):
        run_mesh(config, progress=False, out_dir=tmp_path)
