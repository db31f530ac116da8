"""Running the mesh study: the positions switch and the aggregator rows build what they say,
jobs in this process or in workers give the same runs, kept jobs are reused only under the same
settings and model code, and are hash-checked."""

import dataclasses

import pytest
import torch

from gnnagg.bench.jobs import run_in_processes
from gnnagg.bench.studies.mesh import run as mesh_run
from gnnagg.bench.studies.mesh.config import MeshConfig, parse_model_name
from gnnagg.bench.studies.mesh.run import _mesh_job, build_model, mesh_job_path, run_mesh
from gnnagg.models import GraphTransformer, MeshGraphNet, node_input_channels

TINY = MeshConfig(
    nodes=200, trajectories=4, val_trajectories=1, test_trajectories=1, steps=3, ells=(2.0,),
    models=("mgn-2x8", "gt-1x8-adjacency"), heads=2, seeds=(0,), train_steps=4,
    warmup_steps=1, val_points=2, normalizer_batches=2, cache=False,
)  # fmt: skip


def _first_linear(model):
    return next(m for m in model.modules() if isinstance(m, torch.nn.Linear))


def test_positions_switch_gives_every_family_the_same_node_features():
    relative, absolute = TINY, dataclasses.replace(TINY, positions="absolute")
    for name in ("mgn-2x8", "gt-1x8-adjacency"):
        spec = parse_model_name(name, heads=2)
        assert _first_linear(build_model(spec, relative)).in_features == node_input_channels(2)
        width = _first_linear(build_model(spec, absolute)).in_features
        assert width == node_input_channels(2, position_features=True)
    # A model's own suffix overrides the study's positions: the ablation row.
    spec = parse_model_name("gt-1x8-adjacency:absolute", heads=2)
    assert _first_linear(build_model(spec, relative)).in_features == node_input_channels(2, True)
    assert isinstance(build_model(parse_model_name("mgn-2x8"), TINY).model, MeshGraphNet)
    assert isinstance(build_model(spec, TINY).model, GraphTransformer)


@pytest.mark.parametrize(
    "aggr, kind", [("lcm_softmax", "LCMAggregation"), ("gru", "GRUAggregation")]
)
def test_aggregator_rows_are_meshgraphnets_with_gnnagg_aggregators(aggr, kind):
    model = build_model(parse_model_name(f"mgn-2x8-{aggr}"), TINY).model
    kinds = [type(step.aggr).__name__ for step in model.processor]
    assert kinds == [kind, kind]
    assert model.processor[0].aggr is not model.processor[1].aggr


def _scores(result):
    keys = ("name", "seed", "ell", "num_params", "one_step_rmse", "rollout_rmse")
    return [{k: run[k] for k in keys} for run in result["runs"]]


def test_jobs_in_processes_and_kept_jobs_give_the_same_runs(tmp_path, monkeypatch):
    one = run_mesh(TINY, progress=False)
    kept = dataclasses.replace(TINY, jobs=2, checkpoints=True)
    # One torch thread in each of the two worker processes, as in this one.
    two = run_mesh(kept, progress=False, out_dir=tmp_path, threads=2)
    assert _scores(two) == _scores(one) and two["resumed_jobs"] == 0
    assert two["fields"][0]["predicted"] == one["fields"][0]["predicted"]
    assert mesh_job_path(tmp_path, 2.0, "gt-1x8-adjacency", 0, 4).is_file()
    # Repeated into the same folder: nothing is trained again, the field is redrawn from the
    # kept weights, and an added seed is the only job that trains.
    # (Two models, each also at half the steps: four jobs.)
    again = run_mesh(kept, progress=False, out_dir=tmp_path)
    assert _scores(again) == _scores(one) and again["resumed_jobs"] == 4
    assert again["fields"] == two["fields"]
    assert again["cpu_time_all_runs_s"] >= again["cpu_time_s"]
    more = run_mesh(dataclasses.replace(kept, seeds=(0, 1)), progress=False, out_dir=tmp_path)
    assert more["resumed_jobs"] == 4 and len(more["runs"]) == 4
    # Other settings are not taken from the folder: the jobs train again.
    other = run_mesh(dataclasses.replace(kept, lr=5e-4), progress=False, out_dir=tmp_path)
    assert other["resumed_jobs"] == 0
    # Nor are jobs trained by other model code.
    monkeypatch.setattr(mesh_run, "MODELS_REVISION", mesh_run.MODELS_REVISION + 1)
    newer = run_mesh(dataclasses.replace(kept, jobs=1), progress=False, out_dir=tmp_path)
    assert newer["resumed_jobs"] == 0


