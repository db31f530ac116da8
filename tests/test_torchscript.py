"""torch.jit.script refuses every gnnagg module, and every model holding one, with an error
that names torch.compile."""

import importlib
import inspect
import pkgutil

import pytest
import torch
from torch import nn
from torch_geometric.nn import SAGEConv

import gnnagg
from gnnagg._torchscript import NoTorchScript
from gnnagg.aggr import GRUAggregation, LCMAggregation, LSTMAggregation
from gnnagg.attention import GraphAttention, GraphTransformerConv
from gnnagg.models import GraphTransformer, MeshGraphNet
from gnnagg.monoids import ConjugatedSumMonoid

# The harness's own models are not part of the library.
LIBRARY = [
    info.name
    for info in pkgutil.walk_packages(gnnagg.__path__, "gnnagg.")
    if not info.name.startswith("gnnagg.bench")
]


def test_every_public_module_class_of_the_library_refuses_torchscript():
    """(Private building blocks sit inside public modules, which refuse first.)"""
    missing = []
    for name in LIBRARY:
        module = importlib.import_module(name)
        for _, cls in inspect.getmembers(module, inspect.isclass):
            public = not cls.__name__.startswith("_")
            if cls.__module__ == name and public and issubclass(cls, nn.Module):
                if not issubclass(cls, NoTorchScript):
                    missing.append(f"{name}.{cls.__name__}")
    assert missing == []


@pytest.mark.parametrize(
    "make",
    [
        lambda: LCMAggregation(4, 4),
        lambda: GRUAggregation(4, 4),
        lambda: LSTMAggregation(4, 4),
        lambda: ConjugatedSumMonoid(4),
        lambda: GraphAttention(4, heads=2),
        lambda: GraphTransformerConv(4, 4),
        lambda: GraphTransformer(4, 8, 1, heads=2, num_layers=1),
        lambda: MeshGraphNet(4, 8, 1, edge_dim=2, num_layers=1),
        lambda: SAGEConv(4, 4, aggr=LCMAggregation(4, 4)),  # a PyG layer holding one
        lambda: nn.Sequential(nn.Linear(4, 4), SAGEConv(4, 4, aggr=GRUAggregation(4, 4))),
    ],
    ids=["lcm", "gru", "lstm", "monoid", "attention", "transformer_conv", "graph_transformer",
         "meshgraphnet", "sage_with_lcm", "nested"],  # fmt: skip
)
def test_scripting_names_the_alternative(make):
    with pytest.raises(NotImplementedError, match=r"torch\.compile"):
        torch.jit.script(make())
