"""The size-generalisation data as flat tensors: batches gather each multiset in order."""

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from gnnagg.bench.studies.sizegen.data import MultisetTensors
from gnnagg.data import make_task

_DATA = MultisetTensors(make_task("second_minimum", sizes=range(2, 9), num_graphs=40, seed=3))
_SOURCE = make_task("second_minimum", sizes=range(2, 9), num_graphs=40, seed=3)


@given(st.lists(st.integers(0, 39), min_size=1, max_size=12))
def test_batch_gathers_each_multiset_in_order(ids):
    x, index, y, n = _DATA.batch(torch.tensor(ids))
    assert n == len(ids)
    assert torch.equal(index, index.sort().values)
    for slot, g in enumerate(ids):
        graph = _SOURCE[g]
        elements = graph.x[graph.edge_index[0]]
        assert torch.equal(x[index == slot], elements)
        assert int(y[slot]) == int(graph.y)


def test_multiset_tensors_rejects_node_form():
    with pytest.raises(TypeError, match="graph-form"):
        MultisetTensors(make_task("maximum", form="node", sizes=3, num_graphs=2))


