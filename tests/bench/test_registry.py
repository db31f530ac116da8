"""Registry and models: every aggregator builds, runs and has the documented width; errors."""

import pytest
import torch

from gnnagg.bench.registry import (
    AGGREGATORS,
    build_aggregator,
    check_aggregators,
    degree_histogram,
    regulariser_loss,
)
from gnnagg.bench.studies.real.model import GraphModel
from gnnagg.bench.studies.sizegen.model import SetClassifier

REGULARISED = {"lcm_gru", "gru", "lstm"}


def _sorted_index():
    return torch.tensor([0, 0, 0, 1, 1, 3, 3, 3, 3])


@pytest.mark.parametrize("name", list(AGGREGATORS))
def test_every_aggregator_runs_with_its_width(name):
    index = _sorted_index()
    deg = degree_histogram(index, 4)
    module = build_aggregator(name, 6, deg)
    x = torch.randn(index.numel(), 6, requires_grad=True)
    out = module(x, index, dim_size=4)
    assert out.shape == (4, AGGREGATORS[name].width(6))
    out.sum().backward()
    assert x.grad is not None
    loss = regulariser_loss(module, 8)
    assert (loss is not None) == (name in REGULARISED)
    if loss is not None:
        assert loss.dim() == 0 and torch.isfinite(loss)


def test_degree_histogram_counts_nodes_per_in_degree():
    assert degree_histogram(_sorted_index(), 5).tolist() == [2, 0, 1, 1, 1]


def test_unknown_names_list_the_valid_ones():
    with pytest.raises(ValueError, match="valid names are .*'lcm_gru'"):
        build_aggregator("nope", 4)
    with pytest.raises(ValueError, match="unknown \\['x'\\]"):
        check_aggregators(["sum", "x"])
    with pytest.raises(TypeError, match="single str"):
        check_aggregators("sum")
    with pytest.raises(ValueError, match="channels"):
        build_aggregator("sum", 0)
    with pytest.raises(ValueError, match="deg"):
        build_aggregator("pna", 4)


@pytest.mark.parametrize("name", ["sum", "lcm_gru", "lstm", "pyg_gru"])
def test_set_classifier_regulariser_only_when_training(name):
    torch.manual_seed(0)
    model = SetClassifier(name, 5, hidden_channels=8, regularise=True, reg_weight=0.5)
    x = torch.rand(9, 8).round()
    logits, reg = model(x, _sorted_index(), 4)
    assert logits.shape == (4, 5)
    assert (float(reg.detach()) != 0.0) == (name in REGULARISED)
    model.eval()
    with torch.no_grad():
        _, reg = model(x, _sorted_index(), 4)
    assert float(reg) == 0.0


def test_set_classifier_rejects_bad_sizes():
    with pytest.raises(ValueError, match="hidden"):
        SetClassifier("sum", 3, hidden_channels=0)


def test_graph_model_sorts_edges_for_padded_pyg_aggregators():
    from torch_geometric.data import Batch, Data

    torch.manual_seed(0)
    graphs = [
        Data(
            x=torch.randn(4, 3),
            edge_index=torch.tensor([[0, 1, 2, 3, 1], [3, 0, 0, 1, 2]]),
            edge_attr=torch.randn(5, 2),
        )
        for _ in range(3)
    ]
    batch = Batch.from_data_list(graphs)
    model = GraphModel(
        "pyg_lcm", out_dim=2, hidden_channels=8, num_layers=2, node_features=3, edge_features=2
    )
    out, reg = model(batch)
    assert out.shape == (3, 2) and float(reg) == 0.0


def test_one_degree_histogram_for_multisets_and_real_graphs():
    """PNA's ``deg`` of the multiset tasks and of the real data sets comes from
    degree_histogram: a multiset is the in-degree of its readout node."""
    from gnnagg.bench.studies.real.run import _degree_histogram
    from gnnagg.bench.studies.sizegen.data import MultisetTensors
    from gnnagg.data import make_task

    dataset = make_task("maximum", num_graphs=20, seed=0)
    data = MultisetTensors(dataset)
    assert data.size_histogram().tolist() == torch.bincount(data.sizes).tolist()

    class Graph:
        def __init__(self, edge_index, num_nodes):
            self.edge_index, self.num_nodes = torch.tensor(edge_index), num_nodes

    graphs = [Graph([[0, 1], [1, 2]], 3), Graph([[1, 0, 2], [0, 0, 0]], 3)]
    # in-degrees 0, 1, 1 and 3, 0, 0
    assert _degree_histogram(graphs, torch.tensor([0, 1])).tolist() == [3, 2, 0, 1]