def test_the_half_budget_run_is_the_model_trained_with_half_the_steps(tmp_path):
    config = dataclasses.replace(TINY, train_steps=8, checkpoints=True)
    result = run_mesh(config, progress=False, out_dir=tmp_path)
    alone = run_mesh(
        dataclasses.replace(TINY, train_steps=4, half_budget_check=False), progress=False
    )
    assert _scores({"runs": result["half_budget_runs"]}) == _scores(alone)
    assert all(run["steps"] == 4 for run in result["half_budget_runs"])
    for run, half in zip(result["runs"], result["half_budget_runs"]):
        pair = run["half_budget"]
        assert pair["steps"] == 4 and pair["rollout_rmse"] == half["rollout_rmse"]
        v, v_half = run["curve"][-1]["val_rollout_rmse"], half["curve"][-1]["val_rollout_rmse"]
        assert pair["moved"] == pytest.approx(abs(v_half - v) / v)
    for row in result["summary"]:
        assert len(row["half_budget_moved"]) == 1 and row["half_budget_rollout_rmse"]["mean"] > 0
    # A run at twice the steps into the same folder takes these runs as its half-budget
    # runs: only the 16-step jobs train.
    longer = run_mesh(dataclasses.replace(config, train_steps=16), progress=False, out_dir=tmp_path)
    assert longer["resumed_jobs"] == 2
    assert _scores({"runs": longer["half_budget_runs"]}) == _scores(result)
    # Without the check: no half-budget runs, and the plateau check alone decides.
    plain = run_mesh(dataclasses.replace(TINY, half_budget_check=False), progress=False)
    assert plain["half_budget_runs"] == [] and "half_budget" not in plain["runs"][0]
    assert plain["summary"][0]["half_budget_moved"] == []


def test_each_job_in_processes_is_handed_over_as_it_finishes():
    config = dataclasses.asdict(TINY)
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
    config = dataclasses.replace(TINY, models=("mgn-2x8",), checkpoints=True)
    with pytest.raises(ValueError, match="out_dir: checkpoints need"):
        run_mesh(config, progress=False)
    run_mesh(config, progress=False, out_dir=tmp_path)
    path = mesh_job_path(tmp_path, 2.0, "mgn-2x8", 0, 4)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="sha256 mismatch"):
        run_mesh(config, progress=False, out_dir=tmp_path)


@pytest.mark.parametrize(
    "forge",
    [
        lambda state: state.pop("record"),
        lambda state: state["record"].pop("rollout_rmse"),
        lambda state: state["record"].update(rollout_rmse_per_step="low"),
        lambda state: state.update(weights=[1, 2]),
    ],
)
def test_a_restamped_kept_job_is_refused_with_a_value_error_naming_it(tmp_path, forge):
    from gnnagg.bench.checkpoints import load_checkpoint, save_checkpoint
    from gnnagg.bench.studies.mesh.run import MESH_CHECKPOINT_FORMAT

    config = dataclasses.replace(TINY, models=("mgn-2x8",), checkpoints=True)
    run_mesh(config, progress=False, out_dir=tmp_path)
    path = mesh_job_path(tmp_path, 2.0, "mgn-2x8", 0, 4)
    state = load_checkpoint(path, MESH_CHECKPOINT_FORMAT)
    forge(state)
    save_checkpoint(state, path)  # the sha256 recomputed, as an attacker would
    with pytest.raises(ValueError, match=f"checkpoint {path}: not a job this run can reuse"):
        run_mesh(config, progress=False, out_dir=tmp_path)


def test_generated_data_is_cached_in_the_runs_data_root(tmp_path, monkeypatch):
    # --data-root decides where the study keeps its data: nothing goes to $GNNAGG_DATA.
    monkeypatch.setenv("GNNAGG_DATA", str(tmp_path / "elsewhere"))
    config = dataclasses.replace(TINY, cache=True, models=("gt-1x8-adjacency",), jobs=2)
    run_mesh(config, progress=False, data_root=tmp_path / "root", threads=2)
    assert list((tmp_path / "root" / "mesh_simulation").glob("*.npz"))
    assert not (tmp_path / "elsewhere").exists()
