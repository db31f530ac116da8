"""Training on sub-meshes in the mesh study: the partitions kept per data set, the core's free
nodes in the loss, the parts taking turns, and the batches and noise of whole-mesh training."""

import pytest
import torch

from gnnagg.bench.studies.mesh import partitioned
from gnnagg.bench.studies.mesh.config import MeshConfig, parse_model_name
from gnnagg.bench.studies.mesh.partitioned import SubMeshSteps, mesh_partitions
from gnnagg.bench.studies.mesh.report import report
from gnnagg.bench.studies.mesh.run import _job_fingerprint, build_model
from gnnagg.bench.studies.mesh.train import fit_mesh_model
from gnnagg.data import NODE_TYPES, mesh_simulation
from gnnagg.models import MeshSimulator, mask_reach, rollout_rmse

_OBSTACLE = NODE_TYPES.index("obstacle")


@pytest.fixture(scope="module")
def sim32():
    return mesh_simulation(2, 300, 5, 4, splits=(0.6, 0.2, 0.2), geometry="varied", cache=False)


def _config(**changes):
    base = dict(
        nodes=300, trajectories=5, val_trajectories=1, test_trajectories=1, steps=4,
        ells=(2.0,), models=("mgn-2x8",), heads=2, train_steps=8, warmup_steps=2, val_points=2,
        normalizer_batches=2, batch_size=2, partitions=3,
    )  # fmt: skip
    return MeshConfig(**(base | changes))


def _simulator(name="mgn-2x8", config=None):
    config = config or _config()
    spec = parse_model_name(name, config.heads)
    torch.manual_seed(0)
    return MeshSimulator(build_model(spec, config), 2)


def test_partitions_follow_the_models_reach_and_are_kept_per_data_set(sim32):
    """The halos cover each study model's reach: its mask over its blocks, or its edges over
    its message-passing steps."""
    for name in ("gt-2x8-adjacency", "gt-2x8-khop2+dilated+global", "mgn-3x8"):
        simulator = _simulator(name)
        spec = parse_model_name(name, 2)
        partitions = mesh_partitions(sim32, 3, simulator)
        assert partitions is mesh_partitions(sim32, 3, simulator)
        assert partitions.num_layers == spec["depth"]
        if spec["family"] == "gt":
            whole_mask = simulator.model.model.mask
            graph = sim32.graph(1)
            built = whole_mask.build(graph.edge_index, num_nodes=300, pos=graph.pos)
            for part in partitions.of(1).parts:
                held = torch.zeros(300, dtype=torch.bool)
                held[part.nodes] = True
                assert torch.equal(held, mask_reach(built, part.core, spec["depth"]))
        else:
            assert partitions.mask is None
    assert mesh_partitions(sim32, 2, simulator) is not mesh_partitions(sim32, 3, simulator)


def test_the_loss_is_on_the_core_free_nodes_and_the_parts_take_turns(sim32):
    simulator = _simulator()
    steps = SubMeshSteps(simulator, sim32, 3, seed=0)
    train_meshes = {int(sim32.mesh_ids[t]) for t in sim32.split("train")}
    assert set(steps.partitions.built) == train_meshes  # built before the first step
    traj = sim32.split("train")[:1]
    u = sim32.u[traj, 1]
    delta = sim32.u[traj, 2] - u
    free = sim32.node_types(traj) != _OBSTACLE
    sizes = []
    for _ in range(3):  # one round: every part once, so every free node once
        prediction, target = steps(traj, u, delta, free)
        assert prediction.shape == target.shape and prediction.requires_grad
        sizes.append(prediction.shape[0])
    assert sum(sizes) == int(free.sum())
    cores = {part.num_core: part for part in steps.partitions.of(int(traj[0])).parts}
    assert len(set(sizes)) > 1 or len(cores) == 1
    assert int(simulator.output_normalizer.accumulations) == 3


def test_sub_mesh_training_draws_the_batches_and_noise_of_whole_mesh_training(sim32, monkeypatch):
    seen = {"whole": [], "parts": []}

    def hook(module, args, kwargs):
        if kwargs.get("accumulate"):
            seen["whole"].append((args[1].clone(), args[0].clone()))

    simulator = _simulator()
    handle = simulator.register_forward_pre_hook(hook, with_kwargs=True)
    fit_mesh_model(simulator, sim32, _config(partitions=1), seed=4)
    handle.remove()
    forward = partitioned.sub_meshes_forward

    def recording(simulator, u, traj, sim, parts, accumulate=False):
        seen["parts"].append((traj.clone(), u.clone()))
        return forward(simulator, u, traj, sim, parts, accumulate)

    monkeypatch.setattr(partitioned, "sub_meshes_forward", recording)
    record = fit_mesh_model(_simulator(), sim32, _config(), seed=4)
    assert len(seen["parts"]) == len(seen["whole"]) == record["steps"] == 8
    for (traj_a, u_a), (traj_b, u_b) in zip(seen["whole"], seen["parts"]):
        assert torch.equal(traj_a, traj_b) and torch.equal(u_a, u_b)


def test_fit_on_sub_meshes_keeps_the_protocol(sim32):
    config = _config()
    simulator = _simulator("gt-1x8-adjacency", config)
    record = fit_mesh_model(simulator, sim32, config, seed=1)
    assert record["steps"] == 8 and [p["step"] for p in record["curve"]] == [4, 6, 8]
    assert record["plateau"]["converged"] in (True, False)
    assert rollout_rmse(simulator, sim32, "test")["rmse"] > 0


def test_sub_mesh_runs_are_kept_apart_and_reported_as_such(tmp_path):
    whole = _config(partitions=1)
    fingerprint = _job_fingerprint(whole, 2.0, "mgn-2x8", 0, "cpu")
    assert fingerprint == _job_fingerprint(MeshConfig(**{**whole.__dict__}), 2.0, "mgn-2x8", 0,
                                           "cpu")
    assert fingerprint != _job_fingerprint(_config(), 2.0, "mgn-2x8", 0, "cpu")
    empty = {"data": [], "summary": [], "runs": [], "baselines": [], "fields": [],
             "cpu_time_s": 0.0, "wall_time_s": 0.0}
    block = report(empty, {**_config().__dict__, "seeds": [0]}, tmp_path)
    assert "one of 3 sub-meshes" in "\n".join(block.lines)


def test_sub_mesh_steps_need_a_simulator(sim32):
    with pytest.raises(TypeError, match="simulator"):
        SubMeshSteps(_simulator().model, sim32, 2, seed=0)
