"""Bad arguments to the aggregators' constructors and methods get errors that name them."""

import pytest
import torch

from gnnagg.aggr import GRUAggregation, LCMAggregation, LSTMAggregation, total_permutation_loss
from gnnagg.monoids import GRUMonoid


@pytest.mark.parametrize(
    "build, error, match",
    [
        (lambda: LCMAggregation(4, 4, project="no"), TypeError, "project must be a bool"),
        (lambda: LCMAggregation(4, 4, shuffle=1), TypeError, "shuffle must be a bool"),
        (
            lambda: LCMAggregation(4, 4, allow_direct_reduce=None),
            TypeError,
            "allow_direct_reduce must be a bool",
        ),
        (
            lambda: LCMAggregation(4, 4, monoid="softmax", beta=float("nan")),
            ValueError,
            "beta must be finite",
        ),
        (
            lambda: LCMAggregation(4, 4, monoid="conjugated_sum", num_layers=2.5),
            TypeError,
            "num_layers must be an int",
        ),
        (
            lambda: LCMAggregation(4, 4, monoid=GRUMonoid(4), backend="torch"),
            TypeError,
            "configure a monoid built by name",
        ),
        (lambda: GRUAggregation(3, 4, learn_initial_state="yes"), TypeError, "learn_initial_st"),
        (lambda: LSTMAggregation(3, 4, bias=0), TypeError, "bias must be a bool"),
        (lambda: GRUAggregation(3, 4, shuffle="no"), TypeError, "shuffle must be a bool"),
    ],
)
def test_bad_constructor_arguments(build, error, match):
    with pytest.raises(error, match=match):
        build()


def test_partial_results_refuse_lists():
    aggr = LCMAggregation(4, 4, monoid="softmax")
    states = aggr.reduce_partial(torch.randn(5, 4), torch.tensor([0, 0, 1, 1, 1]))
    with pytest.raises(TypeError, match="a must be a torch.Tensor"):
        aggr.combine_partial(states.tolist(), states)
    with pytest.raises(TypeError, match="b must be a torch.Tensor"):
        aggr.combine_partial(states, states.tolist())
    with pytest.raises(TypeError, match="states must be a torch.Tensor"):
        aggr.finalize(states.tolist())
    with pytest.raises(TypeError, match="allow_inexact must be a bool"):
        LCMAggregation(4, 4).reduce_partial(
            torch.randn(2, 4), torch.tensor([0, 0]), allow_inexact=1
        )


def test_regularisers_refuse_bad_counts_and_seeds():
    aggr = LCMAggregation(4, 4)
    aggr(torch.randn(5, 4), torch.tensor([0, 0, 1, 1, 1]))
    with pytest.raises(TypeError, match="num_triples must be an int"):
        aggr.associativity_loss(num_triples=2.5)
    with pytest.raises(ValueError, match="num_samples must be positive"):
        aggr.identity_loss(num_samples=0)
    with pytest.raises(TypeError, match="seed must be an integer"):
        aggr.associativity_loss(seed=1.5)
    with pytest.raises(ValueError, match="seed must be non-negative"):
        aggr.identity_loss(seed=-1)
    rnn = GRUAggregation(4, 4)
    rnn(torch.randn(5, 4), torch.tensor([0, 0, 1, 1, 1]))
    with pytest.raises(TypeError, match="generator must be a torch.Generator"):
        rnn.permutation_loss(8, generator=3)
    with pytest.raises(TypeError, match="module must be a torch.nn.Module"):
        total_permutation_loss([rnn])


@pytest.mark.parametrize(
    "make",
    [
        lambda: LCMAggregation(4, 4),
        lambda: LCMAggregation(4, 4, monoid="conjugated_sum"),
        lambda: GRUAggregation(4, 4),
        lambda: LSTMAggregation(4, 4),
    ],
)
@pytest.mark.parametrize("layout", ["to_sparse", "to_sparse_csr"])
@pytest.mark.filterwarnings("ignore:Sparse CSR tensor support is in beta")
def test_sparse_x_is_named(make, layout):
    x = getattr(torch.randn(6, 4), layout)()
    with pytest.raises(TypeError, match="x must be a dense"):
        make()(x, torch.tensor([0, 0, 1, 1, 2, 2]))


@pytest.mark.parametrize("monoid", ["conjugated_sum", "softmax"])
def test_partial_states_of_another_dtype_are_named(monoid):
    aggr = LCMAggregation(4, 4, monoid=monoid)
    states = aggr.reduce_partial(torch.randn(6, 4), torch.tensor([0, 0, 1, 1, 2, 2]))
    assert aggr.combine_partial(states, states).dtype == states.dtype
    for a, b in ((states.double(), states), (states, states.double()),
                 (states.double(), states.double())):
        with pytest.raises(TypeError, match="a and b must be partial states of one dtype"):
            aggr.combine_partial(a, b)


@pytest.mark.parametrize("cls", [LCMAggregation, GRUAggregation, LSTMAggregation])
def test_widths_beyond_memory_are_refused_before_allocating(cls, monkeypatch):
    from gnnagg import _checks

    monkeypatch.setattr(_checks, "available_memory", lambda device: 4 << 30)
    with pytest.raises(ValueError, match=r"out_channels=10000000.*GiB|channels=10000000.*GiB"):
        cls(4, 10**7)


@pytest.mark.parametrize("cls", [LCMAggregation, GRUAggregation, LSTMAggregation])
def test_a_dim_out_of_range_or_a_1d_x_names_dim(cls):
    aggr = cls(4, 4)
    with pytest.raises(ValueError, match=r"dim=3 is out of range for x of shape \(6, 4\)"):
        aggr(torch.randn(6, 4), torch.tensor([0, 0, 1, 1, 2, 2]), dim=3)
    with pytest.raises(ValueError, match=r"dim=-2 is out of range for x of shape \(6,\)"):
        aggr(torch.randn(6), torch.tensor([0, 0, 1, 1, 2, 2]))
