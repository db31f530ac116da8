"""Synthetic multiset tasks: determinism, labels against a direct computation, splits, errors."""

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch_geometric.data import InMemoryDataset
from torch_geometric.loader import DataLoader

from gnnagg.data import (
    TASKS,
    TEST_SIZES,
    TRAIN_SIZES,
    CountParity,
    DistinctCount,
    MultisetRange,
    MultisetTaskDataset,
    SecondMinimum,
    bits_to_int,
    int_to_bits,
    make_splits,
    make_task,
    split_names,
)

DIRECT = {
    "second_minimum": lambda v: sorted(v)[1],
    "range": lambda v: max(v) - min(v),
    "count_parity": lambda v: sum(1 for a in v if a >= 128) % 2,
    "distinct_count": lambda v: len(set(v)),
    "maximum": max,
}


def _graph_multisets(ds):
    """Decode each graph-level example into (values, label), checking the star layout."""
    out = []
    for data in ds:
        n = int(data.set_size)
        assert data.num_nodes == n + 1
        assert int(data.readout_index) == n
        assert torch.all(data.x[n] == 0)
        assert torch.equal(data.edge_index[0], torch.arange(n))
        assert torch.all(data.edge_index[1] == n)
        out.append((bits_to_int(data.x[:n]).tolist(), int(data.y)))
    return out


def _node_multisets(ds):
    """Decode each node-level example into per-node (in-neighbour values, label)."""
    out = []
    for data in ds:
        values = bits_to_int(data.x)
        src, dst = data.edge_index
        assert not torch.any(src == dst), "self-loop"
        pairs = set(zip(src.tolist(), dst.tolist()))
        assert len(pairs) == src.numel(), "duplicate edge"
        assert torch.all(dst[1:] >= dst[:-1]), "edges not sorted by target"
        deg = torch.bincount(dst, minlength=data.num_nodes)
        assert torch.equal(deg, data.set_size)
        for i in range(data.num_nodes):
            out.append((values[src[dst == i]].tolist(), int(data.y[i])))
    return out


def test_bits_round_trip_most_significant_first():
    v = torch.arange(256)
    bits = int_to_bits(v)
    assert bits.shape == (256, 8) and bits.dtype == torch.float32
    assert torch.equal(bits[128], torch.tensor([1.0, 0, 0, 0, 0, 0, 0, 0]))
    assert torch.equal(bits_to_int(bits), v)
    assert torch.equal(int_to_bits(v.to(torch.uint8)), bits)


@pytest.mark.parametrize("bad", [300, 256, -1, -256])
def test_int_to_bits_refuses_values_that_do_not_fit_8_bits(bad):
    # Without the check 300 encodes as 44 and -1 as 255.
    with pytest.raises(
        ValueError, match=f"values: entries must lie in 0..255 to fit 8 bits, found .*{bad}"
    ):
        int_to_bits(torch.tensor([0, bad]))


@pytest.mark.parametrize("bad", [torch.tensor([1.0]), torch.tensor([True]), [3], 3])
def test_int_to_bits_refuses_non_integer_input(bad):
    with pytest.raises(TypeError, match="values: expected an integer tensor"):
        int_to_bits(bad)


def test_bits_to_int_refuses_non_bits():
    with pytest.raises(ValueError, match="exactly 0 or 1"):
        bits_to_int(torch.tensor([0.6, 0, 0, 0, 0, 0, 0, 0]))
    with pytest.raises(ValueError, match="exactly 0 or 1"):
        bits_to_int(torch.tensor([2, 0, 0, 0, 0, 0, 0, 0]))
    with pytest.raises(ValueError, match="shape \\[..., 8\\]"):
        bits_to_int(torch.ones(3, 7))
    assert bits_to_int(torch.ones(8, dtype=torch.bool)).item() == 255


def test_seeds_do_not_wrap_onto_other_seeds():
    # The stream derivation reduces modulo 2**63 - 1: seed 2**63 - 1 would equal seed 0.
    with pytest.raises(ValueError, match="seed"):
        SecondMinimum(num_graphs=2, seed=2**63 - 1)
    assert len(SecondMinimum(num_graphs=2, seed=2**63 - 2)) == 2


@pytest.mark.parametrize("task", sorted(TASKS))
def test_graph_level_labels_match_direct_computation(task):
    ds = MultisetTaskDataset(task, "train", num_graphs=150, seed=3)
    for values, label in _graph_multisets(ds):
        assert 2 <= len(values) <= 16
        assert label == DIRECT[task](values)
        assert 0 <= label < ds.num_classes


@pytest.mark.parametrize("task", sorted(TASKS))
def test_node_level_labels_match_direct_computation(task):
    ds = MultisetTaskDataset(task, "train", form="node", num_graphs=3, seed=5)
    seen_degrees = set()
    for values, label in _node_multisets(ds):
        seen_degrees.add(len(values))
        assert label == DIRECT[task](values)
    # Degrees vary inside one graph, over the whole training range.
    assert seen_degrees <= set(TRAIN_SIZES) and len(seen_degrees) > 5


@pytest.mark.parametrize("task", sorted(TASKS))
def test_large_test_split_labels(task):
    ds = MultisetTaskDataset(task, "test_256", num_graphs=8, seed=1)
    for values, label in _graph_multisets(ds):
        assert len(values) == 256
        assert label == DIRECT[task](values)


@given(
    sizes=st.lists(st.integers(2, 40), min_size=1, max_size=4),
    seed=st.integers(0, 2**31),
    task=st.sampled_from(sorted(TASKS)),
    form=st.sampled_from(["graph", "node"]),
)
def test_any_sizes_and_seed_give_correct_labels(sizes, seed, task, form):
    ds = make_task(task, form=form, sizes=sizes, num_graphs=4, seed=seed)
    pairs = _graph_multisets(ds) if form == "graph" else _node_multisets(ds)
    for values, label in pairs:
        assert len(values) in sizes
        assert label == DIRECT[task](values)


