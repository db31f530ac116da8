"""LCMAggregation's training options: the leaf transform, the GRU monoid's averaging
initialisation and layer normalisation, and the per-level associativity diagnostic."""

import pytest
import torch

from gnnagg.aggr import LCMAggregation
from gnnagg.monoids import GRUMonoid, tree_reduce
from gnnagg.monoids.gru import AVERAGE_UPDATE_BIAS
from gnnagg.segment import SegmentPlan


def _messages(seed=0, num_nodes=7, channels=6):
    generator = torch.Generator().manual_seed(seed)
    index = torch.randint(0, num_nodes, (40,), generator=generator)
    x = torch.randn(40, channels, generator=generator, dtype=torch.float64)
    return x, index


@pytest.mark.parametrize(
    ("leaf", "transform"),
    [
        ("relu", torch.relu),
        ("tanh", torch.tanh),
        ("none", lambda t: t),
        ("layer_norm", lambda t: torch.nn.functional.layer_norm(t, t.shape[-1:])),
    ],
)
def test_leaf_transform_is_applied_after_the_projection(leaf, transform):
    torch.manual_seed(0)
    aggr = LCMAggregation(6, 6, leaf=leaf).double()
    plain = LCMAggregation(6, 6, project=False).double()
    plain.monoid.load_state_dict(aggr.monoid.state_dict())
    x, index = _messages()
    with torch.no_grad():
        expected = plain(transform(aggr.lin(x)), index, dim_size=7)
        torch.testing.assert_close(aggr(x, index, dim_size=7), expected)


def test_leaf_defaults():
    assert LCMAggregation(4, 4).leaf == "layer_norm"
    assert LCMAggregation(4, 4, project=False).leaf == "none"
    tanh = LCMAggregation(4, 4, project=False, leaf="tanh").double()
    x, index = _messages(channels=4)
    plain = LCMAggregation(4, 4, project=False).double()
    plain.load_state_dict(tanh.state_dict())
    torch.testing.assert_close(tanh(x, index), plain(torch.tanh(x), index))
    assert "leaf='tanh'" in repr(tanh)


def test_layer_norm_leaf_has_parameters_and_resets():
    aggr = LCMAggregation(4, 4, leaf="layer_norm")
    assert {"leaf_norm.weight", "leaf_norm.bias"} <= set(aggr.state_dict())
    with torch.no_grad():
        aggr.leaf_norm.weight.fill_(3.0)
    aggr.reset_parameters()
    assert (aggr.leaf_norm.weight == 1).all()
    assert LCMAggregation(4, 4, leaf="relu").leaf_norm is None


def test_bad_leaf():
    with pytest.raises(ValueError, match="leaf must be one of"):
        LCMAggregation(4, 4, leaf="gelu")


def test_average_init_starts_near_the_mean_and_survives_reset():
    torch.manual_seed(0)
    monoid = GRUMonoid(16, init="average").double()
    update = slice(16, 32)
    assert (monoid.cell.bias_ih[update] == AVERAGE_UPDATE_BIAS).all()
    assert (monoid.cell.bias_hh[update] == AVERAGE_UPDATE_BIAS).all()
    torch.manual_seed(0)
    default = GRUMonoid(16).double()
    a, b = torch.randn(2, 256, 16, dtype=torch.float64)

    @torch.no_grad()
    def distance_to_mean(m):
        return float((m.combine(a, b) - 0.5 * (a + b)).norm(dim=1).mean())

    assert distance_to_mean(monoid) < 0.6 * distance_to_mean(default)
    with torch.no_grad():
        monoid.cell.bias_ih.zero_()
    monoid.reset_parameters()
    assert (monoid.cell.bias_ih[update] == AVERAGE_UPDATE_BIAS).all()
    assert "init='average'" in repr(monoid)
    # Through the aggregation's monoid keywords, and refused when unknown.
    assert LCMAggregation(4, 4, init="average").monoid.init == "average"
    with pytest.raises(ValueError, match="init must be one of"):
        GRUMonoid(4, init="xavier")


def test_layer_norm_combine_is_normalised_commutative_and_differentiable():
    torch.manual_seed(0)
    monoid = GRUMonoid(5, layer_norm=True).double()
    a, b = torch.randn(2, 9, 5, dtype=torch.float64)
    out = monoid.combine(a, b)
    torch.testing.assert_close(out.mean(-1), torch.zeros(9, dtype=torch.float64))
    assert torch.equal(out, monoid.combine(b, a))
    aggr = LCMAggregation(3, 3, layer_norm=True).double()
    x = torch.randn(9, 3, dtype=torch.float64, requires_grad=True)
    index = torch.tensor([2, 0, 2, 2, 1, 2, 0, 2, 2])
    assert torch.autograd.gradcheck(lambda t: aggr(t, index, dim_size=4), (x,))
    with pytest.raises(TypeError, match="layer_norm must be a bool"):
        GRUMonoid(4, layer_norm=1)


def test_associativity_by_level_of_the_aggregation():
    torch.manual_seed(0)
    aggr = LCMAggregation(6, 6).double().train()
    x, index = _messages()
    out = aggr(x, index, dim_size=7)
    remembered = aggr.associativity_loss(64, seed=0)
    rows = aggr.associativity_by_level(x, index, dim_size=7, num_samples=64)
    depth = int(torch.bincount(index).max() - 1).bit_length()
    assert [r["level"] for r in rows] == list(range(depth + 1))
    assert rows[0]["states"] == 40 and all(r["gap"] > 0 for r in rows)
    # The diagnostic leaves what the regulariser samples (the last forward) alone.
    torch.testing.assert_close(aggr.associativity_loss(64, seed=0), remembered)
    assert out.requires_grad


def test_layer_norm_tree_is_fused_and_equals_the_plain_tree():
    torch.manual_seed(0)
    fused = LCMAggregation(6, 6, layer_norm=True, leaf="relu").double()
    x, index = _messages()
    x.requires_grad_(True)
    out = fused(x, index, dim_size=7)
    # The same operator reduced through combine() and autograd, level by level.
    plain = tree_reduce(
        fused.monoid.lift(torch.relu(fused.lin(x))).index_select(0, index.argsort(stable=True)),
        SegmentPlan.from_index(index.sort(stable=True).values, dim_size=7),
        fused.monoid.combine,
        fused.monoid.identity(x, 7),
    )
    torch.testing.assert_close(out, plain)
    grads = torch.autograd.grad(out.square().sum(), [x, *fused.parameters()], allow_unused=True)
    expected = torch.autograd.grad(
        plain.square().sum(), [x, *fused.parameters()], allow_unused=True
    )
    for g, e in zip(grads, expected):
        if e is None:
            assert g is None or g.abs().max() == 0
        else:
            torch.testing.assert_close(g, e)


def test_layer_norm_second_derivatives():
    torch.manual_seed(0)
    aggr = LCMAggregation(3, 3, layer_norm=True).double()
    x = torch.randn(7, 3, dtype=torch.float64, requires_grad=True)
    index = torch.tensor([1, 0, 1, 1, 0, 1, 1])
    assert torch.autograd.gradgradcheck(lambda t: aggr(t, index, dim_size=2), (x,))
