"""DDP training of one mesh-study model, in one process: the share of a global batch each
rank takes, the normalisers' reduction, and that one process trains exactly the study's model.
Two gloo ranks under torchrun are tested in ``test_entry.py``."""

import dataclasses

import pytest
import torch

from gnnagg.bench.studies.mesh.config import MeshConfig, parse_model_name
from gnnagg.bench.studies.mesh.distributed import (
    check_whole_meshes,
    fit_mesh_model_distributed,
    rank_loss,
    rank_share,
    reduce_normalizer_statistics,
)
from gnnagg.bench.studies.mesh.run import build_model
from gnnagg.bench.studies.mesh.train import fit_mesh_model
from gnnagg.bench.training import DistContext
from gnnagg.data import mesh_simulation
from gnnagg.models import MeshSimulator, OnlineNormalizer

CONFIG = MeshConfig(
    nodes=200, trajectories=4, val_trajectories=1, test_trajectories=1, steps=4, ells=(2.0,),
    models=("gt-1x8-adjacency",), heads=2, train_steps=6, warmup_steps=2, val_points=2,
    normalizer_batches=2, batch_size=2, cache=False,
)  # fmt: skip


@pytest.fixture(scope="module")
def sim():
    return mesh_simulation(2, 200, 4, 4, ell=2.0, splits=CONFIG.splits(), geometry="varied",
                           cache=False)  # fmt: skip


def _simulator(name="gt-1x8-adjacency"):
    torch.manual_seed(0)
    return MeshSimulator(build_model(parse_model_name(name, CONFIG.heads), CONFIG), 2)


def test_rank_share_splits_the_global_batch_in_consecutive_runs():
    shares = [rank_share(6, DistContext(rank=r, world_size=3)) for r in range(3)]
    assert shares == [slice(0, 2), slice(2, 4), slice(4, 6)]
    assert rank_share(1, DistContext()) == slice(0, 1)
    with pytest.raises(ValueError, match="batch_size: 3 meshes .* world_size=2"):
        rank_share(3, DistContext(rank=1, world_size=2))


def test_the_ranks_losses_average_to_the_gradient_of_the_global_mean():
    torch.manual_seed(0)
    weight = torch.randn(4, requires_grad=True)
    features = torch.randn(4, 5, 4)
    free = torch.rand(4, 5) > 0.3
    truth = torch.randn(4, 5)
    prediction = features @ weight
    whole = (prediction[free] - truth[free]).pow(2).mean()
    (expected,) = torch.autograd.grad(whole, weight)
    total, grads = int(free.sum()), []
    for rank in range(2):
        share = rank_share(4, DistContext(rank=rank, world_size=2))
        part = (features[share] @ weight, truth[share][free[share]].reshape(-1, 1))
        loss, _ = rank_loss(*part, free[share], total, world_size=2)
        grads.append(torch.autograd.grad(loss, weight)[0])
    torch.testing.assert_close((grads[0] + grads[1]) / 2, expected)


def test_a_batch_the_ranks_cannot_share_is_refused_before_training(sim):
    simulator = _simulator()
    with pytest.raises(ValueError, match="batch_size"):
        fit_mesh_model_distributed(simulator, sim, CONFIG, ctx=DistContext(world_size=4))
    assert int(simulator.node_normalizer.accumulations) == 0


def test_reduction_in_one_process_is_one_accumulation():
    torch.manual_seed(0)
    x = torch.randn(7, 3)
    reduced, plain = OnlineNormalizer(3, max_accumulations=1), OnlineNormalizer(3)
    plain.accumulate(x)
    assert reduce_normalizer_statistics([(reduced, x)], DistContext(), [2.0]) == [2.0]
    for name in ("count", "total", "total_squared", "accumulations"):
        assert torch.equal(getattr(reduced, name), getattr(plain, name))
    # A vetoed update adds nothing; a full normaliser takes no more batches.
    reduce_normalizer_statistics([(plain, x)], DistContext(), [1.0], apply=lambda s: s[0] == 0)
    reduce_normalizer_statistics([(reduced, x)], DistContext())
    assert int(plain.accumulations) == int(reduced.accumulations) == 1
    assert torch.equal(reduced.total, plain.total)


@pytest.mark.parametrize("name", ["gt-1x8-adjacency", "mgn-2x8"])
def test_one_process_trains_the_study_trainers_model(sim, name):
    expected, got = _simulator(name), _simulator(name)
    plain = fit_mesh_model(expected, sim, CONFIG, seed=3)
    record = fit_mesh_model_distributed(got, sim, CONFIG, seed=3)
    for key, value in expected.state_dict().items():
        assert torch.equal(got.state_dict()[key], value), key
    assert [p["step"] for p in record["curve"]] == [p["step"] for p in plain["curve"]]
    for mine, theirs in zip(record["curve"], plain["curve"]):
        assert mine["val_rollout_rmse"] == theirs["val_rollout_rmse"]
        assert mine["train_loss"] == pytest.approx(theirs["train_loss"], rel=1e-5)
    assert (record["world_size"], record["backend"], record["batch_per_rank"]) == (1, None, 2)
    assert record["plateau"] == plain["plateau"] and record["steps"] == CONFIG.train_steps


def test_a_time_cap_stops_where_the_study_trainer_stops(sim):
    capped = dataclasses.replace(CONFIG, max_seconds=1e-9)
    expected, got = _simulator(), _simulator()
    plain = fit_mesh_model(expected, sim, capped)
    record = fit_mesh_model_distributed(got, sim, capped)
    assert record["stopped_by"] == plain["stopped_by"] == "max_seconds"
    assert record["steps"] == plain["steps"] == 1
    # The batch drawn when the cap was seen is not added to the normalisers.
    for key, value in expected.state_dict().items():
        assert torch.equal(got.state_dict()[key], value), key


def test_sub_mesh_training_is_refused_by_name():
    check_whole_meshes(CONFIG)
    with pytest.raises(ValueError, match="partitions: sub-mesh training"):
        check_whole_meshes(dataclasses.replace(CONFIG, partitions=4))