@pytest.mark.parametrize("form", ["graph", "node"])
def test_generation_is_deterministic_per_seed(form):
    a = SecondMinimum("train", form=form, num_graphs=20, seed=7)
    b = SecondMinimum("train", form=form, num_graphs=20, seed=7)
    c = SecondMinimum("train", form=form, num_graphs=20, seed=8)
    for key in ("x", "edge_index", "y", "set_size"):
        assert torch.equal(a._data[key], b._data[key])
    assert not torch.equal(a._data.x, c._data.x)


def test_splits_use_independent_streams_and_disjoint_sizes():
    splits = make_splits("range", num_train=64, num_val=64, num_test=16, seed=0)
    assert list(splits) == split_names(TEST_SIZES)
    assert not torch.equal(splits["train"]._data.x, splits["val"]._data.x)
    train_sizes = set(splits["train"]._data.set_size.tolist())
    assert train_sizes <= set(TRAIN_SIZES)
    for n in TEST_SIZES:
        test_sizes = set(splits[f"test_{n}"]._data.set_size.tolist())
        assert test_sizes == {n}
        assert not test_sizes & train_sizes


def test_split_counts_are_checked_under_their_own_names():
    for name, value in (("num_train", 0), ("num_val", -1), ("num_test", 0)):
        with pytest.raises(ValueError, match=name):
            make_splits("range", **{name: value})


def test_configurable_sizes_and_split_names():
    ds = DistinctCount("test_5", train_sizes=[1, 2, 3], test_sizes=[5, 9], num_graphs=10)
    assert set(ds._data.set_size.tolist()) == {5}
    with pytest.raises(ValueError, match="split.*test_32.*valid splits.*test_5"):
        DistinctCount("test_32", train_sizes=[1, 2, 3], test_sizes=[5, 9])


def test_in_memory_storage_equals_pyg_collate():
    for form in ("graph", "node"):
        ds = CountParity("train", form=form, num_graphs=6, seed=2)
        data, slices = InMemoryDataset.collate([ds[i] for i in range(len(ds))])
        for key in slices:
            assert torch.equal(data[key], ds._data[key]), key
            assert torch.equal(slices[key], ds.slices[key]), key


def test_batches_point_readout_index_at_readout_nodes():
    ds = MultisetRange("test_32", num_graphs=12, seed=0)
    batch = next(iter(DataLoader(ds, batch_size=5)))
    assert batch.readout_index.tolist() == [33 * i + 32 for i in range(5)]
    indeg = torch.bincount(batch.edge_index[1], minlength=batch.num_nodes)
    assert torch.equal(indeg[batch.readout_index], batch.set_size)
    assert torch.all(batch.x[batch.readout_index] == 0)


def test_num_classes_and_repr():
    assert SecondMinimum(num_graphs=2).num_classes == 256
    assert CountParity(num_graphs=2).num_classes == 2
    assert DistinctCount(num_graphs=2).num_classes == 257
    assert "second_minimum" in repr(SecondMinimum(num_graphs=2))
    for name, task in TASKS.items():
        assert task.name == name and task.target and task.num_classes > 1


def test_make_task_fixed_int_size_and_transform():
    ds = make_task("maximum", sizes=3, num_graphs=5, transform=lambda d: d.clone().cpu())
    assert set(ds._data.set_size.tolist()) == {3} and len(ds) == 5
    assert ds[0].num_nodes == 4


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({"task": "median"}, ValueError, "task: unknown task 'median'.*second_minimum"),
        ({"form": "edge"}, ValueError, "form: unknown form"),
        ({"sizes": [1, 2]}, ValueError, "sizes: size 1 is below 2"),
        ({"sizes": []}, ValueError, "sizes: needs at least one"),
        ({"sizes": [2.5]}, TypeError, "sizes\\[0\\] must be an integer"),
        ({"sizes": "abc"}, TypeError, "sizes\\[0\\] must be an integer"),
        ({"num_graphs": 0}, ValueError, "num_graphs must be positive"),
        ({"seed": -1}, ValueError, "seed must be non-negative"),
        ({"seed": 2**63}, ValueError, "seed must be at most 9223372036854775806"),
        ({"form": "node", "sizes": [8], "num_nodes": 8}, ValueError, "num_nodes: 8 nodes"),
        ({"num_nodes": 10}, ValueError, "num_nodes: only meaningful"),
        ({"split": "test"}, ValueError, "split: unknown split 'test'"),
        ({"split": 3}, TypeError, "split: expected a str"),
        ({"num_graphs": 10**12}, ValueError, "num_graphs: .* need about .* GiB"),
        (
            {"form": "node", "sizes": [256], "num_graphs": 10**6},
            ValueError,
            "num_graphs: .*node form.* GiB",
        ),
    ],
)
def test_bad_arguments_name_the_argument(kwargs, exc, match):
    args = {"task": "second_minimum", "num_graphs": 2, **kwargs}
    with pytest.raises(exc, match=match):
        MultisetTaskDataset(**args)


def test_a_transform_that_cannot_be_called_and_bad_test_sizes_are_named():
    with pytest.raises(TypeError, match="transform must be callable"):
        make_task("maximum", sizes=[3], num_graphs=2, transform="x")
    with pytest.raises(ValueError, match="test_sizes must be positive"):
        split_names([-4])
    with pytest.raises(TypeError, match="test_sizes must be an iterable"):
        split_names("32")
